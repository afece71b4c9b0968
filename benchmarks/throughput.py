"""Training throughput of the zoo's neural models against the conventional path, in one run.

For each model and batch size: seconds per epoch, rows/s and peak memory of
  zoo        CreditModel fed by DeviceBatches (tensors on the device, sliced per batch), metrics
             summed on the device, foreach/fused optimiser; options --drop-last, --compile, --precision
  reference  the same network and loss in a plain LightningModule (per-step `self.log`, default
             AdamW) fed by DataLoader(TensorDataset) with the default per-row collate
  eager      the same network, loss and optimiser in a bare loop over batches sliced on the device: the
             floor a training framework can approach (no clipping, schedule, metrics or hooks)
  deepctr    DeepCTR-Torch's WDL and its own `fit` (once per batch size, when installed)
Ratios are path / zoo (above 1: the zoo is faster). CPU memory is the peak resident-set growth
during training (sampled); GPU memory is torch.cuda.max_memory_allocated. Prints figures; asserts nothing.

    python benchmarks/throughput.py --rows 100000 --models dnn wide_deep --batch-sizes 256 4096
    python benchmarks/throughput.py --accelerator gpu --compile reduce-overhead --drop-last
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from zoo.data.datamodule import CreditDataModule
from zoo.data.synthetic import make_synthetic
from zoo.optim import Recipe, warmup_cosine
from zoo.train import build_model

CONF = Path(__file__).resolve().parents[1] / "conf"
KEYS = ("x_cat", "x_num", "y")


class EpochTimer(pl.Callback):
    """Wall-clock and process CPU seconds of each training epoch (device synchronised)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def _sync(self, trainer: pl.Trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.started = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._sync(trainer)
        self.wall.append(time.perf_counter() - self.started[0])
        self.cpu.append(time.process_time() - self.started[1])


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or resident-set growth sampled every 5 ms."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.peak_bytes = 0

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        self.start, self.peak, self.running = self._rss(), self._rss(), True

        def sample() -> None:
            while self.running:
                self.peak = max(self.peak, self._rss())
                time.sleep(0.005)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self.peak_bytes = torch.cuda.max_memory_allocated()
            return
        self.running = False
        self.thread.join()
        self.peak_bytes = max(self.peak, self._rss()) - self.start


class PlainModule(pl.LightningModule):
    """The conventional loop around the same network: tuple batches, per-step logging, AdamW."""

    def __init__(self, net: torch.nn.Module, learning_rate: float) -> None:
        super().__init__()
        self.net = net
        self.learning_rate = learning_rate

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        loss = model_loss(self.net, dict(zip(KEYS, batch, strict=True)))
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.net.parameters(), lr=self.learning_rate)


def model_loss(net: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The network's own training loss (BCE, plus the auxiliary terms of the models that have them)."""
    terms = net.loss(batch, net(batch))
    return terms if isinstance(terms, torch.Tensor) else terms["loss"]


def model_config(name: str) -> dict:
    """The model's hyperparameters from conf/model/<name>.yaml (its recipe override left out: every
    path here trains with minibatch AdamW)."""
    config = dict(OmegaConf.to_container(OmegaConf.load(CONF / "model" / f"{name}.yaml")))
    config.pop("defaults", None)
    return config


def make_data(args: argparse.Namespace, batch_size: int, frame) -> CreditDataModule:
    dataset = {"name": "synthetic", "target": "default", "bad_value": 1, "crosses": None}
    dm = CreditDataModule(
        dataset,
        frame=frame,
        batch_size=batch_size,
        split={"train": 0.98, "val": 0.01, "test": 0.01},
        drop_last=args.drop_last,
    )
    dm.build()
    return dm


def timed_fit(args: argparse.Namespace, fit: Callable[[pl.Trainer], None], **trainer_kwargs) -> dict:
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
        num_sanity_val_steps=0,
        callbacks=[timer],
        **trainer_kwargs,
    )
    with PeakMemory(cuda=args.accelerator in ("gpu", "cuda")) as memory:
        fit(trainer)
    # The last epoch: the first carries warm-up (and compilation with --compile).
    return {"wall": timer.wall[-1], "cpu": timer.cpu[-1], "memory": memory.peak_bytes}


def zoo_path(args: argparse.Namespace, name: str, dm: CreditDataModule) -> dict:
    model = build_model(model_config(name), dm.feature_spec)
    # conf/optim/adamw_cosine.yaml: AdamW, 5% warm-up then cosine, gradient clipping at 1.0
    model.recipe = Recipe(partial(torch.optim.AdamW, betas=(0.9, 0.999)), partial(warmup_cosine, warmup=0.05))
    if args.compile:
        model.compile(mode=None if args.compile == "default" else args.compile)
    return timed_fit(
        args,
        lambda trainer: trainer.fit(model, datamodule=dm),
        precision=args.precision,
        gradient_clip_val=1.0,
        log_every_n_steps=50,
    )


def reference_path(args: argparse.Namespace, name: str, dm: CreditDataModule, batch_size: int) -> dict:
    net = build_model(model_config(name), dm.feature_spec)
    arrays = dm.arrays["train"]
    dataset = TensorDataset(*(torch.from_numpy(arrays[k]) for k in KEYS))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    module = PlainModule(net, net.learning_rate)
    return timed_fit(args, lambda trainer: trainer.fit(module, train_dataloaders=loader))


def eager_path(args: argparse.Namespace, name: str, dm: CreditDataModule, batch_size: int) -> dict:
    """The floor without a training framework: the same network and optimiser in a bare loop over
    batches sliced from tensors already on the device (a random permutation per epoch)."""
    device = torch.device("cuda:0" if args.accelerator in ("gpu", "cuda") else "cpu")
    net = build_model(model_config(name), dm.feature_spec).to(device).train()
    arrays = {k: torch.from_numpy(v).to(device) for k, v in dm.arrays["train"].items()}
    options = {"fused": True} if device.type == "cuda" else {"foreach": True}
    optimizer = torch.optim.AdamW(net.parameters(), lr=net.learning_rate, **options)
    n = len(arrays["y"])
    seconds = []
    with PeakMemory(cuda=device.type == "cuda") as memory:
        for _ in range(args.epochs):
            started = time.perf_counter(), time.process_time()
            order = torch.randperm(n, device=device)
            for start in range(0, n - batch_size + 1 if args.drop_last else n, batch_size):
                rows = order[start : start + batch_size]
                batch = {k: v[rows] for k, v in arrays.items()}
                loss = model_loss(net, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds.append((time.perf_counter() - started[0], time.process_time() - started[1]))
    return {"wall": seconds[-1][0], "cpu": seconds[-1][1], "memory": memory.peak_bytes}


def deepctr_path(args: argparse.Namespace, dm: CreditDataModule, batch_size: int) -> dict | None:
    """DeepCTR-Torch's Wide & Deep on the same encoded fields, trained by its own `fit`."""
    try:
        from deepctr_torch.inputs import DenseFeat, SparseFeat
        from deepctr_torch.models import WDL
    except ImportError:
        return None
    spec, arrays = dm.feature_spec, dm.arrays["train"]
    sparse = [SparseFeat(f"c{j}", n, embedding_dim=8) for j, n in enumerate(spec.cardinalities)]
    dense = [DenseFeat(f"n{j}", 1) for j in range(arrays["x_num"].shape[1])]
    inputs = {f"c{j}": arrays["x_cat"][:, j] for j in range(len(sparse))}
    inputs |= {f"n{j}": arrays["x_num"][:, j] for j in range(len(dense))}
    device = "cuda:0" if args.accelerator in ("gpu", "cuda") else "cpu"
    model = WDL(sparse + dense, sparse + dense, dnn_hidden_units=(256, 128, 64), device=device)
    model.compile(torch.optim.AdamW(model.parameters(), lr=1e-3), "binary_crossentropy")
    seconds = []
    with PeakMemory(cuda=device != "cpu") as memory:
        for _ in range(args.epochs):
            started = time.perf_counter(), time.process_time()
            model.fit(inputs, arrays["y"], batch_size=batch_size, epochs=1, verbose=0)
            if device != "cpu":
                torch.cuda.synchronize()
            seconds.append((time.perf_counter() - started[0], time.process_time() - started[1]))
    return {"wall": seconds[-1][0], "cpu": seconds[-1][1], "memory": memory.peak_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--categorical", type=int, default=20)
    parser.add_argument("--numeric", type=int, default=80)
    parser.add_argument("--models", nargs="+", default=["dnn", "wide_deep", "deepfm", "fibinet", "autoint"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 4096])
    parser.add_argument("--epochs", type=int, default=2, help="timed: the last one")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true", help="e.g. bf16-mixed")
    parser.add_argument(
        "--compile", default=None, choices=[None, "default", "reduce-overhead", "max-autotune"]
    )
    parser.add_argument("--drop-last", action="store_true", help="static training batch shapes")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference paths")
    args = parser.parse_args()
    cuda = args.accelerator in ("gpu", "cuda")
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    print(
        f"rows={args.rows} fields={args.categorical} cat + {args.numeric} num, device={device}, "
        f"precision={args.precision} compile={args.compile} drop_last={args.drop_last}"
    )
    frame = make_synthetic(
        n_rows=args.rows, n_categorical=args.categorical, n_numeric=args.numeric, seed=0, target="default"
    )
    header = (
        f"{'model':<10} {'path':<10} {'batch':>6} {'s/epoch':>8} {'cpu s':>7} {'rows/s':>9} {'peak MB':>8} "
    )
    print(header + f"{'ratio':>6}")
    for batch_size in args.batch_sizes:
        dm = make_data(args, batch_size, frame)
        n_train = len(dm.arrays["train"]["y"])
        rows = []
        for name in args.models:
            zoo = zoo_path(args, name, dm)
            rows.append((name, "zoo", zoo, None))
            if not args.no_reference:
                reference = reference_path(args, name, dm, batch_size)
                rows.append((name, "reference", reference, reference["wall"] / zoo["wall"]))
                eager = eager_path(args, name, dm, batch_size)
                rows.append((name, "eager", eager, eager["wall"] / zoo["wall"]))
        if not args.no_reference:
            wdl = deepctr_path(args, dm, batch_size)
            if wdl is not None:
                zoo_wd = next((r[2] for r in rows if r[0] == "wide_deep" and r[1] == "zoo"), None)
                rows.append(("WDL", "deepctr", wdl, wdl["wall"] / zoo_wd["wall"] if zoo_wd else None))
        for name, path, figures, ratio in rows:
            print(
                f"{name:<10} {path:<10} {batch_size:>6} {figures['wall']:>8.2f} {figures['cpu']:>7.2f} "
                f"{n_train / figures['wall']:>9.0f} {figures['memory'] / 2**20:>8.0f} "
                + (f"{ratio:>6.2f}" if ratio else f"{'':>6}"),
                flush=True,
            )


if __name__ == "__main__":
    main()
