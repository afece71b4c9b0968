"""Seconds per training epoch of a model on synthetic data, device-resident batches vs a per-row
DataLoader(TensorDataset). Prints figures; asserts nothing.

    python benchmarks/epoch_speed.py --rows 1000000 --batch-sizes 256 4096 --accelerator cpu
"""

from __future__ import annotations

import argparse
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.data.datamodule import CreditDataModule
from zoo.data.synthetic import make_synthetic
from zoo.train import build_model


class EpochTimer(pl.Callback):
    """Wall-clock seconds of each training epoch (device synchronised)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def _sync(self, trainer: pl.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.seconds.append(time.perf_counter() - self.started)


def per_row_loader(dm: CreditDataModule, batch_size: int) -> DataLoader:
    """The conventional path: a Dataset indexed row by row and collated into batches."""
    arrays = dm.arrays["train"]
    keys = list(arrays)
    dataset = TensorDataset(*(torch.from_numpy(arrays[k]) for k in keys))

    def collate(rows):
        columns = list(zip(*rows, strict=True))
        return {k: torch.stack(c) for k, c in zip(keys, columns, strict=True)}

    return DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collate)


def time_epochs(args, batch_size: int, loader_kind: str) -> list[float]:
    frame = make_synthetic(n_rows=args.rows, n_categorical=args.categorical, n_numeric=args.numeric, seed=0)
    dataset = {"name": "synthetic", "target": "default", "bad_value": 1}
    dm = CreditDataModule(
        dataset, frame=frame, batch_size=batch_size, split={"train": 0.98, "val": 0.01, "test": 0.01}
    )
    dm.build()
    model = build_model({"name": args.model, **dict(args.set)}, dm.feature_spec)
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        max_epochs=args.epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        num_sanity_val_steps=0,
    )
    if loader_kind == "device":
        trainer.fit(model, datamodule=dm)
    else:
        trainer.fit(model, train_dataloaders=per_row_loader(dm, batch_size))
    return timer.seconds


def model_override(text: str) -> tuple[str, object]:
    """`key=value` with the value read as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"override {text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--categorical", type=int, default=8)
    parser.add_argument("--numeric", type=int, default=8)
    parser.add_argument("--model", default="dnn")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--loaders", nargs="+", default=["device", "per-row"], choices=["device", "per-row"])
    parser.add_argument(
        "--set",
        type=model_override,
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter overrides, e.g. pretrain_epochs=1",
    )
    args = parser.parse_args()
    device = (
        torch.cuda.get_device_name(0)
        if args.accelerator in ("gpu", "cuda")
        else f"CPU x{torch.get_num_threads()} threads"
    )
    print(
        f"model={args.model} {dict(args.set) or ''} rows={args.rows} "
        f"fields={args.categorical}+{args.numeric} device={device}"
    )
    print(
        f"{'loader':<8} {'batch':>6} {'train rows':>10} "
        + " ".join(f"{'epoch' + str(i + 1):>8}" for i in range(args.epochs))
    )
    for batch_size in args.batch_sizes:
        for kind in args.loaders:
            seconds = time_epochs(args, batch_size, kind)
            print(
                f"{kind:<8} {batch_size:>6} {int(args.rows * 0.98):>10} "
                + " ".join(f"{s:>8.2f}" for s in seconds),
                flush=True,
            )


if __name__ == "__main__":
    main()
