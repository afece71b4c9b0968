"""The model contract as checks any model's tests can run, built-ins and plugins alike.

Each check is a plain function `check_<what>(model_name, tmp_path, *, overrides=None)` that raises
AssertionError when the model breaks the contract; `CONTRACT_CHECKS` holds them all. A plugin's
test file needs five lines:

    import pytest
    from zoo.testing import CONTRACT_CHECKS

    @pytest.mark.parametrize("check", CONTRACT_CHECKS, ids=lambda c: c.__name__)
    def test_contract(check, tmp_path):
        check("my_model", tmp_path)

Models are built from their default config (`default_config`: the shipped YAML, else the
constructor's defaults) with `TINY_OVERRIDES` and the caller's `overrides` on top. Data is tiny,
planted and on CPU; tree models (`zoo.models.tree.TreeModel`) are fitted through `fit_model`, and
through a real `CreditDataModule` (`planted_frame`) where the rows a fit sees are checked.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from zoo import registry
from zoo.data.preprocess import MISSING_SUFFIX, cross_name
from zoo.data.spec import (
    INDICATOR,
    MISSING_INDEX,
    N_RESERVED,
    RESERVED_LABELS,
    UNSEEN_INDEX,
    CategoricalField,
    CrossField,
    FeatureSpec,
    NumericField,
)
from zoo.fitting import fit_directly, save_fitted
from zoo.models.base import Batch, CreditModel
from zoo.models.tree import TreeModel

#: Hyperparameters set for tiny data wherever a model's config has them (boosters: few rounds,
#: one thread, as the contract runs in the CPU test session).
TINY_OVERRIDES: dict[str, Any] = {
    "iterations": 30,
    "n_estimators": 30,
    "n_trees": 30,
    "n_bootstrap": 2,
    "cv": False,
    "thread_count": 1,
    "n_jobs": 1,
}
#: Optimiser steps of `check_learns_planted_signal` (full batch, AdamW at the configured rate):
#: enough for the slowest built-in at its configured rate (fm at 1e-3 ranks the planted rows at
#: AUC 0.65 after 50 steps, 0.82 after 100).
LEARNING_STEPS = 100
#: The held-out AUC a model must reach on planted rows. The planted log-odds rank them at about
#: 0.87; a model that predicts the base rate (a bias alone) ranks them at exactly 0.5, and chance
#: on 400 rows spreads about 0.03 around that.
LEARNING_MIN_AUC = 0.70
#: What `check_fits_on_every_training_row` fits on: a `planted_frame` of this many rows (120 of
#: them training rows) in training batches that do not divide them (3 of 32, 24 rows left over).
ROWS_CHECK_FRAME = 200
ROWS_CHECK_BATCH = 32
#: The dataset config of a `planted_frame`, for `CreditDataModule`.
PLANTED_DATASET: dict[str, Any] = {"name": "planted", "target": "bad", "bad_value": 1}

# --- specs and batches ------------------------------------------------------------------------


def tiny_spec(
    n_categorical: int = 2,
    n_numeric: int = 2,
    *,
    crosses: bool = True,
    missing_indicator: bool = True,
    cardinality: int = 5,
) -> FeatureSpec:
    """A small spec as the DataModule builds it: labelled categoricals `cat_<j>`, standardised
    numerics `num_<j>` in raw units (mean 100, std 20), a missing indicator for the last numeric,
    crosses of neighbouring categoricals, and the default wide/deep routing."""
    if n_categorical < 0 or n_numeric < 0:
        raise ValueError(f"n_categorical={n_categorical}, n_numeric={n_numeric}, expected integers >= 0")
    if cardinality < N_RESERVED + 1:
        raise ValueError(f"cardinality={cardinality}, expected at least {N_RESERVED + 1}")
    categorical = tuple(
        CategoricalField(
            f"cat_{j}",
            cardinality,
            (*RESERVED_LABELS, *(f"c{j}_{i}" for i in range(cardinality - N_RESERVED))),
        )
        for j in range(n_categorical)
    )
    mean, std = 100.0, 20.0
    quantiles = tuple(float(q) for q in mean + std * np.linspace(-2.5, 2.5, 9))
    numeric = [
        NumericField(
            f"num_{j}",
            median=mean,
            mean=mean,
            std=std,
            missing_indicator=missing_indicator and j == n_numeric - 1,
            quantiles=quantiles,
        )
        for j in range(n_numeric)
    ]
    numeric += [
        NumericField(f"{f.name}{MISSING_SUFFIX}", encoding=INDICATOR, source=f.name)
        for f in list(numeric)
        if f.missing_indicator
    ]
    cross_fields = []
    if crosses:
        for left, right in zip(categorical, categorical[1:], strict=False):
            labels = [f"{a}|{b}" for a in left.labels[N_RESERVED:] for b in right.labels[N_RESERVED:]]
            cross_fields.append(
                CrossField(
                    cross_name((left.name, right.name)),
                    (left.name, right.name),
                    N_RESERVED + len(labels),
                    (*RESERVED_LABELS, *labels),
                )
            )
    names = [f.name for f in categorical]
    groups = {
        "wide": (*names, *(f.name for f in cross_fields)),
        "deep": (*names, *(f.name for f in numeric)),
    }
    return FeatureSpec(categorical, tuple(numeric), tuple(cross_fields), groups)


def edge_specs() -> dict[str, FeatureSpec]:
    """The specs every model must build from: the usual one and the degenerate ones."""
    return {
        "usual": tiny_spec(),
        "no_categorical": tiny_spec(0, 2),
        "no_numeric": tiny_spec(3, 0),
        "one_categorical": tiny_spec(1, 0),
        "one_numeric": tiny_spec(0, 1, missing_indicator=False),
    }


def tiny_batch(spec: FeatureSpec, n: int = 16, seed: int = 0, *, raw_values: bool = False) -> Batch:
    """A random batch that follows `spec` exactly, as the DataModule's batches do; `raw_values`
    adds `x_raw` (raw numerics, NaN where missing), which models with `uses_raw_values` get."""
    gen = torch.Generator().manual_seed(seed)

    def indices(cardinalities: list[int]) -> torch.Tensor:
        columns = [torch.randint(0, c, (n,), generator=gen) for c in cardinalities]
        return torch.stack(columns, 1) if columns else torch.zeros(n, 0, dtype=torch.int64)

    x_cat = indices(spec.cardinalities)
    x_cross = torch.zeros(n, spec.n_crosses, dtype=torch.int64)
    position = {f.name: j for j, f in enumerate(spec.categorical)}
    for j, cross in enumerate(spec.crosses):
        sources = x_cat[:, [position[s] for s in cross.sources]]
        key = torch.zeros(n, dtype=torch.int64)
        for k, source in enumerate(cross.sources):  # mixed-radix key of the sources' categories
            field = spec.field(source)
            assert isinstance(field, CategoricalField)  # a cross's sources are categorical fields
            radix = field.cardinality - N_RESERVED
            key = key * radix + (sources[:, k] - N_RESERVED).clamp(min=0)
        reserved = torch.where((sources == MISSING_INDEX).any(1), MISSING_INDEX, UNSEEN_INDEX)
        x_cross[:, j] = torch.where((sources < N_RESERVED).any(1), reserved, key + N_RESERVED)
    raw = {}
    for f in spec.raw_numeric:
        values = f.mean + f.std * torch.randn(n, generator=gen, dtype=torch.float64)
        if f.missing_indicator:
            values[torch.rand(n, generator=gen) < 0.2] = math.nan
        raw[f.name] = values.numpy()
    x_num = np.stack([f.encode(raw[f.source or f.name]) for f in spec.numeric], 1) if spec.numeric else None
    batch = {
        "x_cat": x_cat,
        "x_num": torch.from_numpy(x_num).float() if x_num is not None else torch.zeros(n, 0),
        "x_cross": x_cross,
        "y": (torch.rand(n, generator=gen) < 0.3).float(),
        "row": torch.arange(n, dtype=torch.int64),
    }
    if raw_values:
        columns = [torch.from_numpy(raw[f.name]) for f in spec.raw_numeric]
        batch["x_raw"] = torch.stack(columns, 1).float() if columns else torch.zeros(n, 0)
    return batch


def planted_batch(spec: FeatureSpec, n: int = 200, seed: int = 0, *, raw_values: bool = False) -> Batch:
    """`tiny_batch` with labels that depend on the first numeric and the first categorical field
    (whichever the spec has): logit = 2 z + an effect per category, z the standardised value."""
    batch = tiny_batch(spec, n, seed, raw_values=raw_values)
    logit = torch.zeros(n)
    if spec.raw_numeric:
        logit += 2.0 * batch["x_num"][:, spec.numeric.index(spec.raw_numeric[0])]
    if spec.categorical:
        effects = torch.linspace(-2.0, 2.0, spec.categorical[0].cardinality)
        logit += effects[batch["x_cat"][:, 0]]
    gen = torch.Generator().manual_seed(seed + 1)
    batch["y"] = (torch.rand(n, generator=gen) < torch.sigmoid(logit)).float()
    return batch


def planted_frame(n: int = ROWS_CHECK_FRAME, seed: int = 0) -> pd.DataFrame:
    """A frame as a user's file gives it, for `CreditDataModule(PLANTED_DATASET, frame=...)`: the
    label `bad` is planted as in `planted_batch` (2 z of `num_0` + an effect per `cat_0` level);
    `cat_1` and `num_1` (a fifth missing) are noise."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, 4, n)
    num_0 = rng.normal(100.0, 20.0, n)
    num_1 = rng.normal(50.0, 10.0, n)
    num_1[rng.random(n) < 0.2] = np.nan
    logit = 2.0 * (num_0 - 100.0) / 20.0 + np.linspace(-2.0, 2.0, 4)[level]
    return pd.DataFrame(
        {
            "cat_0": np.array(["a", "b", "c", "d"])[level],
            "cat_1": np.array(["x", "y", "z"])[rng.integers(0, 3, n)],
            "num_0": num_0.round(2),
            "num_1": num_1.round(2),
            "bad": (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64),
        }
    )


# --- building models --------------------------------------------------------------------------


def default_config(model_name: str) -> dict[str, Any]:
    """The model's default config as `zoo-train` composes it: the shipped `conf/model/<name>.yaml`,
    else the constructor's defaults (what `registry.store_configs` stores for plugins).

    Composed once per model and source (a Hydra compose takes ~0.15 s; the contract asks for each
    model's config in every check); each call returns a fresh copy."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from zoo.train import config_dir

    shipped = config_dir() / "model" / f"{model_name}.yaml"
    if not shipped.is_file():
        stored = ConfigStore.instance().repo.get("model", {})
        if f"{model_name}.yaml" not in stored:
            registry.store_configs(config_dir())  # as zoo-train does at start-up, once
            stored = ConfigStore.instance().repo.get("model", {})
        node = stored.get(f"{model_name}.yaml")
        source = OmegaConf.to_yaml(node.node) if node is not None else ""
    else:
        source = shipped.read_text()
    return copy.deepcopy(_composed_model_config(model_name, source))


@functools.cache
def _composed_model_config(model_name: str, source: str) -> dict[str, Any]:
    """`default_config`'s composition; `source` (the model's YAML or stored node) keys the cache,
    so a config stored anew under the same name is composed anew."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from zoo.train import config_dir

    with initialize_config_dir(config_dir=str(config_dir())):
        model = compose("config", overrides=[f"model={model_name}"]).model
    config = OmegaConf.to_container(model, resolve=True)
    assert isinstance(config, dict)
    # `description` is what `zoo models` shows for the name, not a hyperparameter (zoo.train drops it too).
    return {str(k): v for k, v in config.items() if k != "description"}


def model_class(model_name: str) -> type[CreditModel]:
    """The registered class, which must be a `CreditModel` (the contract's hooks live there)."""
    cls = registry.get(model_name)
    _expect(
        issubclass(cls, CreditModel),
        f"model {model_name!r}: {cls.__qualname__} does not subclass zoo.models.base.CreditModel",
    )
    return cls


def build(
    config: Mapping[str, Any], feature_spec: FeatureSpec, overrides: Mapping[str, Any] | None = None
) -> CreditModel:
    """The model of a config (`default_config`) with `TINY_OVERRIDES` where it has those keys,
    then `overrides`, built by `zoo.train.build_model` as `zoo-train` builds it."""
    from zoo.train import build_model

    model_class(str(config["name"]))
    config = {**config, **{k: v for k, v in TINY_OVERRIDES.items() if k in config}, **(overrides or {})}
    model = build_model(config, feature_spec)
    assert isinstance(model, CreditModel)
    return model


def crosses_settings(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{"use_crosses": False}, {"use_crosses": True}] when the config has the key, else [{}]."""
    if "use_crosses" in config:
        return [{"use_crosses": False}, {"use_crosses": True}]
    return [{}]


def to_arrays(batch: Batch) -> dict[str, np.ndarray]:
    return {key: value.numpy() for key, value in batch.items()}


def fit_tree(model: TreeModel, train: Batch, val: Batch) -> TreeModel:
    """Fit a tree model through its own API, as `TreeModel` does at the start of training."""
    model.fitted = model.fit_model(to_arrays(train), to_arrays(val))
    return model


def quiet_trainer(root: Path | str | None, **settings: Any) -> pl.Trainer:
    """A one-epoch CPU Trainer that writes nothing (no logger, checkpoint, bar or summary) under
    `root`; `settings` add to or replace these."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(root) if root is not None else None,
    }
    return pl.Trainer(**{**options, **settings})


def _concat(batches: list[Batch]) -> Batch:
    """Batches as one batch, key by key."""
    return {key: torch.cat([b[key] for b in batches]) for key in batches[0]}


def ready(model: CreditModel, seed: int = 0) -> CreditModel:
    """The model in eval mode, fitted first if it is a tree model (on planted rows)."""
    if isinstance(model, TreeModel):
        spec, raw = model.feature_spec, model.uses_raw_values
        train, val = (planted_batch(spec, n, seed + i, raw_values=raw) for i, n in ((0, 120), (1000, 60)))
        fit_tree(model, train, val)
    return model.eval()


def total_loss(terms: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The loss a `loss` hook returns: the tensor itself or its "loss" term."""
    return terms if isinstance(terms, torch.Tensor) else terms["loss"]


# --- the checks -------------------------------------------------------------------------------


def check_builds_from_edge_specs(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """Builds from specs with no categorical, no numeric, a single categorical or a single numeric
    field, with crosses on and off; for each, finite logits [B] in eval mode and (neural models)
    a loss whose gradient reaches every parameter."""
    config = default_config(model_name)
    for label, spec in edge_specs().items():
        for crosses in crosses_settings(config):
            where = f"model {model_name!r}, spec {label!r} {crosses or ''}"
            with _seeded(0):
                try:
                    model = ready(build(config, spec, {**crosses, **(overrides or {})}))
                except Exception as err:
                    raise AssertionError(f"{where}: building or fitting failed: {err!r}") from err
                batch = tiny_batch(spec, 8, seed=1, raw_values=model.uses_raw_values)
                with torch.no_grad():
                    _expect_logits(model(batch), 8, where)
                _expect_trainable(model, batch, where)


def check_forward_gives_logits(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """Eval mode: finite float logits [B], the same on a second call. Training mode (neural
    models): `loss(batch, forward(batch))` is a finite scalar whose gradient reaches every
    trainable parameter (an unused parameter breaks DDP)."""
    config, spec = default_config(model_name), tiny_spec()
    for crosses in crosses_settings(config):
        where = f"model {model_name!r} {crosses or ''}"
        with _seeded(0):
            model = ready(build(config, spec, {**crosses, **(overrides or {})}))
            batch = tiny_batch(spec, 16, seed=1, raw_values=model.uses_raw_values)
            with torch.no_grad():
                logits = model(batch)
                _expect_logits(logits, 16, where)
                _expect(torch.equal(logits, model(batch)), f"{where}: eval-mode forward is not deterministic")
            _expect_trainable(model, batch, where)


def check_learns_planted_signal(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """On 200 rows whose label depends on one numeric and one categorical field, neural models
    after `LEARNING_STEPS` full-batch AdamW steps at their configured rates, tree models after
    `fit_model`, rank 400 held-out planted rows at AUC >= `LEARNING_MIN_AUC` (the base rate: 0.5)."""
    from sklearn.metrics import roc_auc_score

    spec = tiny_spec()
    with _seeded(0):
        model = build(default_config(model_name), spec, overrides)
        raw = model.uses_raw_values
        train = planted_batch(spec, 200, seed=0, raw_values=raw)
        if isinstance(model, TreeModel):
            fit_tree(model, train, planted_batch(spec, 100, seed=1, raw_values=raw))
            how = "after fit_model"
        else:
            _take_steps(model, train, LEARNING_STEPS)
            how = f"after {LEARNING_STEPS} AdamW steps (learning_rate={model.learning_rate})"
        test = planted_batch(spec, 400, seed=2, raw_values=raw)
        with torch.no_grad():
            logits = model.eval()(test)
    auc = float(roc_auc_score(test["y"].numpy(), logits.detach().double().numpy()))
    _expect(
        auc >= LEARNING_MIN_AUC,
        f"model {model_name!r}: held-out AUC {auc:.3f} on planted rows {how}; expected at least "
        f"{LEARNING_MIN_AUC} (a model of the base rate alone scores 0.5)",
    )


def _take_steps(model: CreditModel, batch: Batch, steps: int) -> None:
    """Full-batch AdamW steps on the model's own loss, at its configured learning rate."""
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=model.learning_rate)
    model.train()
    for _ in range(steps):
        loss = total_loss(model.loss(batch, model(batch)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def check_fits_on_every_training_row(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """One Lightning epoch through a `CreditDataModule` with `drop_last=True` and training batches
    that do not divide the training rows. A `TreeModel` is fitted on exactly the training split's
    rows (count and row ids). A gradient model's epoch sees only training rows, none twice, and
    leaves out fewer rows than a batch: the ragged rest that `drop_last` asks to drop."""
    from zoo.data.datamodule import CreditDataModule

    cls = model_class(model_name)
    with _seeded(0), _quiet_lightning():
        dm = CreditDataModule(
            PLANTED_DATASET,
            frame=planted_frame(ROWS_CHECK_FRAME),
            batch_size=ROWS_CHECK_BATCH,
            drop_last=True,
            raw_values=bool(getattr(cls, "uses_raw_values", False)),
        )
        training_rows = np.sort(dm.split_arrays("train")["row"])
        model = build(default_config(model_name), dm.feature_spec, overrides)
        seen = _RowsSeen()
        if isinstance(model, TreeModel):
            model.fit_model = seen.recording(model.fit_model)  # type: ignore[method-assign]
            fit_directly(model, dm)  # as zoo-train fits it (zoo/fitting.py)
        else:
            trainer = quiet_trainer(tmp_path, limit_val_batches=0, num_sanity_val_steps=0, callbacks=[seen])
            trainer.fit(model, datamodule=dm)
    where = (
        f"model {model_name!r} with data.drop_last=true and batch size {ROWS_CHECK_BATCH} "
        f"({len(training_rows)} training rows)"
    )
    if isinstance(model, TreeModel):
        _expect_rows_fitted(seen.fitted, training_rows, where)
    else:
        _expect_rows_trained(seen.batches, training_rows, where)


class _RowsSeen(pl.Callback):
    """The row ids of every training batch (a callback) and of the rows `fit_model` got."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.fitted: np.ndarray | None = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.batches.append(batch["row"].detach().cpu().numpy())

    def recording(self, fit_model: Callable[..., Any]) -> Callable[..., Any]:
        """`fit_model`, noting the row ids of the training arrays it is given."""

        def fit(train: Mapping[str, np.ndarray], val: Mapping[str, np.ndarray]) -> Any:
            self.fitted = np.asarray(train["row"]).copy()
            return fit_model(train, val)

        return fit


def _expect_rows_fitted(fitted: np.ndarray | None, training_rows: np.ndarray, where: str) -> None:
    """A direct-fit model's training rows are the split's, each once."""
    _expect(fitted is not None, f"{where}: fit_model was never called by zoo.fitting.fit_directly")
    assert fitted is not None
    missing = np.setdiff1d(training_rows, fitted)
    _expect(
        len(fitted) == len(training_rows) and np.array_equal(np.sort(fitted), training_rows),
        f"{where}: fitted on {len(fitted)} rows, expected exactly the {len(training_rows)} training "
        f"rows; {len(missing)} training rows missing, {len(np.setdiff1d(fitted, training_rows))} "
        "rows from outside the training split",
    )


def _expect_rows_trained(batches: list[np.ndarray], training_rows: np.ndarray, where: str) -> None:
    """A gradient model's epoch: training rows only, none twice, fewer than a batch left out."""
    seen = np.concatenate(batches) if batches else np.zeros(0, np.int64)
    strangers = np.setdiff1d(seen, training_rows)
    _expect(not len(strangers), f"{where}: trained on {len(strangers)} rows outside the training split")
    _expect(len(np.unique(seen)) == len(seen), f"{where}: an epoch served some training rows twice")
    left_out = len(training_rows) - len(seen)
    _expect(
        0 <= left_out < ROWS_CHECK_BATCH,
        f"{where}: an epoch left out {left_out} training rows, expected fewer than a batch",
    )


def check_checkpoint_round_trip(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """A short fit (Lightning's, or a direct one), saved as zoo-train saves it, then
    `load_from_checkpoint(..., weights_only=True)` gives back the same class with identical predictions."""
    from torch.utils.data import DataLoader

    spec = tiny_spec()
    cls = model_class(model_name)
    with _seeded(0), _quiet_lightning():
        model = build(default_config(model_name), spec, overrides)
        raw = model.uses_raw_values
        train = [planted_batch(spec, 64, seed=s, raw_values=raw) for s in (0, 1)]
        val = [planted_batch(spec, 64, seed=2, raw_values=raw)]
        path = Path(tmp_path) / f"{model_name}.ckpt"
        if isinstance(model, TreeModel):
            fit_tree(model, _concat(train), val[0])
            save_fitted(model, path)  # as zoo-train saves a direct fit (zoo/fitting.py)
        else:
            trainer = quiet_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1, log_every_n_steps=1)
            # A list of ready batches is a map-style dataset to DataLoader (batch_size=None: as they are).
            train_loader: DataLoader = DataLoader(train, batch_size=None)  # type: ignore[arg-type]
            val_loader: DataLoader = DataLoader(val, batch_size=None)  # type: ignore[arg-type]
            trainer.fit(model, train_loader, val_loader)
            trainer.save_checkpoint(path, weights_only=False)  # full state, as zoo-train's checkpoints
        loaded = cls.load_from_checkpoint(path, weights_only=True)
    _expect(type(loaded) is type(model), f"model {model_name!r}: loaded a {type(loaded).__qualname__}")
    batch = planted_batch(spec, 32, seed=3, raw_values=raw)
    with torch.no_grad():
        expected, got = model.eval()(batch), loaded.eval()(batch)
    _expect(
        torch.equal(expected, got),
        f"model {model_name!r}: predictions after load_from_checkpoint differ by up to "
        f"{(expected - got).abs().max().item():.3g}",
    )


def check_batch_of_one(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """A batch of a single row gives one finite logit in eval mode."""
    config, spec = default_config(model_name), tiny_spec()
    for crosses in crosses_settings(config):
        with _seeded(0):
            model = ready(build(config, spec, {**crosses, **(overrides or {})}))
            batch = tiny_batch(spec, 1, seed=1, raw_values=model.uses_raw_values)
            with torch.no_grad():
                _expect_logits(model(batch), 1, f"model {model_name!r} {crosses or ''}, a batch of one")


def check_config_matches_constructor(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """The default config names the model and lists exactly the constructor's keyword
    hyperparameters (less `feature_spec`); the constructor takes no *args or **kwargs."""
    cls = model_class(model_name)
    config = default_config(model_name)
    _expect(config.get("name") == model_name, f"model {model_name!r}: config name is {config.get('name')!r}")
    params = inspect.signature(cls).parameters.values()
    variadic = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    _expect(not variadic, f"model {model_name!r}: constructor takes *{variadic}; name every hyperparameter")
    keywords = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    keywords.discard("feature_spec")
    keys = set(config) - {"name"}
    _expect(
        keys == keywords,
        f"model {model_name!r}: config keys and constructor hyperparameters differ: only in the config "
        f"{sorted(keys - keywords)}, only in the constructor {sorted(keywords - keys)}",
    )


def check_writes_importance(
    model_name: str, tmp_path: Path, *, overrides: Mapping[str, Any] | None = None
) -> None:
    """`zoo.explain` writes importance.csv for the model: one finite permutation row per field
    (2 repeats on 60 planted rows), and native rows, if the model has them, on its fields only."""
    from zoo.explain.fields import fields_of
    from zoo.explain.importance import IMPORTANCE_FILE, PERMUTATION, field_importance, write_importance

    spec = tiny_spec()
    with _seeded(0):
        model = ready(build(default_config(model_name), spec, overrides))
        rows = {
            k: v.numpy() for k, v in planted_batch(spec, 60, seed=5, raw_values=model.uses_raw_values).items()
        }
        write_importance(tmp_path, field_importance(model, rows, rows, repeats=2), title=model_name)
    import pandas as pd

    table = pd.read_csv(tmp_path / IMPORTANCE_FILE)
    names = sorted(f.name for f in fields_of(spec))
    permuted = table[table["method"] == PERMUTATION]
    where = f"model {model_name!r}: importance.csv"
    _expect(
        sorted(permuted["field"]) == names,
        f"{where} permutation rows {sorted(permuted['field'])}, expected {names}",
    )
    _expect(bool(np.isfinite(table["importance"]).all()), f"{where} has non-finite importances")
    strange = sorted(set(table["field"]) - set(names))
    _expect(not strange, f"{where} names fields the spec does not have: {strange}")


Check = Callable[..., None]
#: Every check of the model contract, each `check(model_name, tmp_path, *, overrides=None)`.
CONTRACT_CHECKS: tuple[Check, ...] = (
    check_builds_from_edge_specs,
    check_forward_gives_logits,
    check_learns_planted_signal,
    check_fits_on_every_training_row,
    check_checkpoint_round_trip,
    check_batch_of_one,
    check_config_matches_constructor,
    check_writes_importance,
)


# --- helpers ----------------------------------------------------------------------------------


def _expect(condition: bool, message: str) -> None:
    """An assertion that `python -O` keeps."""
    if not condition:
        raise AssertionError(message)


def _expect_logits(logits: Any, n: int, where: str) -> None:
    _expect(
        isinstance(logits, torch.Tensor) and logits.is_floating_point(),
        f"{where}: eval-mode forward returned {type(logits).__name__}, expected a float tensor of logits",
    )
    _expect(tuple(logits.shape) == (n,), f"{where}: logits of shape {tuple(logits.shape)}, expected ({n},)")
    _expect(bool(torch.isfinite(logits).all()), f"{where}: logits are not all finite: {logits.tolist()}")


def _expect_trainable(model: CreditModel, batch: Batch, where: str) -> None:
    """Neural models: in training mode, `loss(batch, forward(batch))` is a finite scalar whose
    gradient reaches every trainable parameter (one that gets none breaks DDP)."""
    if isinstance(model, TreeModel):
        return
    model.train()
    model.zero_grad(set_to_none=True)
    loss = total_loss(model.loss(batch, model(batch)))
    _expect(
        isinstance(loss, torch.Tensor) and loss.ndim == 0 and bool(torch.isfinite(loss)),
        f"{where}: loss(batch, output) is {loss!r}, expected a finite scalar tensor",
    )
    loss.backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    _expect(not unused, f"{where}: parameters without a gradient (they break DDP): {unused}")
    model.zero_grad(set_to_none=True)
    model.eval()


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """A fixed torch seed and one thread inside (tiny data gains nothing from more, and on a busy
    machine they wait on each other); the caller's random state and threads untouched outside."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence what Lightning says about tiny in-memory loaders and tree models (no optimiser, a
    state dict without parameters), and nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*`LightningModule.configure_optimizers` returned `None`.*")
        warnings.filterwarnings("ignore", ".*contains no parameters.*")
        yield
