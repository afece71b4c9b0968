"""Parity of zoo models with the same algorithms called directly, on identical 5-fold splits.

A benchmark, not a test: prints one Markdown table per dataset (test AUC and Brier, mean ± std
over folds) and asserts nothing beyond the data being the same. For fold k the train/validation/
test rows are exactly those of `zoo-train data.n_folds=5 data.fold=k seed=s`, taken from
`CreditDataModule`; the external references are fitted on the raw frame's training rows (the
validation rows drive their early stopping), so every model sees the same rows.

    zoo lr                  vs scikit-learn LogisticRegression (C=1.0, and C=1/(l2*n_train) if
                            conf/model/lr.yaml has an `l2` hyperparameter)
    zoo catboost            vs CatBoostClassifier with conf/model/catboost.yaml's hyperparameters
                            (and LightGBM, if installed, as a second boosted-tree reference)
    zoo dnn, zoo wide_deep  vs pytabkit's RealMLP-TD and TabM-D at their defaults
    zoo resnet              vs pytabkit's RTDL ResNet (Resnet_RTDL_D: Gorishniy et al. 2021, TabZilla's
                            defaults; needs skorch, which pytabkit's core install leaves out)
    zoo deepfm, fibinet,    vs DeepCTR-Torch's DeepFM, FiBiNET and AutoInt at the library's defaults
      autoint               (Adam 1e-3, batch 256, early stopping on validation log-loss); zoo afcc
                            and fm have no external implementation and are listed without a gap

Needs the `bench` extra (pip install -e '.[bench]'); a reference whose library is missing is
skipped with a note.

    python benchmarks/parity.py --quick                      # german, 2 folds: a smoke run
    python benchmarks/parity.py --datasets german credit_data --out parity.csv
    python benchmarks/parity.py --models lr sklearn_lr --zoo-override model.learning_rate=0.03

Wall times are only comparable on an otherwise idle machine; on a busy one pass --threads 1.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from zoo import registry
from zoo.data.datamodule import CreditDataModule
from zoo.data.encoding import category_key
from zoo.data.sources import load_frame
from zoo.data.validate import resolve_target
from zoo.metrics import compute_metrics
from zoo.outputs import PREDICTIONS_FILE
from zoo.resume import Terminated
from zoo.train import config_dir, train

DATASETS = ("german", "credit_data", "synthetic_trees")
MISSING = "(missing)"  # the category of a missing categorical value, as the zoo's CatBoost uses


@dataclass(frozen=True)
class Entry:
    """One row of the table: a zoo model (`zoo`) or an external reference, and what it is compared to."""

    label: str
    zoo: bool
    group: str  # linear / boosting / neural / interaction: gaps are taken within a group
    reference: str | None = None  # for zoo models: the entry its gap is taken against


MODELS: dict[str, Entry] = {
    "lr": Entry("zoo lr", True, "linear", "sklearn_lr"),
    "sklearn_lr": Entry("sklearn LR (C=1.0)", False, "linear"),
    "sklearn_lr_l2": Entry("sklearn LR (C=1/(l2·n_train))", False, "linear"),
    "catboost": Entry("zoo catboost", True, "boosting", "catboost_direct"),
    "catboost_direct": Entry("CatBoost direct", False, "boosting"),
    "lightgbm": Entry("LightGBM direct", False, "boosting"),
    "dnn": Entry("zoo dnn", True, "neural", "realmlp_td"),
    "wide_deep": Entry("zoo wide_deep", True, "neural", "realmlp_td"),
    "realmlp_td": Entry("RealMLP-TD (pytabkit)", False, "neural"),
    "tabm_d": Entry("TabM-D (pytabkit)", False, "neural"),
    "resnet": Entry("zoo resnet", True, "neural", "resnet_rtdl"),
    "resnet_rtdl": Entry("ResNet-D (pytabkit, RTDL)", False, "neural"),
    "afcc": Entry("zoo afcc", True, "interaction"),
    "fm": Entry("zoo fm", True, "interaction"),
    "deepfm": Entry("zoo deepfm", True, "interaction", "deepctr_deepfm"),
    "fibinet": Entry("zoo fibinet", True, "interaction", "deepctr_fibinet"),
    "autoint": Entry("zoo autoint", True, "interaction", "deepctr_autoint"),
    "deepctr_deepfm": Entry("DeepFM (DeepCTR-Torch)", False, "interaction"),
    "deepctr_fibinet": Entry("FiBiNET (DeepCTR-Torch)", False, "interaction"),
    "deepctr_autoint": Entry("AutoInt (DeepCTR-Torch)", False, "interaction"),
}
DEEPCTR = {"deepctr_deepfm": "DeepFM", "deepctr_fibinet": "FiBiNET", "deepctr_autoint": "AutoInt"}

CSV_FIELDS = [
    "dataset", "model", "fold", "n_folds", "seed", "auc", "brier", "logloss", "seconds",
    "n_train", "n_val", "n_test", "note",
]  # fmt: skip


# --- configs and data ---------------------------------------------------------------------------


def compose_cfg(overrides: list[str]) -> DictConfig:
    """`conf/config.yaml` with overrides, composed as tests/conftest.py does."""
    with initialize_config_dir(config_dir=str(config_dir())):
        return compose("config", overrides=overrides)


def zoo_overrides(
    model: str, dataset: str, n_folds: int, fold: int, seed: int, extra: list[str]
) -> list[str]:
    return [
        f"model={model}",
        f"dataset={dataset}",
        f"data.n_folds={n_folds}",
        f"data.fold={fold}",
        f"seed={seed}",
        "trainer=cpu",
        "logger=none",
        *extra,
    ]


@dataclass
class Fold:
    """One fold's rows in the zoo's terms (`dm`) and in raw terms (`x`, features of the input frame)."""

    dm: CreditDataModule
    x: dict[str, pd.DataFrame]  # split -> raw features: categoricals as text keys, numerics as float64
    y: dict[str, np.ndarray]  # split -> 0/1 labels (1 = default)
    rows: dict[str, np.ndarray]  # split -> positions in the input frame
    categorical: list[str]
    numeric: list[str]

    @property
    def sizes(self) -> dict[str, int]:
        return {s: len(v) for s, v in self.y.items()}


def raw_features(frame: pd.DataFrame, categorical: list[str], numeric: list[str]) -> pd.DataFrame:
    """The feature columns in raw terms: categoricals as the zoo's category keys (missing as
    MISSING), numerics as float64 with NaN for missing; categoricals first, as the zoo orders them."""
    out = {}
    for name in categorical:
        keys = [category_key(v) for v in frame[name].to_numpy(dtype=object)]
        out[name] = np.array([MISSING if k is None else k for k in keys], dtype=object)
    for name in numeric:
        out[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def build_fold(dataset: str, n_folds: int, fold: int, seed: int) -> Fold:
    cfg = compose_cfg([f"dataset={dataset}", f"data.n_folds={n_folds}", f"data.fold={fold}", f"seed={seed}"])
    ds, data = cfg.dataset, cfg.data
    dm = CreditDataModule(
        ds,
        split=data.split,
        n_folds=data.n_folds,
        fold=data.fold,
        seed=int(cfg.seed),
        split_seed=data.get("split_seed"),
    )
    dm.build()
    frame = load_frame(OmegaConf.to_container(ds, resolve=True))
    _, y_all, positions = resolve_target(
        frame, target=ds["target"], bad_value=ds["bad_value"], good_value=ds.get("good_value")
    )
    label_of = dict(zip(positions.tolist(), y_all.tolist(), strict=True))
    categorical, numeric = list(dm.preprocessor.categorical), list(dm.preprocessor.numeric)
    x, y, rows = {}, {}, {}
    for split in ("train", "val", "test"):
        arrays = dm.arrays[split]
        rows[split] = arrays["row"]
        y[split] = arrays["y"].astype(np.int64)
        expected = np.array([label_of[int(r)] for r in rows[split]], dtype=np.int64)
        if not np.array_equal(expected, y[split]):
            raise RuntimeError(
                f"{dataset} fold {fold}: labels of the {split} rows differ from the raw frame's"
            )
        x[split] = raw_features(frame.iloc[rows[split]], categorical, numeric)
    return Fold(dm, x, y, rows, categorical, numeric)


# --- the zoo ------------------------------------------------------------------------------------


def run_zoo(model: str, dataset: str, fold: Fold, n_folds: int, k: int, seed: int, extra: list[str]):
    cfg = compose_cfg(zoo_overrides(model, dataset, n_folds, k, seed, extra))
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        run_dir = Path(tmp) / f"{model}_{dataset}_fold{k}"
        result = train(cfg, run_dir)
        predictions = pd.read_parquet(run_dir / PREDICTIONS_FILE)
    test_rows = np.sort(predictions.loc[predictions["split"] == "test", "row"].to_numpy())
    if not np.array_equal(test_rows, np.sort(fold.rows["test"])):
        raise RuntimeError(f"zoo {model} on {dataset} fold {k}: its test rows differ from the benchmark's")
    test = result["test"]
    note = " ".join([f"epochs={result.get('epochs')}", *extra])
    return {"auc": test["auc"], "brier": test["brier"], "logloss": test["logloss"]}, note


# --- the references -----------------------------------------------------------------------------


def _numeric_for_nets(fold: Fold) -> dict[str, pd.DataFrame]:
    """Raw frame with numerics median-imputed (training medians) plus a 0/1 `<col>__missing` column
    for each numeric with missing training values: pytabkit's default transforms do not impute."""
    train = fold.x["train"]
    medians = train[fold.numeric].median()
    flagged = [c for c in fold.numeric if train[c].isna().any()]
    out = {}
    for split, x in fold.x.items():
        x = x.copy()
        for c in flagged:
            x[f"{c}__missing"] = x[c].isna().astype(np.float64)
        x[fold.numeric] = x[fold.numeric].fillna(medians)
        out[split] = x
    return out


def sklearn_lr(fold: Fold, seed: int, c: float) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
             fold.numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), fold.categorical),
        ]
    )  # fmt: skip
    model = Pipeline([("features", features), ("lr", LogisticRegression(C=c, max_iter=10_000))])
    model.fit(fold.x["train"], fold.y["train"])
    return model.predict_proba(fold.x["test"])[:, 1]


def catboost_direct(fold: Fold, seed: int, hp: dict[str, Any]) -> np.ndarray:
    from catboost import CatBoostClassifier

    booster = CatBoostClassifier(
        iterations=hp["iterations"],
        learning_rate=hp["learning_rate"],
        depth=hp["depth"],
        l2_leaf_reg=hp["l2_leaf_reg"],
        eval_metric=hp["eval_metric"],
        random_seed=seed,
        thread_count=hp.get("thread_count", -1),
        allow_writing_files=False,
        verbose=False,
    )
    booster.fit(
        fold.x["train"],
        fold.y["train"],
        cat_features=fold.categorical,
        eval_set=(fold.x["val"], fold.y["val"]),
        early_stopping_rounds=hp["early_stopping_rounds"],
        use_best_model=True,
    )
    return booster.predict_proba(fold.x["test"])[:, 1]


def lightgbm_direct(fold: Fold, seed: int, threads: int) -> np.ndarray:
    import lightgbm as lgb

    def frame(split: str) -> pd.DataFrame:
        x = fold.x[split].copy()
        for c in fold.categorical:  # categories of the training rows; unseen ones become NaN
            x[c] = pd.Categorical(x[c], categories=sorted(set(fold.x["train"][c])))
        return x

    model = lgb.LGBMClassifier(
        n_estimators=1000, learning_rate=0.05, n_jobs=threads, random_state=seed, verbose=-1
    )
    val: dict[str, Any] = {"eval_set": [(frame("val"), fold.y["val"])]}
    if "eval_X" in inspect.signature(model.fit).parameters:  # LightGBM >= 4.7 deprecates eval_set
        val = {"eval_X": (frame("val"),), "eval_y": (fold.y["val"],)}
    model.fit(
        frame("train"),
        fold.y["train"],
        **val,
        eval_metric="binary_logloss",
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    return model.predict_proba(frame("test"))[:, 1]


def pytabkit_model(name: str, fold: Fold, seed: int, threads: int, val_metric: str | None) -> np.ndarray:
    """RealMLP-TD, TabM-D or the RTDL ResNet at pytabkit's defaults. The ResNet (through skorch) prints
    as it trains and checkpoints into `tmp_folder` (else ./rtdl_checkpoints): its output is swallowed,
    its folder temporary."""
    import contextlib
    import io

    import pytabkit

    cls = {
        "realmlp_td": pytabkit.RealMLP_TD_Classifier,
        "tabm_d": pytabkit.TabM_D_Classifier,
        "resnet_rtdl": pytabkit.Resnet_RTDL_D_Classifier,
    }[name]
    kwargs: dict[str, Any] = {"device": "cpu", "n_threads": threads, "random_state": seed, "verbosity": 0}
    if val_metric:
        kwargs["val_metric_name"] = val_metric
    x = _numeric_for_nets(fold)
    with contextlib.ExitStack() as stack:
        if name == "resnet_rtdl":
            kwargs["tmp_folder"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="parity-rtdl-"))
            stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        model = cls(**kwargs)
        model.fit(
            x["train"], fold.y["train"], X_val=x["val"], y_val=fold.y["val"], cat_col_names=fold.categorical
        )
        proba = model.predict_proba(x["test"])
    return proba[:, list(model.classes_).index(1)]


def import_deepctr() -> Any:
    """`deepctr_torch`, without what its `__init__` does besides importing: it calls
    `deepctr_torch.utils.check_version`, which asks PyPI for the latest release from a (non-daemon)
    thread, and that module imports `requests`, which the package does not declare (0.3.0). A stub
    `deepctr_torch.utils` (nothing else in the package imports it) skips both."""
    import sys
    import types

    if "deepctr_torch" not in sys.modules:
        stub = types.ModuleType("deepctr_torch.utils")
        stub.check_version = lambda version: None  # type: ignore[attr-defined]
        sys.modules.setdefault("deepctr_torch.utils", stub)
    import deepctr_torch

    return deepctr_torch


@dataclass(frozen=True)
class DeepCTRSettings:
    embedding_dim: int = 8  # every SparseFeat (the library's own SparseFeat default is 4)
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10  # epochs without a lower validation log-loss
    patience_steps: int = 0  # ...but at least this many optimiser steps, as the zoo's early_stopping


def deepctr_inputs(fold: Fold) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], list[str]]:
    """DeepCTR-Torch inputs of each split: categoricals label-encoded on the training rows (0 is
    reserved for a value unseen there, training values are 1..n), numerics median-imputed and
    standardised on the training rows, 0/1 missing indicators as in `_numeric_for_nets`.
    Returns (split -> feature -> column, categorical -> vocabulary size, dense feature names)."""
    x = _numeric_for_nets(fold)
    train = x["train"]
    codes = {c: {v: i + 1 for i, v in enumerate(sorted(set(train[c])))} for c in fold.categorical}
    mean, std = train[fold.numeric].mean(), train[fold.numeric].std(ddof=0)
    std = std.where(std > 0, 1.0)
    indicators = [c for c in train.columns if c.endswith("__missing")]
    inputs = {}
    for split, frame in x.items():
        cols: dict[str, np.ndarray] = {}
        for c in fold.categorical:
            cols[c] = frame[c].map(codes[c]).fillna(0).to_numpy(dtype=np.int64)
        for c in fold.numeric:
            cols[c] = ((frame[c] - mean[c]) / std[c]).to_numpy(dtype=np.float64)
        for c in indicators:
            cols[c] = frame[c].to_numpy(dtype=np.float64)
        inputs[split] = cols
    vocab = {c: len(codes[c]) + 1 for c in fold.categorical}
    return inputs, vocab, [*fold.numeric, *indicators]


def deepctr_model(name: str, fold: Fold, seed: int, settings: DeepCTRSettings) -> tuple[np.ndarray, str]:
    """DeepCTR-Torch's DeepFM, FiBiNET or AutoInt at the library's architecture defaults, trained
    one epoch per `fit` call with Adam (the library's "adam": lr 1e-3) on binary cross-entropy;
    the state with the lowest validation log-loss predicts the test rows."""
    import contextlib
    import copy
    import io

    from sklearn.metrics import log_loss

    import_deepctr()
    from deepctr_torch import models
    from deepctr_torch.inputs import DenseFeat, SparseFeat

    inputs, vocab, dense = deepctr_inputs(fold)
    if name in ("deepctr_fibinet", "deepctr_autoint") and len(vocab) < 2:
        raise ValueError(f"{DEEPCTR[name]} interacts categorical fields only; this data has {len(vocab)}")
    columns = [
        SparseFeat(c, vocabulary_size=n, embedding_dim=settings.embedding_dim) for c, n in vocab.items()
    ]
    columns += [DenseFeat(c, 1) for c in dense]
    model = getattr(models, DEEPCTR[name])(columns, columns, task="binary", device="cpu", seed=seed)
    model.compile("adam", "binary_crossentropy")
    y_train = fold.y["train"].astype(np.float32)
    steps_per_epoch = -(-len(y_train) // settings.batch_size)
    patience = max(settings.patience, -(-settings.patience_steps // steps_per_epoch))
    best_loss, best_epoch, best_state = math.inf, -1, None
    epoch = 0
    for epoch in range(settings.max_epochs):
        with contextlib.redirect_stdout(io.StringIO()):  # fit prints the device and sizes every call
            model.fit(inputs["train"], y_train, batch_size=settings.batch_size, epochs=1, verbose=0)
        val = np.clip(model.predict(inputs["val"], settings.batch_size).reshape(-1), 1e-7, 1 - 1e-7)
        loss = log_loss(fold.y["val"], val, labels=[0, 1])
        if loss < best_loss:
            best_loss, best_epoch, best_state = loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    prob = model.predict(inputs["test"], settings.batch_size).reshape(-1)
    return prob, f"epochs={best_epoch + 1}/{epoch + 1} val_logloss={best_loss:.4f}"


def deepctr_defaults(name: str) -> str:
    """The library's architecture defaults of one model, as its signature gives them."""
    cls = getattr(import_deepctr().models, DEEPCTR[name])
    skip = {"seed", "task", "device", "gpus"}
    params = inspect.signature(cls).parameters.values()
    return ", ".join(
        f"{p.name}={p.default!r}" for p in params if p.default is not p.empty and p.name not in skip
    )


# --- running ------------------------------------------------------------------------------------


def lr_l2(seed: int, extra: list[str]) -> float | None:
    """The zoo lr's `l2` hyperparameter, if conf/model/lr.yaml (with the overrides) has one."""
    cfg = compose_cfg(["model=lr", f"seed={seed}", *[o for o in extra if o.startswith("model.")]])
    value = cfg.model.get("l2")
    return float(value) if value not in (None, 0) else None


def available(name: str) -> str | None:
    """Why a reference cannot run here, or None."""
    needs = {"lightgbm": "lightgbm", "realmlp_td": "pytabkit", "tabm_d": "pytabkit"}.get(name)
    if name in DEEPCTR:
        needs = "deepctr_torch"
    if name == "resnet_rtdl":
        needs = "pytabkit"
        try:
            __import__("skorch")
        except ImportError as err:
            return f"skorch is not installed ({err}); pytabkit's RTDL ResNet needs it: pip install skorch"
    if needs is None:
        return None
    try:
        import_deepctr() if needs == "deepctr_torch" else __import__(needs)
    except ImportError as err:
        return f"{needs} is not installed ({err}); pip install -e '.[bench]'"
    return None


def runner(name: str, args: argparse.Namespace) -> Callable[[str, Fold, int], tuple[dict[str, float], str]]:
    """A function (dataset, fold data, fold index) -> (test metrics, note) for one table entry."""
    entry = MODELS[name]
    if entry.zoo:
        return lambda ds, fold, k: run_zoo(name, ds, fold, args.n_folds, k, args.seed, args.zoo_override)

    def scored(fit: Callable[[Fold], np.ndarray], note: Callable[[Fold], str] = lambda f: "") -> Callable:
        def run(ds: str, fold: Fold, k: int) -> tuple[dict[str, float], str]:
            prob = np.clip(np.asarray(fit(fold), dtype=np.float64), 0.0, 1.0)
            metrics = compute_metrics(prob, fold.y["test"])
            return {m: metrics[m] for m in ("auc", "brier", "logloss")}, note(fold)

        return run

    if name == "sklearn_lr":
        return scored(lambda f: sklearn_lr(f, args.seed, 1.0))
    if name == "sklearn_lr_l2":
        l2 = args.l2

        def c_of(f: Fold) -> float:
            return 1.0 / (l2 * f.sizes["train"])

        return scored(lambda f: sklearn_lr(f, args.seed, c_of(f)), lambda f: f"C={c_of(f):.4g}")
    if name == "catboost_direct":
        hp = dict(OmegaConf.to_container(compose_cfg(["model=catboost", *args.zoo_override]).model))
        return scored(lambda f: catboost_direct(f, args.seed, hp))
    if name == "lightgbm":
        return scored(lambda f: lightgbm_direct(f, args.seed, args.threads))
    if name in ("realmlp_td", "tabm_d", "resnet_rtdl"):
        return scored(lambda f: pytabkit_model(name, f, args.seed, args.threads, args.pytabkit_val_metric))
    if name in DEEPCTR:
        settings = DeepCTRSettings(
            embedding_dim=args.deepctr_embedding_dim,
            max_epochs=args.deepctr_max_epochs,
            patience=args.deepctr_patience,
            patience_steps=args.deepctr_patience_steps,
        )

        def run_deepctr(ds: str, fold: Fold, k: int) -> tuple[dict[str, float], str]:
            prob, note = deepctr_model(name, fold, args.seed, settings)
            return scored(lambda f: prob)(ds, fold, k)[0], note

        return run_deepctr
    raise ValueError(name)


def run_all(args: argparse.Namespace, models: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if args.resume and args.out and args.out.is_file():
        with args.out.open() as handle:
            kept = [dict(r) for r in csv.DictReader(handle)]
        rows = [r for r in kept if not str(r.get("note", "")).startswith("failed")]  # failures run again
        print(f"resuming: {len(rows)} rows from {args.out} ({len(kept) - len(rows)} failed ones to rerun)")
    done = {(r["dataset"], r["model"], int(r["fold"]), int(r["n_folds"]), int(r["seed"])) for r in rows}
    runners = {m: runner(m, args) for m in models}
    for ds in args.datasets:
        for k in range(args.folds):
            todo = [m for m in models if (ds, m, k, args.n_folds, args.seed) not in done]
            if not todo:
                continue
            fold = build_fold(ds, args.n_folds, k, args.seed)
            sizes = fold.sizes
            split_sizes = "/".join(str(sizes[s]) for s in ("train", "val", "test"))
            print(f"\n{ds} fold {k}/{args.n_folds} (train/val/test {split_sizes})")
            for m in todo:
                torch.manual_seed(args.seed)
                started = time.perf_counter()
                try:
                    metrics, note = runners[m](ds, fold, k)
                except Terminated:
                    raise  # a stopped benchmark stops; it is not a failing entry
                except Exception as err:  # a benchmark reports a failing model and goes on
                    metrics = {"auc": math.nan, "brier": math.nan, "logloss": math.nan}
                    note = f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                seconds = time.perf_counter() - started
                row = {
                    "dataset": ds, "model": m, "fold": k, "n_folds": args.n_folds, "seed": args.seed,
                    **metrics, "seconds": round(seconds, 2),
                    "n_train": sizes["train"], "n_val": sizes["val"], "n_test": sizes["test"], "note": note,
                }  # fmt: skip
                rows.append(row)
                print(
                    f"  {MODELS[m].label:<30} AUC {metrics['auc']:.4f}  Brier {metrics['brier']:.4f}  "
                    f"{seconds:7.1f}s  {note}",
                    flush=True,
                )
                if args.out:
                    write_csv(args.out, rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


# --- the tables ---------------------------------------------------------------------------------


def _pm(values: pd.Series, digits: int = 4, signed: bool = False) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    sign = "+" if signed else ""
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():{sign}.{digits}f} ± {std:.{digits}f}"


def _paired_gap(frame: pd.DataFrame, model: str, reference: str, metric: str) -> pd.Series:
    """Per-fold differences model − reference on the folds both have."""
    a = frame[frame["model"] == model].set_index("fold")[metric]
    b = frame[frame["model"] == reference].set_index("fold")[metric]
    both = a.index.intersection(b.index)
    return (a[both] - b[both]).dropna()


def table(frame: pd.DataFrame, dataset: str, models: list[str]) -> str:
    """The Markdown table of one dataset, then the gaps of the zoo to its references."""
    frame = frame[frame["dataset"] == dataset].copy()
    for col in ("auc", "brier", "seconds"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["fold"] = frame["fold"].astype(int)
    present = [m for m in models if (frame["model"] == m).any()]
    first = frame.iloc[0]
    lines = [
        f"### {dataset}: folds {sorted(frame['fold'].unique().tolist())} of {first['n_folds']}, "
        f"seed {first['seed']} (train/val/test ≈ {first['n_train']}/{first['n_val']}/{first['n_test']})",
        "",
        "| model | AUC mean ± std | Brier mean ± std | gap AUC | gap Brier | gap vs "
        "| wall s total (per fold) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in present:
        rows = frame[frame["model"] == m]
        entry = MODELS[m]
        gap_auc = gap_brier = vs = "—"
        if entry.reference and (frame["model"] == entry.reference).any():
            gap_auc = _pm(_paired_gap(frame, m, entry.reference, "auc"), signed=True)
            gap_brier = _pm(_paired_gap(frame, m, entry.reference, "brier"), signed=True)
            vs = MODELS[entry.reference].label
        failed = rows["auc"].isna().sum()
        label = entry.label + (f" ({failed} of {len(rows)} folds failed)" if failed else "")
        notes = sorted({str(v) for v in rows["note"].dropna() if str(v) and not str(v).startswith("failed")})
        if m == "sklearn_lr_l2" and notes:
            label += f" [{', '.join(notes)}]"
        secs = rows["seconds"]
        lines.append(
            f"| {label} | {_pm(rows['auc'])} | {_pm(rows['brier'])} | {gap_auc} | {gap_brier} | {vs} | "
            f"{secs.sum():.1f} ({secs.mean():.1f}) |"
        )
    lines += ["", "Gaps (model − reference, mean ± std of the per-fold differences; AUC: + is the zoo ahead, "
              "Brier: + is the zoo behind):", ""]  # fmt: skip
    pairs = [("lr", "sklearn_lr"), ("lr", "sklearn_lr_l2"), ("catboost", "catboost_direct"),
             ("catboost", "lightgbm")]  # fmt: skip
    neural = [m for m in ("dnn", "wide_deep") if m in present]
    best = None
    if neural:
        means = {m: frame.loc[frame["model"] == m, "auc"].mean() for m in neural}
        best = max(neural, key=lambda m: -math.inf if math.isnan(means[m]) else means[m])
        pairs += [(best, "realmlp_td"), (best, "tabm_d")]
    pairs += [("resnet", "resnet_rtdl")]
    pairs += [(m, ref) for m, ref in (("deepfm", "deepctr_deepfm"), ("fibinet", "deepctr_fibinet"),
                                      ("autoint", "deepctr_autoint"))]  # fmt: skip
    interaction = [m for m in ("afcc", "fm", "deepfm", "fibinet", "autoint") if m in present]
    best_interaction = None
    if interaction:
        means = {m: frame.loc[frame["model"] == m, "auc"].mean() for m in interaction}
        best_interaction = max(interaction, key=lambda m: -math.inf if math.isnan(means[m]) else means[m])
        pairs += [(best_interaction, "catboost_direct")]
    for model, reference in pairs:
        if model not in present or reference not in present:
            continue
        name = MODELS[model].label
        if model == best and reference in ("realmlp_td", "tabm_d"):
            name = f"best zoo neural ({model}, by mean test AUC)"
        elif model == best_interaction and reference == "catboost_direct":
            name = f"best zoo interaction model ({model}, by mean test AUC)"
        auc = _paired_gap(frame, model, reference, "auc")
        brier = _paired_gap(frame, model, reference, "brier")
        if auc.empty:
            continue
        lines.append(
            f"- {name} − {MODELS[reference].label}: AUC {_pm(auc, signed=True)}, "
            f"Brier {_pm(brier, signed=True)} ({len(auc)} folds)"
        )
    failures = frame[frame["note"].astype(str).str.startswith("failed")]
    for (model, note), group in failures.groupby(["model", "note"], sort=False):
        folds = ", ".join(str(k) for k in sorted(group["fold"]))
        lines.append(f"- {MODELS[model].label} fold {folds}: {note}")
    return "\n".join(lines)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in (
        "torch",
        "pytorch-lightning",
        "scikit-learn",
        "catboost",
        "lightgbm",
        "pytabkit",
        "deepctr-torch",
    ):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} (absent)")
    return ", ".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", help=f"dataset configs (default: {' '.join(DATASETS)})")
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="entries (default: all)"
    )
    parser.add_argument("--folds", type=int, help="run folds 0..N-1 of the n-fold split (default: all)")
    parser.add_argument("--n-folds", type=int, default=5, help="folds of the split (default: 5)")
    parser.add_argument("--seed", type=int, default=0, help="the zoo's seed: split, init, library seeds")
    parser.add_argument("--out", type=Path, help="CSV of per-fold rows, rewritten after every model")
    parser.add_argument("--resume", action="store_true", help="keep --out's rows and skip what they hold")
    parser.add_argument("--quick", action="store_true", help="smoke run: german, 2 folds (unless given)")
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch (zoo and pytabkit) and LightGBM threads (default: 2). On a machine shared with other "
        "jobs use 1: with more threads than free cores, spin-waiting makes RealMLP and LightGBM ~10x slower",
    )
    parser.add_argument(
        "--zoo-override", nargs="*", default=[], help="extra Hydra overrides for the zoo runs (and model=lr/"
        "catboost hyperparameters read for the references), e.g. trainer.max_epochs=50",
    )  # fmt: skip
    parser.add_argument(
        "--pytabkit-val-metric", default=None,
        help="val_metric_name for RealMLP/TabM (default: the library's, classification error)",
    )  # fmt: skip
    parser.add_argument(
        "--deepctr-embedding-dim",
        type=int,
        default=DeepCTRSettings.embedding_dim,
        help="embedding_dim of every DeepCTR-Torch SparseFeat (default: 8; the library's is 4)",
    )
    parser.add_argument("--deepctr-max-epochs", type=int, default=DeepCTRSettings.max_epochs)
    parser.add_argument(
        "--deepctr-patience",
        type=int,
        default=DeepCTRSettings.patience,
        help="DeepCTR-Torch early stopping: epochs without a lower validation log-loss (default: 10)",
    )
    parser.add_argument(
        "--deepctr-patience-steps", type=int, default=DeepCTRSettings.patience_steps,
        help="...but at least this many optimiser steps (default: 0; the zoo's early_stopping.patience_steps "
        "is 300)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.datasets is None:
        args.datasets = ["german"] if args.quick else list(DATASETS)
    if args.folds is None:
        args.folds = 2 if args.quick else args.n_folds
    if not 1 <= args.folds <= args.n_folds:
        parser.error(f"--folds={args.folds}, expected 1..{args.n_folds}")
    return args


def quiet() -> None:
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "zoo", "hydra"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for pattern in (
        ".*does not have many workers.*",
        ".*isinstance\\(treespec, LeafSpec\\).*",
        ".*configure_optimizers.*returned `None`.*",
        ".*version_base.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet()
    torch.set_num_threads(args.threads)
    registry.store_configs(config_dir())
    models = list(dict.fromkeys(args.models))
    args.l2 = lr_l2(args.seed, args.zoo_override)
    skipped = []
    if "sklearn_lr_l2" in models and args.l2 is None:
        models.remove("sklearn_lr_l2")
        skipped.append("sklearn LR (C matched): conf/model/lr.yaml has no `l2` hyperparameter")
    for m in list(models):
        why = available(m)
        if why:
            models.remove(m)
            skipped.append(f"{MODELS[m].label}: {why}")
    print(
        f"parity: datasets {args.datasets}, folds {args.folds} of {args.n_folds}, seed {args.seed}, "
        f"{args.threads} threads; {versions()}"
    )
    matched = f"; matched C = 1/(l2·n_train) with l2={args.l2:g}" if args.l2 is not None else ""
    print(
        "sklearn LR features: raw frame, training-split median imputation (+ missing indicators) and "
        "standard scaling of numerics, one-hot categoricals (handle_unknown='ignore'); lbfgs, "
        f"max_iter=10000{matched}"
    )
    print(
        "CatBoost/LightGBM direct: raw frame, native categoricals, raw numerics (NaN kept); RealMLP/TabM/"
        "RTDL ResNet: raw frame, native categoricals, numerics median-imputed (+ missing indicators)"
    )
    deepctr = [m for m in models if m in DEEPCTR]
    if deepctr:
        print(
            "DeepCTR-Torch: raw frame, categoricals label-encoded on the training rows (0: unseen there) as "
            f"SparseFeat(embedding_dim={args.deepctr_embedding_dim}), numerics median-imputed and "
            "standardised on the training rows (+ missing indicators) as DenseFeat(1), all columns both "
            "linear and DNN features; compile('adam', 'binary_crossentropy'), batch 256, one epoch per fit, "
            f"up to {args.deepctr_max_epochs} epochs, the state with the lowest validation log-loss kept, "
            f"patience {args.deepctr_patience} epochs (and {args.deepctr_patience_steps} steps)"
        )
        for m in deepctr:
            print(f"  {DEEPCTR[m]} defaults: {deepctr_defaults(m)}")
    zoo_run = " ".join(zoo_overrides("<model>", "<dataset>", args.n_folds, 0, args.seed, args.zoo_override))
    print(f"zoo runs: zoo.train.train(cfg) with overrides {zoo_run.replace('data.fold=0', 'data.fold=<k>')}")
    for line in skipped:
        print(f"skipped: {line}")
    started = time.perf_counter()
    rows = run_all(args, models)
    frame = pd.DataFrame(rows, columns=CSV_FIELDS)
    print()
    for ds in args.datasets:
        if (frame["dataset"] == ds).any():
            print(table(frame, ds, list(MODELS)))
            print()
    print(f"total wall time {time.perf_counter() - started:.0f}s")
    if args.out:
        write_csv(args.out, rows)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
