"""Which validation metric should pick the checkpoint? Test AUC and Brier of each model when early
stopping and checkpoint selection watch val/loss against val/auc, over folds (prints a table)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.train import config_dir, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["german", "credit_data"])
    parser.add_argument("--models", nargs="+", default=["dnn", "wide_deep", "catboost"])
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    registry.store_configs(config_dir())
    print("| dataset | model | monitor | test AUC | test Brier | test ECE | epochs | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for model in args.models:
                for monitor in ("val/loss", "val/auc"):
                    runs, started = [], time.perf_counter()
                    for fold in range(args.folds):
                        overrides = [f"dataset={dataset}", f"model={model}", "logger=none", "trainer=cpu"]
                        overrides += [f"data.n_folds={args.folds}", f"data.fold={fold}"]
                        overrides += [f"early_stopping.monitor={monitor}"]
                        if model == "catboost":  # the booster's own early stopping follows the choice
                            overrides.append(
                                f"model.eval_metric={'Logloss' if monitor == 'val/loss' else 'AUC'}"
                            )
                        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
                            cfg = compose("config", overrides=overrides)
                        runs.append(train(cfg, Path(tmp) / f"{dataset}_{model}_{monitor[4:]}_{fold}"))
                    seconds = time.perf_counter() - started
                    cells = []
                    for key in ("auc", "brier", "ece"):
                        values = np.array([r["test"][key] for r in runs])
                        cells.append(f"{values.mean():.4f} ± {values.std(ddof=1):.4f}")
                    epochs = np.mean([r["epochs"] for r in runs])
                    row = [dataset, model, monitor, *cells, f"{epochs:.0f}", f"{seconds:.0f}"]
                    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
