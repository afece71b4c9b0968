"""How long `zoo predict` takes on a large file: train a model briefly on synthetic data, write
N synthetic rows (Parquet), score them in chunks, print rows per second (CPU)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.data.synthetic import make_synthetic
from zoo.predict import predict_file
from zoo.train import config_dir, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="wide_deep")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    registry.store_configs(config_dir())
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"model={args.model}", "dataset=synthetic", "dataset.params.n_rows=5000"]
        overrides += ["trainer=fast", "logger=none"]
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose("config", overrides=overrides)
        run_dir = Path(tmp) / "run"
        train(cfg, run_dir)
        params = dict(cfg.dataset.params)
        params.update(n_rows=args.rows, seed=1, target=cfg.dataset.target)
        started = time.perf_counter()
        frame = make_synthetic(**params)
        source = Path(tmp) / "applications.parquet"
        frame.to_parquet(source)
        made = time.perf_counter() - started
        started = time.perf_counter()
        summary = predict_file(run_dir, source, Path(tmp) / "scores.parquet", chunk_rows=args.chunk_rows)
        seconds = time.perf_counter() - started
    print(f"model={args.model} rows={summary.rows:,} fields={frame.shape[1] - 1} threads={args.threads}")
    print(f"writing the file: {made:.1f} s; scoring: {seconds:.1f} s ({summary.rows / seconds:,.0f} rows/s)")


if __name__ == "__main__":
    main()
