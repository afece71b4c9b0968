"""Ensembles against single models on the benchmark suite's sets and folds (issue 25).

Per set of the suite (benchmarks/suite.py: SUITE) and fold, every model is trained on the same
rows (the suite's overrides: `data.n_folds=N data.fold=k seed=s`, explanations at their cheapest)
into one sweep directory per set; then `zoo ensemble` builds, on validation predictions only,
the greedy ensemble and the stack of all the models, and the greedy ensemble of the three papers'
models (afcc, wide_deep_cross, attention_rules), at conf/ensemble's settings. Printed per set:
test AUC and Brier (mean over folds) of

- the best single model, chosen on mean validation AUC (never on test),
- CatBoost (the zoo's catboost),
- the greedy ensemble and the stack of every model trained, and the papers-only ensemble,

with DeLong's test of each ensemble against the best single model and against CatBoost, combined
over folds as the leaderboard does (the folds' test rows are disjoint, so z = mean Δ / (sqrt(Σ se²) /
folds)), and the members chosen most often.
A benchmark, not a test: it asserts only that every entry saw the same rows.

    python benchmarks/ensemble.py --datasets german credit_data --folds 2 \\
        --models lr dnn catboost afcc wide_deep_cross attention_rules --work /tmp/ensemble-bench
    python benchmarks/ensemble.py                                  # every set, 5 folds, the suite's models
    python benchmarks/suite.py --keep-runs /tmp/runs ...          # then ensembles of the suite's runs:
    python benchmarks/ensemble.py --work /tmp/runs --report --from-fold 2 --folds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import parity  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
import suite  # noqa: E402

from zoo.ensemble.build import EnsembleSettings, build_ensembles  # noqa: E402
from zoo.leaderboard.collect import TestPredictions  # noqa: E402
from zoo.leaderboard.stats import combine_paired, disjoint_rows, paired_test  # noqa: E402
from zoo.manifest import seal_problem  # noqa: E402
from zoo.resume import Terminated  # noqa: E402
from zoo.train import train  # noqa: E402

PAPERS = ("afcc", "wide_deep_cross", "attention_rules")
DEFAULT_MODELS = (*suite.NEURAL, "lr", "lr_cross", "catboost", "attention_rules")


def train_set(dataset: str, args: argparse.Namespace) -> Path:
    """Every model on folds 0..folds-1 of `dataset`, into `work/<dataset>/` (runs already sealed
    there are kept: the benchmark resumes)."""
    sweep = args.work / dataset
    for k in range(args.from_fold, args.folds):
        for model in args.models:
            run_dir = sweep / f"{model}_{dataset}_fold{k}"  # as suite.py --keep-runs keeps them
            overrides = parity.zoo_overrides(
                model, dataset, args.n_folds, k, args.seed, [*suite.QUICK, *suite.model_overrides(model, [])]
            )
            cfg = parity.compose_cfg(overrides)
            if run_dir.is_dir() and seal_problem(run_dir) is None:
                changed = suite.kept_settings_changed(run_dir, cfg)
                if changed:  # a default changed since: its figures, and the ensembles', are not today's
                    sys.exit(
                        f"error: {run_dir} was trained with other settings ({changed}); use a new "
                        "--work folder, or remove that run to train it again"
                    )
                continue
            torch.manual_seed(args.seed)
            started = time.perf_counter()
            try:
                result = train(cfg, run_dir)
            except Terminated:
                raise  # a stopped benchmark stops; it is not a failing entry
            except Exception as err:  # a benchmark reports a failing entry and goes on
                print(f"{dataset:<22} fold {k} {model:<18} failed: {type(err).__name__}: {err}", flush=True)
                continue
            print(
                f"{dataset:<22} fold {k} {model:<18} test AUC {result['test']['auc']:.4f} "
                f"{time.perf_counter() - started:6.1f}s",
                flush=True,
            )
    return sweep


def ensembles(sweep: Path, name: str, models: tuple[str, ...], method: str = "greedy") -> dict[int, Any]:
    """The `method` ensemble of `models` per fold, at conf/ensemble's defaults, written to
    `sweep/ensembles_<name>/`: {fold: Built}."""
    out = sweep / f"ensembles_{name}"
    if out.exists():  # a rerun builds them afresh: ensemble runs are cheap
        import shutil

        shutil.rmtree(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = build_ensembles(sweep, EnsembleSettings(method=method, models=models), out)
    return {int(b.group.fold): b for b in built}


def single_runs(sweep: Path) -> dict[str, dict[int, Path]]:
    """{model: {fold: run dir}} of the sealed single runs of a set."""
    out: dict[str, dict[int, Path]] = {}
    for metrics in sorted(sweep.glob("*/metrics.json")):
        if seal_problem(metrics.parent) is not None:
            continue
        data = json.loads(metrics.read_text())
        out.setdefault(data["model"], {})[int(data["fold"])] = metrics.parent
    return out


def figures(run_dirs: dict[int, Path]) -> dict[str, float]:
    """Mean test AUC and Brier, and mean validation AUC, over the folds of one entry."""
    data = [json.loads((d / "metrics.json").read_text()) for d in run_dirs.values()]
    return {
        "auc": float(np.mean([d["test"]["auc"] for d in data])),
        "brier": float(np.mean([d["test"]["brier"] for d in data])),
        "val_auc": float(np.mean([d["val"]["auc"] for d in data])),
        "n": len(data),
    }


def delong_over_folds(ours: dict[int, Path], theirs: dict[int, Path], predictions: TestPredictions) -> str:
    """DeLong's test of `ours` against `theirs` per fold, combined: mean Δ AUC [interval], p."""
    tests = [paired_test(str(ours[k]), str(theirs[k]), predictions) for k in sorted(set(ours) & set(theirs))]
    tests = [t for t in tests if t is not None]
    if not tests:
        return "—"
    independent = disjoint_rows([t["rows"] for t in tests])  # the folds of one split: always
    combined = combine_paired([t["diff"] for t in tests], [t["se"] for t in tests], independent=independent)
    interval = f"[{combined['diff_lo']:+.4f}, {combined['diff_hi']:+.4f}]"
    return f"{combined['diff']:+.4f} {interval} p={combined['p_value']:.3g}"


def report(dataset: str, sweep: Path, args: argparse.Namespace) -> list[str]:
    singles = single_runs(sweep)
    folds = set(range(args.from_fold, args.folds))
    # Each model's runs of the folds asked for (a kept suite run may have more folds).
    complete = {m: {k: runs[k] for k in sorted(folds)} for m, runs in singles.items() if folds <= set(runs)}
    entries: dict[str, dict[int, Path]] = {}
    best = max(complete, key=lambda m: figures(complete[m])["val_auc"])
    entries[f"best single ({best}, on val AUC)"] = complete[best]
    if "catboost" in complete:
        entries["catboost"] = complete["catboost"]
    chosen: Counter[str] = Counter()
    every, papers = tuple(complete), tuple(m for m in PAPERS if m in complete)
    for method, name, models in (
        ("greedy", "all", every),
        ("stack", "all", every),
        ("greedy", "papers", papers),
    ):
        if len(models) < 2:
            continue
        label = name if method == "greedy" else f"{method}_{name}"
        built = {k: b for k, b in ensembles(sweep, label, models, method).items() if k in folds}
        entries[f"{method} ensemble ({name}: {len(models)} models)"] = {
            k: b.run_dir for k, b in built.items()
        }
        if label == "all":
            for b in built.values():
                record = json.loads((b.run_dir / "ensemble.json").read_text())
                chosen.update({m["model"]: m["weight"] for m in record["members"]})
    predictions = TestPredictions()
    span = f"folds {args.from_fold}-{args.folds - 1} of {args.n_folds}"
    lines = [f"## {dataset} ({span}, seed {args.seed})", ""]
    lines.append(
        "| entry | test AUC | test Brier | val AUC | Δ AUC vs best single (DeLong) | Δ AUC vs catboost |"
    )
    lines.append("|---|---:|---:|---:|---|---|")
    for label, runs in entries.items():
        f = figures(runs)
        vs_best = delong_over_folds(runs, complete[best], predictions) if runs is not complete[best] else ""
        vs_cat = (
            delong_over_folds(runs, complete["catboost"], predictions)
            if "catboost" in complete and runs is not complete["catboost"]
            else ""
        )
        lines.append(
            f"| {label} | {f['auc']:.4f} | {f['brier']:.4f} | {f['val_auc']:.4f} | {vs_best} | {vs_cat} |"
        )
    lines.append("")
    if chosen:
        weights = ", ".join(f"{m} {w / len(folds):.2f}" for m, w in chosen.most_common())
        lines.append(f"mean weight per member of the 'all' ensemble over folds: {weights}")
    others = ", ".join(
        f"{m} {figures(r)['auc']:.4f}"
        for m, r in sorted(complete.items(), key=lambda kv: -figures(kv[1])["auc"])
    )
    lines.append(f"every single model, test AUC: {others}")
    return lines + [""]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(suite.SUITE))
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--folds", type=int, default=5, help="folds run (of --n-folds)")
    parser.add_argument("--from-fold", type=int, default=0, help="the first fold run")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("ensemble-bench"), help="where the runs are kept")
    parser.add_argument(
        "--report", action="store_true", help="print the tables of the runs in --work and stop"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.from_fold < args.folds <= args.n_folds:
        parser.error(
            f"--from-fold {args.from_fold} --folds {args.folds} --n-folds {args.n_folds}: "
            "expected 0 <= from-fold < folds <= n-folds"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    parity.quiet()
    torch.set_num_threads(args.threads)
    parity.registry.store_configs(parity.config_dir())
    lines = []
    for dataset in args.datasets:
        sweep = args.work / dataset if args.report else train_set(dataset, args)
        lines += report(dataset, sweep, args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
