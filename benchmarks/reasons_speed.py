"""How long `zoo predict --reasons 4` takes on 100k rows (CPU): train each model on German credit,
resample its rows to the file size, score with and without reason codes, print the seconds.
Target: under a minute per model."""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

import pandas as pd
import torch
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.predict import predict_file
from zoo.train import config_dir, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["wide_deep", "catboost"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--reasons", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry.store_configs(config_dir())
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        german = pd.read_csv(path)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "applications.parquet"
        german.sample(args.rows, replace=True, random_state=0).to_parquet(source)
        for model in args.models:
            overrides = [f"model={model}", "dataset=german", "trainer=fast", "logger=none"]
            if model == "catboost":
                overrides.append(f"model.thread_count={args.threads}")
            with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
                cfg = compose("config", overrides=overrides)
            run_dir = Path(tmp) / model
            train(cfg, run_dir)
            seconds = {}
            for k in (0, args.reasons):
                started = time.perf_counter()
                predict_file(run_dir, source, Path(tmp) / f"{model}_{k}.parquet", reasons=k)
                seconds[k] = time.perf_counter() - started
            print(
                f"model={model} rows={args.rows:,} threads={args.threads}: scoring {seconds[0]:.1f} s, "
                f"with --reasons {args.reasons} {seconds[args.reasons]:.1f} s "
                f"({args.rows / seconds[args.reasons]:,.0f} rows/s)"
            )


if __name__ == "__main__":
    main()
