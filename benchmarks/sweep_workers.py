"""Throughput of Optuna sweeps through `zoo-train -m`: trials per minute with 1 and 2 worker processes
sharing one study (the ratio printed in one run), and trials per hour with and without pruning.
Prints figures; asserts nothing.

    python benchmarks/sweep_workers.py                       # afcc on german, 12 trials per setting
    python benchmarks/sweep_workers.py --trials 6 --prune-trials 8 --prune-epochs 20

Each setting runs in a fresh study (SQLite in a temporary sweep directory). Workers are separate
`zoo-train -m` processes with `ZOO_WORKER=<i>` (distinct sampler seeds), each asking for its share of
the trials, as docs/tuning.md describes. `wall` counts from the first process's start to the last
one's end (Python start-up included); `steady` from the first trial's start to the last trial's end,
as recorded in the study. The pruning comparison runs one worker twice on the same seeded sampler,
with `sweep.pruner=null` and `median`, for enough epochs that stopping early can save time.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zoo.pruning import PRUNED_ATTR


def run_sweep(root: Path, args: argparse.Namespace, *, workers: int, trials: int, extra: list[str]) -> dict:
    """Run `trials` trials split over `workers` processes on one study; its figures."""
    import optuna

    sweep_dir = root / "sweep"
    sweep_dir.mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "zoo.train",
        "-m",
        f"hparams_search={args.model}",
        f"dataset={args.dataset}",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.storage=sqlite:///{sweep_dir / 'study.db'}",
        *extra,
        *args.overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    per_worker = [trials // workers + (i < trials % workers) for i in range(workers)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*command, f"hydra.sweeper.n_trials={n}"],
            env={**env, "ZOO_WORKER": str(i)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, n in enumerate(per_worker)
    ]
    errors = [proc.communicate()[1] for proc in procs]
    wall = time.perf_counter() - started
    for proc, err in zip(procs, errors, strict=True):
        if proc.returncode != 0:
            sys.exit(f"a worker failed (exit {proc.returncode}):\n{err[-2000:]}")
    study = optuna.load_study(
        study_name=f"{args.model}_{args.dataset}", storage=f"sqlite:///{sweep_dir / 'study.db'}"
    )
    done = [t for t in study.trials if t.datetime_complete is not None]
    first = min(t.datetime_start for t in done)
    last = max(t.datetime_complete for t in done)
    complete = [t for t in done if t.state.name == "COMPLETE"]
    return {
        "trials": len(done),
        "pruned": sum(PRUNED_ATTR in t.user_attrs for t in done),
        "pruned_at": ",".join(str(t.user_attrs[PRUNED_ATTR]) for t in done if PRUNED_ATTR in t.user_attrs),
        "distinct": len({tuple(sorted(t.params.items())) for t in done}),
        "wall": wall,
        "steady": (last - first).total_seconds(),
        "best": study.best_value if complete else math.nan,
    }


def _row(*cells: object, first: bool = False) -> str:
    text = " ".join(f"{c:>8.4g}" if isinstance(c, float) else f"{c!s:>8}" for c in cells)
    return f"\n{text}" if first else text


def per_minute(n: int, seconds: float) -> float:
    return 60.0 * n / seconds if seconds > 0 else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="afcc", help="search space conf/hparams_search/<model>.yaml")
    parser.add_argument("--dataset", default="german")
    parser.add_argument(
        "--trials", type=int, default=12, help="trials per worker setting (all workers); 0: skip"
    )
    parser.add_argument("--epochs", type=int, default=2, help="max epochs per trial, worker comparison")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--prune-trials", type=int, default=12, help="0: skip the pruning comparison")
    parser.add_argument("--prune-epochs", type=int, default=30, help="max epochs per trial, pruning runs")
    parser.add_argument(
        "--pruner-args",
        default="{n_startup_trials: 3, n_warmup_steps: 3}",
        help="sweep.pruners.median, as a Hydra dict",
    )
    parser.add_argument("overrides", nargs="*", help="more zoo-train overrides, e.g. trainer=gpu")
    args = parser.parse_args()

    print(f"{args.model} on {args.dataset}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    fast = ["trainer=fast", f"trainer.max_epochs={args.epochs}", "++sweep.pruner=null"]
    rates = {}
    if args.trials <= 0:
        args.workers = []
    else:
        print(_row("workers", "trials", "distinct", "wall s", "/min", "steady s", "/min", first=True))
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="sweep_workers_") as tmp:
            fig = run_sweep(Path(tmp), args, workers=workers, trials=args.trials, extra=fast)
        rates[workers] = (per_minute(fig["trials"], fig["wall"]), per_minute(fig["trials"], fig["steady"]))
        wall, steady = rates[workers]
        print(_row(workers, fig["trials"], fig["distinct"], fig["wall"], wall, fig["steady"], steady))
    if 1 in rates and len(rates) > 1:
        for workers in sorted(rates)[1:]:
            wall, steady = (rates[workers][i] / rates[1][i] for i in (0, 1))
            print(f"ratio {workers} vs 1 worker: {wall:.2f} (wall), {steady:.2f} (steady)")

    if args.prune_trials <= 0:
        return
    header = ("pruner", "trials", "pruned", "wall s", "/hour", "steady s", "/hour", "best", "after")
    print(_row(*header, first=True))
    base = ["trainer=cpu", f"trainer.max_epochs={args.prune_epochs}"]
    hourly = {}
    for pruner in ("null", "median"):
        extra = [*base, f"++sweep.pruner={pruner}"]
        if pruner == "median":
            extra.append(f"++sweep.pruners.median={args.pruner_args}")
        with tempfile.TemporaryDirectory(prefix="sweep_pruning_") as tmp:
            fig = run_sweep(Path(tmp), args, workers=1, trials=args.prune_trials, extra=extra)
        hourly[pruner] = (
            60 * per_minute(fig["trials"], fig["wall"]),
            60 * per_minute(fig["trials"], fig["steady"]),
        )
        wall, steady = hourly[pruner]
        cells = (pruner, fig["trials"], fig["pruned"], fig["wall"], wall, fig["steady"], steady, fig["best"])
        print(_row(*cells, fig["pruned_at"] or "-"))  # after: the epochs (from 0) trials were pruned after
    gain = [hourly["median"][i] / hourly["null"][i] for i in (0, 1)]
    print(f"pruning: {gain[0]:.2f}x trials per hour (wall), {gain[1]:.2f}x (steady)")


if __name__ == "__main__":
    main()
