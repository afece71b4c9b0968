"""The one DataModule every model shares: frame -> validated, split, preprocessed device tensors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch

from zoo.config_targets import plain as _plain
from zoo.data import splits
from zoo.data.batches import DeviceBatches
from zoo.data.guards import check_data
from zoo.data.preprocess import Preprocessor, check_cross_auto_k, cross_name
from zoo.data.sources import (
    DATASET_DEFAULTS,
    check_dataset_keys,
    describe_source,
    file_source_stamp,
    load_frame,
)
from zoo.data.spec import FeatureSpec
from zoo.data.threads import map_columns
from zoo.data.validate import check_features, infer_roles, integer_categories, resolve_target
from zoo.errors import ZooError
from zoo.fairness.settings import check_protected_columns, protected_columns

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: Training rows kept (a seeded sample beyond) with their raw feature values, for the proxies of the
#: protected attributes (zoo/fairness/proxies.py).
PROXY_ROWS = 20_000


class CreditDataModule(pl.LightningDataModule):
    """Loads a dataset config (or a given frame), fits preprocessing on the training split only,
    and serves fixed-shape batches from tensors on the training device."""

    def __init__(
        self,
        dataset: Mapping[str, Any],
        *,
        frame: pd.DataFrame | None = None,
        batch_size: int = 256,
        eval_batch_size: int = 8192,
        split: Mapping[str, float] | None = None,
        n_folds: int | None = None,
        fold: int = 0,
        seed: int = 0,
        split_seed: int | None = None,
        split_column: str | None = None,
        fold_column: str | None = None,
        date_column: str | None = None,
        raw_values: bool = False,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        self.dataset = dict(_plain(dataset))
        self.frame = frame
        if int(batch_size) < 1:
            raise ZooError(f"data.batch_size={batch_size}, expected a positive integer")
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.split = {"train": 0.6, "val": 0.2, "test": 0.2, **dict(_plain(split) or {})}
        self.n_folds = n_folds
        self.fold = fold
        self.seed = seed
        self.split_seed = seed if split_seed is None else int(split_seed)
        self.raw_values = raw_values
        self.drop_last = bool(drop_last)  # training batches of static shape (DeviceBatches)
        self.split_columns = {
            "split_column": split_column,
            "fold_column": fold_column,
            "date_column": date_column,
        }
        chosen = [f"data.{k}" for k, v in self.split_columns.items() if v]
        if len(chosen) > 1 or (chosen and n_folds and not fold_column):
            given = chosen + (["data.n_folds"] if n_folds and not fold_column else [])
            raise ZooError(f"{' and '.join(given)} are both set; choose one way to split the rows")
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.ids: dict[str, np.ndarray] = {}
        self._tensors: dict[str, dict[str, torch.Tensor]] = {}
        self._feature_spec: FeatureSpec | None = None
        self.warnings: list[str] = []  # the data guards' findings, one line each (metrics.json)
        # dataset.protected: each split's values of the protected columns, row-aligned with
        # `arrays[split]`, kept aside for the fairness metrics and never fed to a model (unless
        # dataset.allow_protected makes one a feature as well); `protected_sample`: raw training
        # rows (features and protected columns) for the proxies. Empty without dataset.protected.
        self.protected: dict[str, pd.DataFrame] = {}
        self.protected_columns: list[str] = []
        self.allowed_protected: list[str] = []
        self.dropped_for_protected: list[str] = []  # crosses and group entries that read one
        self.protected_sample: pd.DataFrame | None = None
        self.timings: dict[str, float] = {}  # seconds per stage of build() and setup() (benchmarks)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - started

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name", "frame"))

    @property
    def feature_spec(self) -> FeatureSpec:
        if self._feature_spec is None:
            self.build()
        assert self._feature_spec is not None
        return self._feature_spec

    def build(self) -> None:
        """Validate, split and preprocess once; idempotent, so it can run before the Trainer."""
        if self._feature_spec is not None:
            return
        ds = self.dataset
        check_dataset_keys(ds)
        protected, allowed = protected_columns(ds)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # a file's digest is taken while it is parsed (hashing releases the GIL)
            of_file = self.frame is None and ds.get("source", "file") == "file"
            stamp = file_source_stamp(ds) if of_file else None
            digest = pool.submit(describe_source, ds, None) if of_file else None
            with self._timed("read"):
                frame = self.frame if self.frame is not None else load_frame(ds)
            with self._timed("digest"):
                source = ds if self.frame is None else {"source": "frame"}
                self.source = digest.result() if digest else describe_source(source, frame)
            if stamp is not None and file_source_stamp(ds) != stamp:
                # the parser and the digest read the file apart: both must have seen the same bytes
                raise ZooError(
                    f"data file {stamp['path']!r} changed while it was read; run again once it is "
                    "no longer being written"
                )
        for key in ("target", "bad_value"):
            if ds.get(key) in (None, "???"):
                raise ZooError(f"dataset.{key} is not set for dataset {self.dataset_name!r}")
        with self._timed("validate"):
            features, y, positions = resolve_target(
                frame, target=ds["target"], bad_value=ds["bad_value"], good_value=ds.get("good_value")
            )
            roles = infer_roles(features, ds.get("roles"))
        check_protected_columns(protected, features.columns, target=ds["target"])
        excluded = [c for c in protected if c not in allowed]
        roles.update(dict.fromkeys(excluded, "ignore"))  # kept aside below, never a feature
        protected_values = features[protected]
        id_columns = [c for c, r in roles.items() if r == "id"]
        # ids of the kept rows (resolve_target dropped unlabelled ones), aligned with `y`
        id_values = features[id_columns[0]].to_numpy() if id_columns else None
        with self._timed("split"):
            parts = self._split(features, y, roles)  # split columns become ignored, never features
        given = {
            str(c)
            for cols in dict(ds.get("roles") or {}).values()
            for c in ([cols] if isinstance(cols, str) else cols or [])
        }
        inferred = {c: r for c, r in roles.items() if c not in given}
        setting = {key: ds.get(key, default) for key, default in DATASET_DEFAULTS.items()}
        coded = integer_categories(features, inferred, parts[0], setting["integer_categories"])
        roles.update({c: "categorical" for c in coded})
        with self._timed("validate"):
            features = check_features(features, roles)
        with self._timed("guards"):
            found = check_data(
                features,
                y,
                roles,
                parts,
                given_roles=ds.get("roles"),
                allow_leaky=ds.get("allow_leaky"),
                protected=protected,
            )
        roles.update(dict.fromkeys(found.id_like, "ignore"))  # listed in schema()'s `ignored`
        self.warnings = found.warnings
        if allowed:
            line = (
                f"protected column(s) used as features by dataset.allow_protected: {', '.join(allowed)}; "
                "a lender may not be allowed to use them (docs/fairness.md)"
            )
            log.warning("%s", line)
            self.warnings.append(line)
        crosses, groups = self._without_protected(ds, excluded)
        categorical = [c for c, r in roles.items() if r == "categorical"]
        numeric = [c for c, r in roles.items() if r == "numeric"]
        preprocessor = Preprocessor(
            categorical=categorical,
            numeric=numeric,
            crosses=crosses,
            cross_auto_k=check_cross_auto_k(setting["cross_auto_k"]),
            cross_hash_buckets=ds.get("cross_hash_buckets"),
            numeric_encoding=setting["numeric_encoding"] or DATASET_DEFAULTS["numeric_encoding"],
            special_values=ds.get("special_values"),
            detect_special_values=setting["detect_special_values"],
            numeric_bins=setting["numeric_bins"],
        )
        with self._timed("fit"):
            preprocessor.fit(features.iloc[parts[0]])
        for line in preprocessor.special_report(len(parts[0])):
            log.info(line)
            self.warnings.append(line)
        with self._timed("transform"):
            # every row at once (a row's arrays depend on it alone), then the splits' rows of each
            encoded = preprocessor.transform(features, raw=self.raw_values)
            # each split's rows of each array, gathered on every core
            tasks = [(rows, key) for rows in parts for key in encoded]
            gathered = iter(map_columns(lambda t: encoded[t[1]][t[0]], tasks, rows=len(y)))
            for name, rows in zip(SPLITS, parts, strict=True):
                arrays = {key: next(gathered) for key in encoded}
                arrays["y"] = y[rows].astype(np.float32)
                arrays["row"] = positions[rows].astype(np.int64)  # the row's position in the input frame
                self.arrays[name] = arrays
                if id_values is not None:
                    self.ids[name] = id_values[rows]
                if protected:
                    self.protected[name] = protected_values.iloc[rows].reset_index(drop=True)
        self.preprocessor = preprocessor
        self.roles = roles
        if protected:
            self.protected_columns, self.allowed_protected = protected, allowed
            self.protected_sample = self._proxy_rows(features, protected_values, parts[0])
        self._feature_spec = preprocessor.feature_spec(groups)
        log.info(
            "dataset %s: %s rows (train/val/test), bad rate %.3f, %d categorical, %d numeric, %d crosses",
            self.dataset_name,
            "/".join(str(len(self.arrays[s]["y"])) for s in SPLITS),
            float(y.mean()),
            self._feature_spec.n_categorical,
            self._feature_spec.n_numeric,
            self._feature_spec.n_crosses,
        )

    def _without_protected(self, ds: Mapping[str, Any], excluded: list[str]) -> tuple[Any, dict[str, Any]]:
        """The crosses and field groups (wide, deep, named groups) less the ones that read an
        excluded protected column: a cross of one carries it into the model as surely as the column."""
        crosses = ds.get("crosses") or []
        groups = {"wide": ds.get("wide"), "deep": ds.get("deep"), **dict(ds.get("groups") or {})}
        if not excluded:
            return crosses, groups
        gone = set(excluded)
        if not isinstance(crosses, str):
            kept = [c for c in crosses if not gone.intersection(map(str, c))]
            self.dropped_for_protected += [cross_name(c) for c in crosses if gone.intersection(map(str, c))]
            crosses = kept
        gone |= set(self.dropped_for_protected)
        for part, names in groups.items():
            if names is not None and not isinstance(names, str):
                groups[part] = [n for n in names if str(n) not in gone]
        if self.dropped_for_protected:
            log.info("dropped crosses of protected columns: %s", ", ".join(self.dropped_for_protected))
        return crosses, groups

    def _proxy_rows(self, features: pd.DataFrame, protected: pd.DataFrame, train: np.ndarray) -> pd.DataFrame:
        """Training rows (at most PROXY_ROWS, a seeded sample) of the model's raw feature columns
        and the protected ones, for the proxy report."""
        rows = np.asarray(train)
        if len(rows) > PROXY_ROWS:
            rows = np.sort(np.random.default_rng(self.split_seed).choice(rows, PROXY_ROWS, replace=False))
        columns = [c for c in features.columns if c in self.feature_columns]
        sample = features.iloc[rows][columns].reset_index(drop=True)
        return pd.concat(
            [sample, protected.iloc[rows].add_prefix("protected:").reset_index(drop=True)], axis=1
        )

    @property
    def feature_columns(self) -> list[str]:
        """The input columns the model reads (categorical and numeric roles)."""
        return [c for c, r in self.roles.items() if r in ("categorical", "numeric")]

    def _split(self, features: pd.DataFrame, y: np.ndarray, roles: dict[str, str]) -> tuple[np.ndarray, ...]:
        """Row indices of train, validation and test, by the configured kind of split."""
        for key, column in self.split_columns.items():
            if column and column not in features.columns:
                raise ZooError(
                    f"data.{key}={column!r} is not a column of the data; columns are: "
                    f"{', '.join(map(str, features.columns))}"
                )
            if column:
                roles[column] = "ignore"
        given = self.split_columns
        if given["split_column"]:
            return splits.predefined(features[given["split_column"]].to_numpy(), y)
        if given["fold_column"]:
            return splits.by_fold_column(
                features[given["fold_column"]].to_numpy(),
                y,
                fold=self.fold,
                val=self.split["val"],
                seed=self.split_seed,
            )
        if given["date_column"]:
            return splits.out_of_time(features[given["date_column"]].to_numpy(), y, **self.split)
        if self.n_folds:
            return splits.k_fold(
                y, n_folds=int(self.n_folds), fold=int(self.fold), val=self.split["val"], seed=self.split_seed
            )
        return splits.train_val_test(y, **self.split, seed=self.split_seed)

    def schema(self) -> dict[str, Any]:
        """What scoring a new file needs beyond the preprocessing: target, id and ignored columns."""
        self.build()
        return {
            "target": self.dataset["target"],
            "id_column": next((c for c, r in self.roles.items() if r == "id"), None),
            "ignored": [c for c, r in self.roles.items() if r == "ignore"],
        }

    def rows(self) -> dict[str, int]:
        self.build()
        return {s: int(len(self.arrays[s]["y"])) for s in SPLITS}

    def split_arrays(self, split: str) -> dict[str, np.ndarray]:
        """Every row of one split as NumPy arrays (`x_raw` too when built with raw values),
        whatever the loaders drop or shard: what direct-fit models fit on. A copy, so a model
        that alters its rows leaves the ones the loaders serve intact."""
        if split not in SPLITS:
            raise ZooError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        self.build()
        return {key: value.copy() for key, value in self.arrays[split].items()}

    def setup(self, stage: str | None = None) -> None:
        self.build()
        device = torch.device("cpu")
        if self.trainer is not None:
            device = self.trainer.strategy.root_device
        with self._timed("tensors"):
            for name in SPLITS:
                current = self._tensors.get(name)
                if current is None or current["y"].device != device:
                    self._tensors[name] = {
                        k: torch.from_numpy(np.ascontiguousarray(v)).to(device)
                        for k, v in self.arrays[name].items()
                    }

    def loader(self, split: str, *, shuffle: bool = False) -> DeviceBatches:
        """Batches of one split; training batches are shuffled and sharded across DDP ranks."""
        if split not in SPLITS:
            raise ZooError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        if split not in self._tensors:
            self.setup()
        rank, world = 0, 1
        if self.trainer is not None and split == "train":
            rank, world = self.trainer.global_rank, self.trainer.world_size
        return DeviceBatches(
            self._tensors[split],
            batch_size=self.batch_size if split == "train" else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            drop_last=self.drop_last,
        )

    def train_dataloader(self) -> DeviceBatches:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DeviceBatches:
        return self.loader("val")

    def test_dataloader(self) -> DeviceBatches:
        return self.loader("test")
