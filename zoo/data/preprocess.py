"""Preprocessing fitted on training rows only: category indices, crosses, imputation, scaling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from zoo.data.spec import (
    MISSING_INDEX,
    N_RESERVED,
    UNSEEN_INDEX,
    CategoricalField,
    CrossField,
    FeatureSpec,
)
from zoo.errors import ZooError

MISSING_SUFFIX = "__missing"


def cross_name(sources: Sequence[str]) -> str:
    """The field name of a cross, e.g. 'city*industry'."""
    return "*".join(sources)


@dataclass
class _Vocabulary:
    """Category -> index for one field; index 0 is missing and 1 unseen."""

    categories: pd.Index
    categorical_dtype: pd.CategoricalDtype | None = None
    code_lookup: np.ndarray | None = None

    @classmethod
    def fit(cls, column: pd.Series) -> _Vocabulary:
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy()
            used = np.unique(codes[codes >= 0])
            lookup = np.full(len(column.cat.categories), UNSEEN_INDEX, dtype=np.int64)
            lookup[used] = np.arange(len(used), dtype=np.int64) + N_RESERVED
            return cls(column.cat.categories[used], column.dtype, lookup)
        keys = _as_keys(column)
        return cls(pd.Index(np.sort(keys.dropna().unique())))

    @property
    def cardinality(self) -> int:
        return len(self.categories) + N_RESERVED

    def transform(self, column: pd.Series) -> np.ndarray:
        if self.categorical_dtype is not None and column.dtype == self.categorical_dtype:
            assert self.code_lookup is not None
            codes = column.cat.codes.to_numpy()
            out = self.code_lookup[np.where(codes >= 0, codes, 0)]
            out[codes < 0] = MISSING_INDEX
            return out
        keys = (
            column.astype(str).where(column.notna())
            if self.categorical_dtype is not None
            else _as_keys(column)
        )
        codes = self.categories.get_indexer(keys).astype(np.int64)
        out = codes + N_RESERVED
        out[codes < 0] = UNSEEN_INDEX
        out[keys.isna().to_numpy()] = MISSING_INDEX
        return out


def _as_keys(column: pd.Series) -> pd.Series:
    """Category values as stripped text, so 'a ' and 'a' or 1 and '1' are one category."""
    return column.astype("string").str.strip().astype(object).where(column.notna())


@dataclass
class _CrossVocabulary:
    """Joint index of several categorical fields; seen combinations get their own index."""

    radices: list[int]
    keys: np.ndarray
    hash_buckets: int | None = None

    @property
    def cardinality(self) -> int:
        n = self.hash_buckets if self.hash_buckets else len(self.keys)
        return n + N_RESERVED

    def combine(self, columns: list[np.ndarray]) -> np.ndarray:
        key = np.zeros(len(columns[0]), dtype=np.int64)
        for column, radix in zip(columns, self.radices, strict=True):
            key = key * radix + column
        return key

    def transform(self, columns: list[np.ndarray]) -> np.ndarray:
        key = self.combine(columns)
        pos = np.searchsorted(self.keys, key)
        pos_clipped = np.minimum(pos, len(self.keys) - 1)
        seen = self.keys[pos_clipped] == key
        if self.hash_buckets:
            # Multiplicative hashing (Knuth) keeps the bucket of a combination stable across runs.
            hashed = (key.astype(np.uint64) * np.uint64(11400714819323198485)) >> np.uint64(40)
            index = (hashed % np.uint64(self.hash_buckets)).astype(np.int64) + N_RESERVED
        else:
            index = pos_clipped + N_RESERVED
        return np.where(seen, index, UNSEEN_INDEX).astype(np.int64)


@dataclass
class Preprocessor:
    """Fits on the training split, then turns any split into model-ready arrays."""

    categorical: list[str]
    numeric: list[str]
    crosses: list[tuple[str, ...]] | str = field(default_factory=list)
    cross_auto_k: int = 4
    cross_hash_buckets: int | None = None
    scale: bool = True

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        self.vocabularies_ = {name: _Vocabulary.fit(frame[name]) for name in self.categorical}
        self.medians_: dict[str, float] = {}
        self.means_: dict[str, float] = {}
        self.stds_: dict[str, float] = {}
        self.indicators_: list[str] = []
        for name in self.numeric:
            values = frame[name].to_numpy(dtype=np.float64)
            observed = values[~np.isnan(values)]
            if observed.size == 0:
                raise ZooError(
                    f"numeric column {name!r} is entirely missing in the training split; "
                    "list it in dataset.roles.ignore"
                )
            median = float(np.median(observed))
            filled = np.where(np.isnan(values), median, values)
            std = float(filled.std())
            self.medians_[name] = median
            self.means_[name] = float(filled.mean()) if self.scale else 0.0
            self.stds_[name] = (std if std > 0 else 1.0) if self.scale else 1.0
            if observed.size < values.size:
                self.indicators_.append(name)
        self.cross_sources_ = self._resolve_crosses()
        self._check_generated_names()
        self.cross_vocabularies_ = {}
        if self.cross_sources_:
            encoded = {n: self.vocabularies_[n].transform(frame[n]) for n in self._cross_fields()}
            for sources in self.cross_sources_:
                radices = [self.vocabularies_[s].cardinality for s in sources]
                vocab = _CrossVocabulary(radices, np.empty(0, np.int64), self.cross_hash_buckets)
                vocab.keys = np.unique(vocab.combine([encoded[s] for s in sources]))
                self.cross_vocabularies_[cross_name(sources)] = vocab
        return self

    def _check_generated_names(self) -> None:
        """Cross names (`a*b`) and missing indicators (`x__missing`) must not reuse a column's
        name, or one feature would silently stand for two."""
        taken = set(self.categorical) | set(self.numeric)
        generated = [(cross_name(s), "cross") for s in self.cross_sources_]
        generated += [(f"{n}{MISSING_SUFFIX}", "missing indicator") for n in self.indicators_]
        for name, kind in generated:
            if name in taken:
                raise ZooError(
                    f"the {kind} {name!r} has the name of an input column; rename that column "
                    f"or list it in dataset.roles.ignore"
                )
            taken.add(name)
        for sources in self.cross_sources_:
            combinations_ = float(np.prod([float(self.vocabularies_[s].cardinality) for s in sources]))
            if combinations_ >= 2.0**62:
                raise ZooError(
                    f"cross {list(sources)} has {combinations_:.3g} possible combinations, more than "
                    "its int64 key holds; cross fewer or smaller fields"
                )

    def _cross_fields(self) -> list[str]:
        return sorted({s for sources in self.cross_sources_ for s in sources})

    def _resolve_crosses(self) -> list[tuple[str, ...]]:
        if isinstance(self.crosses, str):
            if self.crosses != "auto":
                raise ZooError(f"dataset.crosses={self.crosses!r}, expected a list of field tuples or 'auto'")
            by_size = sorted(self.categorical, key=lambda n: (self.vocabularies_[n].cardinality, n))
            return [tuple(pair) for pair in combinations(by_size[: self.cross_auto_k], 2)]
        resolved = []
        for sources in self.crosses:
            sources = (sources,) if isinstance(sources, str) else tuple(sources)
            if len(sources) < 2:
                raise ZooError(f"cross {list(sources)} needs at least two categorical fields")
            for name in sources:
                if name not in self.vocabularies_:
                    raise ZooError(
                        f"cross {list(sources)} names {name!r}, which is not a categorical field; "
                        f"categorical fields are: {', '.join(self.categorical) or '(none)'}"
                    )
            resolved.append(sources)
        return resolved

    def transform(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        n = len(frame)
        x_cat = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, name in enumerate(self.categorical):
            x_cat[:, j] = self.vocabularies_[name].transform(frame[name])
        n_num = len(self.numeric) + len(self.indicators_)
        x_num = np.empty((n, n_num), dtype=np.float32)
        for j, name in enumerate(self.numeric):
            values = frame[name].to_numpy(dtype=np.float64)
            missing = np.isnan(values)
            values = np.where(missing, self.medians_[name], values)
            x_num[:, j] = (values - self.means_[name]) / self.stds_[name]
        for j, name in enumerate(self.indicators_, start=len(self.numeric)):
            x_num[:, j] = frame[name].isna().to_numpy(dtype=np.float32)
        position = {name: j for j, name in enumerate(self.categorical)}
        x_cross = np.empty((n, len(self.cross_sources_)), dtype=np.int64)
        for j, sources in enumerate(self.cross_sources_):
            vocab = self.cross_vocabularies_[cross_name(sources)]
            x_cross[:, j] = vocab.transform([x_cat[:, position[s]] for s in sources])
        return {"x_cat": x_cat, "x_num": x_num, "x_cross": x_cross}

    def feature_spec(
        self, wide: Sequence[str] | None = None, deep: Sequence[str] | None = None
    ) -> FeatureSpec:
        """The spec of what `transform` returns; default routing sends categoricals and crosses
        to the wide part and categoricals and numerics to the deep part."""
        categorical = tuple(CategoricalField(n, self.vocabularies_[n].cardinality) for n in self.categorical)
        numeric = tuple(self.numeric) + tuple(n + MISSING_SUFFIX for n in self.indicators_)
        crosses = tuple(
            CrossField(cross_name(s), tuple(s), self.cross_vocabularies_[cross_name(s)].cardinality)
            for s in self.cross_sources_
        )
        names = {f.name for f in categorical} | {f.name for f in crosses} | set(numeric)
        default_wide = [f.name for f in categorical] + [f.name for f in crosses]
        default_deep = [f.name for f in categorical] + list(numeric)
        routed = {}
        for part, given, default in (("wide", wide, default_wide), ("deep", deep, default_deep)):
            chosen = list(default if given is None else _expand_indicators(given, numeric))
            unknown = [n for n in chosen if n not in names]
            if unknown:
                raise ZooError(
                    f"dataset.{part} names {unknown[0]!r}, which is not a feature; features are: "
                    f"{', '.join(sorted(names))}"
                )
            routed[part] = tuple(chosen)
        return FeatureSpec(
            categorical, numeric, crosses, routed["wide"], routed["deep"], extras={"labels": self.labels()}
        )

    def labels(self) -> dict[str, list[str]]:
        """Label of every index of each categorical field and cross, for reports (scorecards).

        Index 0 is "(missing)", 1 "(unseen)", then the categories; a cross joins its sources'
        labels ("A|B"), decoded from its mixed-radix key. Hashed crosses get none: a bucket
        holds several combinations.
        """
        reserved = ["(missing)", "(unseen)"]
        out = {name: [*reserved, *map(str, vocab.categories)] for name, vocab in self.vocabularies_.items()}
        for sources in self.cross_sources_:
            vocab = self.cross_vocabularies_[cross_name(sources)]
            if vocab.hash_buckets:
                continue
            key = vocab.keys.copy()
            digits = []
            for radix in reversed(vocab.radices):
                digits.append(key % radix)
                key = key // radix
            columns = [[out[s][i] for i in d] for s, d in zip(sources, reversed(digits), strict=True)]
            out[cross_name(sources)] = [*reserved, *("|".join(parts) for parts in zip(*columns, strict=True))]
        return out


def _expand_indicators(names: Sequence[str], numeric: tuple[str, ...]) -> list[str]:
    """A numeric field routed somewhere takes its missing indicator along."""
    out = []
    for name in names:
        out.append(name)
        if name + MISSING_SUFFIX in numeric:
            out.append(name + MISSING_SUFFIX)
    return out
