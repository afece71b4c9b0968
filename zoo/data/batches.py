"""Batches served from tensors already on the training device, sliced in bulk per batch."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class DeviceBatches:
    """An iterable of batch dicts: a shuffled index tensor is sliced per batch, no per-row collate.

    Lightning accepts any iterable as a dataloader. Under DDP each rank serves a disjoint,
    equally sized share of the rows (`rank`, `world_size`). Shuffled (training) batches never end
    on a single row, which BatchNorm cannot normalise: that row joins the batch before it. With
    `drop_last`, shuffled batches all have `batch_size` rows (static shapes for compiled models and
    CUDA graphs): the ragged rest is left out of that epoch, a different rest each epoch.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}, expected a positive integer")
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors have different numbers of rows: {sorted(lengths)}")
        self.tensors = tensors
        self.n_rows = lengths.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0

    def _rows_per_rank(self) -> int:
        if self.world_size == 1:
            return self.n_rows
        return -(-self.n_rows // self.world_size)

    def _merges_singleton(self) -> bool:
        rows = self._rows_per_rank()
        return self.shuffle and rows > 1 and rows % self.batch_size == 1

    def _drops_rest(self) -> bool:
        """Leave out the ragged last training batch (when there is a full one to keep)."""
        rows = self._rows_per_rank()
        return self.drop_last and self.shuffle and rows >= self.batch_size and rows % self.batch_size > 0

    def __len__(self) -> int:
        if self._drops_rest():
            return self._rows_per_rank() // self.batch_size
        return -(-self._rows_per_rank() // self.batch_size) - int(self._merges_singleton())

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        device = next(iter(self.tensors.values())).device
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n_rows, generator=generator).to(device)
            self.epoch += 1
        else:
            order = torch.arange(self.n_rows, device=device)
        if self.world_size > 1:
            # Pad by wrapping around so every rank sees the same number of batches (as DistributedSampler).
            per_rank = self._rows_per_rank()
            order = order.repeat(2)[: per_rank * self.world_size][self.rank :: self.world_size]
        starts = list(range(0, len(order), self.batch_size))
        if self._drops_rest():
            order = order[: len(order) - len(order) % self.batch_size]
            starts.pop()
        elif self._merges_singleton():
            starts.pop()  # the last row rides with the batch before it
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else len(order)
            index = order[start:stop]
            yield {name: tensor.index_select(0, index) for name, tensor in self.tensors.items()}
