"""Sensitivity of Wide & Deep + Cross to epochs, batch size and learning rate (the paper's Fig. 2).

Varies one setting at a time around a baseline, trains with `zoo.train.train` in-process for
each value and seed, and writes the test metrics to a CSV and a three-panel PNG (AUC, F1 and
macro F1, mean and standard deviation over seeds).

    python benchmarks/wide_deep_sensitivity.py --dataset german --seeds 0 1 2 --output sensitivity.png

Each run trains for exactly its epoch budget (early stopping off) with one learning rate for all
weights (`model.wide_learning_rate=null`), as in the paper; `train` then scores the checkpoint
with the best validation AUC within the budget, not the last epoch.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.train import config_dir, train

METRICS = {"auc": "AUC", "f1": "F1", "f1_macro": "macro F1"}
PANELS = {
    "epochs": ("trainer.max_epochs", "epochs", False),
    "batch_size": ("data.batch_size", "batch size", True),
    "learning_rate": ("model.learning_rate", "learning rate", True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="german", help="dataset config name (default: german)")
    parser.add_argument("--model", default="wide_deep_cross", help="model config name")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("wide_deep_sensitivity.png"),
        help="PNG path; the CSV is written beside it with the same stem",
    )
    parser.add_argument("--epochs", type=int, default=35, help="baseline epochs (paper: 30-35)")
    parser.add_argument("--batch-size", type=int, default=256, help="baseline batch size (paper: 256)")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="baseline learning rate (paper: 1e-4, on ~78k training rows)",
    )
    parser.add_argument("--epochs-grid", type=int, nargs="+", default=[5, 10, 20, 35, 50, 75])
    parser.add_argument("--batch-grid", type=int, nargs="+", default=[32, 64, 128, 256, 512, 1024])
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[1e-5, 1e-4, 1e-3, 1e-2])
    parser.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides for every run")
    return parser.parse_args(argv)


def run_config(args: argparse.Namespace, seed: int, setting: str, value: Any) -> Any:
    """The composed config of one run: the baseline with `setting` set to `value`."""
    baseline = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate}
    baseline[setting] = value
    overrides = [
        f"dataset={args.dataset}",
        f"model={args.model}",
        f"seed={seed}",
        "logger=none",
        "model.wide_learning_rate=null",  # one rate for all weights, as in the paper
        f"early_stopping.patience={baseline['epochs'] + 1}",  # train the whole budget
        *(f"{PANELS[name][0]}={baseline[name]}" for name in PANELS),
        *args.override,
    ]
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose("config", overrides=overrides)


def run_grid(args: argparse.Namespace) -> pd.DataFrame:
    grids = {"epochs": args.epochs_grid, "batch_size": args.batch_grid, "learning_rate": args.lr_grid}
    done: dict[tuple, dict[str, Any]] = {}  # the baseline recurs in every panel: train it once
    rows = []
    for setting, values in grids.items():
        for value in values:
            for seed in args.seeds:
                cfg = run_config(args, seed, setting, value)
                key = (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.model.learning_rate, seed)
                if key not in done:
                    started = time.perf_counter()
                    with tempfile.TemporaryDirectory() as run_dir:
                        result = train(cfg, Path(run_dir))
                    test = {m: result["test"][m] for m in METRICS}
                    done[key] = {"seconds": time.perf_counter() - started, **test}
                    scores = "  ".join(f"{m} {test[m]:.4f}" for m in METRICS)
                    print(f"{setting}={value:<8g} seed {seed}: {scores}", flush=True)
                rows.append({"setting": setting, "value": value, "seed": seed, **done[key]})
    return pd.DataFrame(rows)


def plot(results: pd.DataFrame, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    for ax, (setting, (_, label, log_x)) in zip(axes, PANELS.items(), strict=True):
        rows = results[results["setting"] == setting]
        summary = rows.groupby("value")[list(METRICS)].agg(["mean", "std"]).fillna(0.0)
        for metric, name in METRICS.items():
            mean, std = summary[(metric, "mean")], summary[(metric, "std")]
            ax.plot(summary.index, mean, marker="o", label=name)
            ax.fill_between(summary.index, mean - std, mean + std, alpha=0.15)
        if log_x:
            ax.set_xscale("log", base=2 if setting == "batch_size" else 10)
        if setting == "batch_size":
            ax.set_xticks(summary.index, [str(int(v)) for v in summary.index])
        ax.set_xlabel(label)
        ax.set_title(f"({'abc'[list(PANELS).index(setting)]}) {label}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test metric")
    axes[0].legend(loc="lower right")
    fig.suptitle(
        f"{args.model} on {args.dataset}: one setting varied around epochs={args.epochs}, "
        f"batch={args.batch_size}, lr={args.learning_rate:g} ({len(args.seeds)} seeds, mean ± sd)\n"
        "test metrics of the checkpoint with the best validation AUC within each epoch budget"
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    logging.getLogger("zoo").setLevel(logging.WARNING)
    registry.store_configs(config_dir())
    results = run_grid(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    csv_path = args.output.with_suffix(".csv")
    results.to_csv(csv_path, index=False)
    plot(results, args, args.output)
    print(f"wrote {csv_path} and {args.output}")


if __name__ == "__main__":
    main()
