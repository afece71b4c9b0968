"""Preprocessing fitted on training rows only: category indices, crosses, imputation, numeric
encodings; saved as plain JSON with each run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from zoo.data import special
from zoo.data.encoding import (
    category_keys,
    encode_numeric,
    fit_numeric,
    indicator_field,
    sort_keys,
    special_field,
)
from zoo.data.sources import DATASET_DEFAULTS
from zoo.data.spec import (
    MISSING_INDEX,
    N_RESERVED,
    RESERVED_LABELS,
    UNSEEN_INDEX,
    CategoricalField,
    CrossField,
    FeatureSpec,
    NumericField,
)
from zoo.data.threads import map_columns
from zoo.errors import ZooError

MISSING_SUFFIX = "__missing"
SPECIAL_INFIX = "__is_"  # `months_since_delinq__is_999`: the flag of one special code
#: Rows encoded at a time by `Preprocessor.transform`: numerics of a block fit the CPU cache.
ROW_BLOCK = 16_384
PREPROCESSING_FORMAT = "credit-zoo.preprocessing/1"


def cross_name(sources: Sequence[str]) -> str:
    """The field name of a cross, e.g. 'city*industry'."""
    return "*".join(sources)


@dataclass
class _Vocabulary:
    """Category key -> index for one field; index 0 is missing and 1 unseen."""

    categories: pd.Index

    @classmethod
    def fit(cls, column: pd.Series) -> _Vocabulary:
        codes, keys = category_keys(column)
        used = np.unique(codes[codes >= 0])
        return cls(pd.Index(sort_keys(list(dict.fromkeys(keys[used]))), dtype=object))

    @property
    def cardinality(self) -> int:
        return len(self.categories) + N_RESERVED

    def transform(self, column: pd.Series) -> tuple[np.ndarray, int]:
        """Indices of a column's values, and how many rows held a category unseen in training."""
        codes, keys = category_keys(column)
        known = self.categories.get_indexer(pd.Index(keys, dtype=object)).astype(np.int64)
        index = np.where(known >= 0, known + N_RESERVED, UNSEEN_INDEX)
        out = np.where(codes >= 0, index[np.maximum(codes, 0)] if len(index) else UNSEEN_INDEX, MISSING_INDEX)
        return out.astype(np.int64), int((out == UNSEEN_INDEX).sum())


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
    """Fits on the training split, then turns any frame into model-ready arrays.

    Its fitted state is plain data (`to_dict`), saved with every run as JSON so a run scores new
    files without the training data (`Preprocessor.from_dict(d).transform(frame)`).
    """

    categorical: list[str]
    numeric: list[str]
    crosses: list[tuple[str, ...]] | str = field(default_factory=list)
    cross_auto_k: int = 4
    cross_hash_buckets: int | None = None
    #: One encoding for every numeric field, or {field: encoding} with an optional "default".
    numeric_encoding: str | Mapping[str, str] = "standard"
    #: Declared special codes ({field: [codes], default: [codes]}) and whether to find others.
    special_values: Mapping[str, Any] | None = None
    detect_special_values: bool = False
    #: At most this many piecewise-linear bins per numeric field (None: one per distinct quantile).
    numeric_bins: int | None = None

    def encoding_of(self, name: str) -> str:
        if isinstance(self.numeric_encoding, str):
            return self.numeric_encoding
        chosen = dict(self.numeric_encoding)
        unknown = [k for k in chosen if k != "default" and k not in self.numeric]
        if unknown:
            raise ZooError(
                f"dataset.numeric_encoding names {unknown[0]!r}, which is not a numeric field; "
                f"numeric fields are: {', '.join(self.numeric) or '(none)'}"
            )
        return str(chosen.get(name, chosen.get("default", DATASET_DEFAULTS["numeric_encoding"])))

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        n = len(frame)
        vocabularies = map_columns(lambda name: _Vocabulary.fit(frame[name]), self.categorical, rows=n)
        self.vocabularies_ = dict(zip(self.categorical, vocabularies, strict=True))
        declared = special.declared_codes(self.special_values, self.numeric)
        detect = special.check_detect_setting(self.detect_special_values)

        def fit_field(name: str) -> NumericField:
            raw = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            codes = list(declared.get(name, []))
            if detect:
                codes += [c for c in special.detect(raw) if c not in codes]
            return fit_numeric(name, raw, self.encoding_of(name), tuple(codes))

        bins = check_numeric_bins(self.numeric_bins)
        fitted = map_columns(fit_field, self.numeric, rows=n)
        self.numeric_fields_: list[NumericField] = [replace(f, max_bins=bins) for f in fitted]
        self.special_counts_ = {
            f.name: {code: int(np.sum(frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan) == code))
                     for code in f.special_values}
            for f in self.numeric_fields_
            if f.special_values
        }  # fmt: skip
        self.indicators_ = [f.name for f in self.numeric_fields_ if f.missing_indicator]
        self.cross_sources_ = self._resolve_crosses()
        self._check_generated_names()
        self.cross_vocabularies_: dict[str, _CrossVocabulary] = {}
        if self.cross_sources_:
            fields = self._cross_fields()
            indices = map_columns(
                lambda name: self.vocabularies_[name].transform(frame[name])[0], fields, rows=n
            )
            encoded = dict(zip(fields, indices, strict=True))
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
        generated += [(f.name, "special-value indicator") for f in self._special_fields()]
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

    @property
    def medians_(self) -> dict[str, float]:
        return {f.name: f.median for f in self.numeric_fields_}

    @property
    def means_(self) -> dict[str, float]:
        return {f.name: f.mean for f in self.numeric_fields_}

    @property
    def stds_(self) -> dict[str, float]:
        return {f.name: f.std for f in self.numeric_fields_}

    @property
    def columns(self) -> list[str]:
        """The input columns a frame must have to be transformed."""
        return [*self.categorical, *self.numeric]

    def transform(self, frame: pd.DataFrame, *, raw: bool = False) -> dict[str, np.ndarray]:
        """Model arrays for `frame`; `raw` adds `x_raw`, the numerics in raw units (NaN missing).

        The number of rows per field that held a category unseen in training is left in
        `self.unseen_` (field -> count), for scoring summaries.
        """
        # Categories are indexed a whole column at a time into (fields, rows) arrays, turned to
        # (rows, fields) at the end; numerics are encoded a block of rows at a time straight into
        # (rows, fields), so the block being written stays in the CPU cache. Columns (and blocks)
        # go to every core.
        n = len(frame)
        x_cat = np.empty((len(self.categorical), n), dtype=np.int64)
        self.unseen_: dict[str, int] = {}

        def index_field(j: int) -> None:
            name = self.categorical[j]
            x_cat[j], self.unseen_[name] = self.vocabularies_[name].transform(frame[name])

        map_columns(index_field, range(len(self.categorical)), rows=n)
        self.unseen_ = {name: self.unseen_[name] for name in self.categorical}
        raw_values = {
            f.name: frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan) for f in self.numeric_fields_
        }
        numeric = self.numeric_spec()
        x_num = np.empty((n, len(numeric)), dtype=np.float32)
        x_raw = np.empty((n, len(self.numeric_fields_) if raw else 0), dtype=np.float32)

        def encode_block(start: int) -> bool:
            """Encode a block of rows; False when an encoded value is not finite in float32."""
            rows = slice(start, start + ROW_BLOCK)
            with np.errstate(over="ignore"):  # a value beyond float32 is reported below, in one line
                for j, field_ in enumerate(numeric):
                    x_num[rows, j] = encode_numeric(field_, raw_values[field_.source or field_.name][rows])
                for j, field_ in enumerate(self.numeric_fields_ if raw else ()):
                    x_raw[rows, j] = raw_values[field_.name][rows]
            return bool(np.isfinite(x_num[rows]).all())  # the block is still in the CPU cache

        blocks = range(0, n, ROW_BLOCK)
        finite = map_columns(encode_block, blocks, rows=min(n, ROW_BLOCK) * len(numeric))
        if not all(finite):
            self._refuse_encoded(frame, x_num, numeric, raw_values)
        position = {name: j for j, name in enumerate(self.categorical)}
        x_cross = np.empty((len(self.cross_sources_), n), dtype=np.int64)

        def index_cross(j: int) -> None:
            sources = self.cross_sources_[j]
            vocab = self.cross_vocabularies_[cross_name(sources)]
            x_cross[j] = vocab.transform([x_cat[position[s]] for s in sources])

        map_columns(index_cross, range(len(self.cross_sources_)), rows=n)
        out = {"x_cat": _rows_first(x_cat), "x_num": x_num, "x_cross": _rows_first(x_cross)}
        if raw:
            out["x_raw"] = x_raw
        return out

    def _refuse_encoded(
        self,
        frame: pd.DataFrame,
        x_num: np.ndarray,
        numeric: Sequence[NumericField],
        raw_values: Mapping[str, np.ndarray],
    ) -> None:
        """A raw value whose encoding is not finite in float32 (a value far beyond the training
        range under `standard` or `none` encoding): one line naming the field, value and row."""
        bad_rows, bad_columns = np.nonzero(~np.isfinite(x_num))
        first = int(np.argmin(bad_rows))
        row, field_ = int(bad_rows[first]), numeric[int(bad_columns[first])]
        value = raw_values[field_.source or field_.name][row]
        raise ZooError(
            f"numeric column {field_.name!r} holds {value:g} at row {frame.index[row]}, which its "
            f"{field_.encoding} encoding (mean {field_.mean:g}, std {field_.std:g}) turns into "
            f"{float(x_num[row, int(bad_columns[first])])}, beyond float32; expected values nearer "
            "the training range"
        )

    def numeric_spec(self) -> tuple[NumericField, ...]:
        """The columns of `x_num`: every numeric field, the missing indicators, then one flag per
        special code."""
        indicators = [indicator_field(f, MISSING_SUFFIX) for f in self.numeric_fields_ if f.missing_indicator]
        return (*self.numeric_fields_, *indicators, *self._special_fields())

    def _special_fields(self) -> list[NumericField]:
        return [
            special_field(f, code, f"{f.name}{SPECIAL_INFIX}{special.format_code(code)}")
            for f in self.numeric_fields_
            for code in f.special_values
        ]

    def special_report(self, rows: int) -> list[str]:
        """One line per field with special codes: which codes, in what share of training rows."""
        lines = []
        for name, counts in getattr(self, "special_counts_", {}).items():
            found = ", ".join(f"{special.format_code(c)} ({n / max(rows, 1):.1%})" for c, n in counts.items())
            lines.append(
                f"special values in {name!r}: {found} of training rows read as missing, each with its own "
                "indicator (dataset.special_values, dataset.detect_special_values)"
            )
        return lines

    def feature_spec(self, groups: Mapping[str, Sequence[str] | None] | None = None) -> FeatureSpec:
        """The spec of what `transform` returns, with the dataset's named field groups.

        Default routing sends categoricals and crosses to the wide part and categoricals and
        numerics to the deep part; a numeric field named in a group takes its missing indicator.
        """
        labels = self.labels()
        categorical = tuple(
            CategoricalField(n, self.vocabularies_[n].cardinality, tuple(labels[n])) for n in self.categorical
        )
        numeric = self.numeric_spec()
        crosses = tuple(
            CrossField(
                cross_name(s),
                tuple(s),
                self.cross_vocabularies_[cross_name(s)].cardinality,
                tuple(labels.get(cross_name(s), ())),
            )
            for s in self.cross_sources_
        )
        numeric_names = tuple(f.name for f in numeric)
        names = {f.name for f in categorical} | {f.name for f in crosses} | set(numeric_names)
        defaults = {
            "wide": [f.name for f in categorical] + [f.name for f in crosses],
            "deep": [f.name for f in categorical] + list(numeric_names),
        }
        given = {k: v for k, v in dict(groups or {}).items() if v is not None}
        routed = {}
        for part in {**defaults, **given}:
            chosen = _expand_indicators(given[part], numeric_names) if part in given else defaults[part]
            unknown = [n for n in chosen if n not in names]
            if unknown:
                raise ZooError(
                    f"dataset.{'groups.' if part not in defaults else ''}{part} names {unknown[0]!r}, "
                    f"which is not a feature; features are: {', '.join(sorted(names))}"
                )
            routed[part] = tuple(chosen)
        return FeatureSpec(categorical, numeric, crosses, routed)

    def labels(self) -> dict[str, list[str]]:
        """Label of every index of each categorical field and cross, for reports (scorecards).

        Index 0 is "(missing)", 1 "(unseen)", then the categories; a cross joins its sources'
        labels ("A|B"), decoded from its mixed-radix key. Hashed crosses get none: a bucket
        holds several combinations.
        """
        reserved = list(RESERVED_LABELS)
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

    # --- saving -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready plain data (no pickle), with the library versions."""
        spec = FeatureSpec(numeric=self.numeric_spec()).to_dict()["numeric"][: len(self.numeric_fields_)]
        return {
            "format": PREPROCESSING_FORMAT,
            "versions": library_versions(),
            "categorical": {name: list(map(str, v.categories)) for name, v in self.vocabularies_.items()},
            "numeric": spec,
            "crosses": [
                {
                    "sources": list(sources),
                    "radices": [int(r) for r in self.cross_vocabularies_[cross_name(sources)].radices],
                    "keys": [int(k) for k in self.cross_vocabularies_[cross_name(sources)].keys],
                    "hash_buckets": self.cross_vocabularies_[cross_name(sources)].hash_buckets,
                }
                for sources in self.cross_sources_
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        """A fitted preprocessor from `to_dict`'s output: transform-only, no refitting."""
        if data.get("format") != PREPROCESSING_FORMAT:
            raise ZooError(
                f"preprocessing format {data.get('format')!r} is not supported, "
                f"expected {PREPROCESSING_FORMAT!r}"
            )
        numeric_fields = FeatureSpec.from_dict({"numeric": data["numeric"]}).numeric
        crosses = [tuple(c["sources"]) for c in data["crosses"]]
        out = cls(
            categorical=list(data["categorical"]),
            numeric=[f.name for f in numeric_fields],
            crosses=crosses,
            cross_hash_buckets=data["crosses"][0]["hash_buckets"] if data["crosses"] else None,
        )
        out.vocabularies_ = {
            name: _Vocabulary(pd.Index(list(keys), dtype=object))
            for name, keys in data["categorical"].items()
        }
        for numeric_field in numeric_fields:
            _check_saved(numeric_field)
        out.numeric_fields_ = list(numeric_fields)
        out.indicators_ = [f.name for f in numeric_fields if f.missing_indicator]
        out.cross_sources_ = crosses
        out.cross_vocabularies_ = {
            cross_name(tuple(c["sources"])): _CrossVocabulary(
                [int(r) for r in c["radices"]], np.asarray(c["keys"], dtype=np.int64), c["hash_buckets"]
            )
            for c in data["crosses"]
        }
        return out


def check_cross_auto_k(value: Any) -> int:
    """`dataset.cross_auto_k`: how many categorical fields `crosses: auto` pairs; two at least."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ZooError(f"dataset.cross_auto_k={value!r}, expected an integer of at least 2")
    return int(value)


def check_numeric_bins(value: Any) -> int | None:
    """`dataset.numeric_bins`: null (a bin per distinct saved quantile) or a positive integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(f"dataset.numeric_bins={value!r}, expected null or a positive integer")
    return int(value)


def _check_saved(numeric_field: NumericField) -> None:
    """A saved field's statistics must be finite numbers: a run saved before non-finite ones were
    refused at fit time holds `null` (JSON has no NaN or infinity), and cannot score."""
    values = {
        "median": numeric_field.median,
        "mean": numeric_field.mean,
        "std": numeric_field.std,
        **{f"clip[{i}]": bound for i, bound in enumerate(numeric_field.clip or ())},
        **{f"quantiles[{i}]": q for i, q in enumerate(numeric_field.quantiles)},
    }
    for key, value in values.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
            raise ZooError(
                f"preprocessing.json: numeric field {numeric_field.name!r} has {key}={value!r}, expected "
                "a finite number; the run was trained on values beyond what float64 holds and cannot "
                "score: train it again on rescaled data"
            )
    if numeric_field.std <= 0:
        raise ZooError(
            f"preprocessing.json: numeric field {numeric_field.name!r} has std={numeric_field.std!r}, "
            "expected a positive number"
        )


def _rows_first(fields: np.ndarray, block: int = 16_384) -> np.ndarray:
    """(fields, rows) -> C-ordered (rows, fields), copied a block of rows at a time (a plain
    transposed copy of a million rows strides through memory and is several times slower)."""
    out = np.empty(fields.shape[::-1], dtype=fields.dtype)

    def copy(start: int) -> None:
        out[start : start + block] = fields[:, start : start + block].T

    map_columns(copy, range(0, fields.shape[1], block), rows=block * fields.shape[0])
    return out


def library_versions() -> dict[str, str]:
    """Versions of the packages that shape the arrays and the models, for run manifests."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("credit-zoo", "numpy", "pandas", "torch", "pytorch-lightning", "scikit-learn", "catboost"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _expand_indicators(names: Sequence[str], numeric: Sequence[str]) -> list[str]:
    """A numeric field routed somewhere takes its missing and special-value indicators along."""
    out = []
    for name in names:
        out.append(name)
        flags = [n for n in numeric if n == name + MISSING_SUFFIX or n.startswith(name + SPECIAL_INFIX)]
        out += [n for n in flags if n not in names]
    return out
