"""The typed contract between the DataModule and every model: which fields exist, their sizes,
their raw units and labels, and the named groups a model may read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

# Reserved categorical indices, the same for every field and every cross.
MISSING_INDEX = 0
UNSEEN_INDEX = 1
N_RESERVED = 2
RESERVED_LABELS = ("(missing)", "(unseen)")

#: How a numeric field is turned into the model's input (see `zoo.data.preprocess`).
NUMERIC_ENCODINGS = ("standard", "robust", "quantile_normal", "smooth_clip", "none")
INDICATOR = "indicator"  # the encoding of a `<field>__missing` 0/1 column
SPECIAL = "special"  # the encoding of a `<field>__is_<code>` 0/1 column (zoo/data/special.py)


@dataclass(frozen=True)
class CategoricalField:
    """A categorical input; `cardinality` counts the reserved missing and unseen indices and
    `labels` names every index (the two reserved ones first), in the data's own terms."""

    name: str
    cardinality: int
    labels: tuple[str, ...] = ()

    def label(self, index: int) -> str:
        if len(self.labels) == self.cardinality:
            return self.labels[index]
        return RESERVED_LABELS[index] if index < N_RESERVED else f"#{index}"


@dataclass(frozen=True)
class CrossField:
    """A crossed feature built from several categorical fields (e.g. city x industry)."""

    name: str
    sources: tuple[str, ...]
    cardinality: int
    labels: tuple[str, ...] = ()

    def label(self, index: int) -> str:
        return CategoricalField.label(self, index)  # type: ignore[arg-type]


@dataclass(frozen=True)
class NumericField:
    """A numeric input column of `x_num` with what it takes to read it in raw units.

    `encoding` is one of NUMERIC_ENCODINGS, "indicator" for the 0/1 missing flag of `source`, or
    "special" for the 0/1 flag of `source` holding the special code `code`. `quantiles` are raw
    training values at evenly spaced probabilities (0, ..., 1): they invert quantile-normal
    encoding and give bin edges for piecewise-linear embeddings, at most `max_bins` of them (None:
    one per pair of distinct neighbouring quantiles). `special_values` are codes read as missing
    (each with its own flag), left out of every statistic.
    """

    name: str
    encoding: str = "standard"
    median: float = 0.0
    mean: float = 0.0
    std: float = 1.0
    clip: tuple[float, float] | None = None
    missing_indicator: bool = False
    source: str | None = None
    quantiles: tuple[float, ...] = ()
    special_values: tuple[float, ...] = ()
    code: float | None = None
    max_bins: int | None = None

    @property
    def is_indicator(self) -> bool:
        """A 0/1 flag derived from another field: missing, or holding a special code."""
        return self.encoding in (INDICATOR, SPECIAL)

    def encode(self, raw: np.ndarray | float) -> np.ndarray:
        """Raw values (missing as NaN) -> model input, exactly as the preprocessing does."""
        from zoo.data.encoding import encode_numeric

        return encode_numeric(self, np.asarray(raw, dtype=np.float64))

    def decode(self, encoded: np.ndarray | float) -> np.ndarray:
        """Model input -> raw units, e.g. a standardised split threshold back to 'months'."""
        from zoo.data.encoding import decode_numeric

        return decode_numeric(self, np.asarray(encoded, dtype=np.float64))

    def bin_edges(self) -> list[float]:
        """Distinct quantile edges in encoded units: bins for piecewise-linear embeddings. With
        `max_bins`, the saved quantiles nearest to max_bins + 1 evenly spaced probabilities."""
        if not self.quantiles:  # a flag, or a field built without statistics: one bin
            return [-1.0, 1.0]
        quantiles = np.asarray(self.quantiles)
        if self.max_bins is not None and len(quantiles) > self.max_bins + 1:
            picked = np.round(np.linspace(0, len(quantiles) - 1, self.max_bins + 1)).astype(int)
            quantiles = quantiles[np.unique(picked)]
        edges = np.unique(self.encode(quantiles))
        return [float(v) for v in edges]


@dataclass(frozen=True)
class FeatureSpec:
    """What a model needs to be built; batches follow it exactly.

    Batches are `{"x_cat": int64[B, len(categorical)], "x_num": float32[B, len(numeric)],
    "x_cross": int64[B, len(crosses)], "y": float32[B], "row": int64[B]}`, plus
    `"x_raw": float32[B, len(raw_numeric)]` (raw numerics, missing as NaN) for models that ask
    for raw values. `groups` are named, ordered field lists from the dataset config; "wide" and
    "deep" are always present (the Wide & Deep routing).
    """

    categorical: tuple[CategoricalField, ...] = ()
    numeric: tuple[NumericField, ...] = ()
    crosses: tuple[CrossField, ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        numeric = tuple(NumericField(f) if isinstance(f, str) else f for f in self.numeric)
        object.__setattr__(self, "numeric", numeric)
        groups = {str(k): tuple(v) for k, v in dict(self.groups).items()}
        groups.setdefault("wide", ())
        groups.setdefault("deep", ())
        object.__setattr__(self, "groups", groups)

    @property
    def n_categorical(self) -> int:
        return len(self.categorical)

    @property
    def n_numeric(self) -> int:
        return len(self.numeric)

    @property
    def n_crosses(self) -> int:
        return len(self.crosses)

    @property
    def cardinalities(self) -> list[int]:
        return [f.cardinality for f in self.categorical]

    @property
    def cross_cardinalities(self) -> list[int]:
        return [f.cardinality for f in self.crosses]

    @property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric)

    def numeric_bins(self, kind: str | None, names: Sequence[str] | None = None) -> list[list[float]] | None:
        """Bin edges per numeric field (all, or those named) when `kind` is piecewise-linear."""
        if kind != "piecewise_linear":
            return None
        fields = self.numeric if names is None else [self.field(n) for n in names]
        return [f.bin_edges() for f in fields]  # type: ignore[union-attr]

    @property
    def raw_numeric(self) -> tuple[NumericField, ...]:
        """The numeric fields that are data columns (not missing indicators): `x_raw`'s columns."""
        return tuple(f for f in self.numeric if not f.is_indicator)

    @property
    def wide(self) -> tuple[str, ...]:
        return self.groups["wide"]

    @property
    def deep(self) -> tuple[str, ...]:
        return self.groups["deep"]

    def group(self, name: str) -> tuple[str, ...]:
        """A named field group (dataset.groups); a clear error lists the groups there are."""
        if name not in self.groups:
            raise KeyError(f"field group {name!r} is not defined; groups are: {', '.join(self.groups)}")
        return self.groups[name]

    def field(self, name: str) -> CategoricalField | CrossField | NumericField:
        fields: tuple[CategoricalField | CrossField | NumericField, ...] = (
            *self.categorical,
            *self.crosses,
            *self.numeric,
        )
        for f in fields:
            if f.name == name:
                return f
        raise KeyError(f"{name!r} is not a feature of this spec")

    def with_groups(self, **groups: Sequence[str]) -> FeatureSpec:
        return replace(self, groups={**self.groups, **{k: tuple(v) for k, v in groups.items()}})

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so checkpoints load with `weights_only=True`."""
        return {
            "categorical": [
                {"name": f.name, "cardinality": f.cardinality, "labels": list(f.labels)}
                for f in self.categorical
            ],
            "numeric": [
                {
                    "name": f.name,
                    "encoding": f.encoding,
                    "median": f.median,
                    "mean": f.mean,
                    "std": f.std,
                    "clip": list(f.clip) if f.clip is not None else None,
                    "missing_indicator": f.missing_indicator,
                    "source": f.source,
                    "quantiles": list(f.quantiles),
                    "special_values": list(f.special_values),
                    "code": f.code,
                    "max_bins": f.max_bins,
                }
                for f in self.numeric
            ],
            "crosses": [
                {
                    "name": f.name,
                    "sources": list(f.sources),
                    "cardinality": f.cardinality,
                    "labels": list(f.labels),
                }
                for f in self.crosses
            ],
            "groups": {k: list(v) for k, v in self.groups.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | FeatureSpec) -> FeatureSpec:
        if isinstance(data, FeatureSpec):
            return data
        numeric = []
        for f in data.get("numeric", ()):
            if isinstance(f, str):
                numeric.append(NumericField(f))
                continue
            f = dict(f)
            clip = f.pop("clip", None)
            quantiles = f.pop("quantiles", ())
            special = f.pop("special_values", ())  # absent in runs made before special values
            numeric.append(
                NumericField(
                    **f,
                    clip=tuple(clip) if clip is not None else None,
                    quantiles=tuple(quantiles),
                    special_values=tuple(special),
                )
            )
        groups = dict(data.get("groups") or {})
        for part in ("wide", "deep"):  # the first format kept the routing as two keys
            if data.get(part):
                groups[part] = data[part]
        return cls(
            categorical=tuple(
                CategoricalField(f["name"], f["cardinality"], tuple(f.get("labels", ())))
                for f in data.get("categorical", ())
            ),
            numeric=tuple(numeric),
            crosses=tuple(
                CrossField(f["name"], tuple(f["sources"]), f["cardinality"], tuple(f.get("labels", ())))
                for f in data.get("crosses", ())
            ),
            groups=groups,
        )

    def indices(self, names: Sequence[str]) -> dict[str, list[int]]:
        """Positions of the named fields within x_cat, x_cross and x_num."""
        wanted = set(names)
        return {
            "x_cat": [i for i, f in enumerate(self.categorical) if f.name in wanted],
            "x_cross": [i for i, f in enumerate(self.crosses) if f.name in wanted],
            "x_num": [i for i, f in enumerate(self.numeric) if f.name in wanted],
        }
