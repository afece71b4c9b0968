"""The typed contract between the DataModule and every model: which fields exist and their sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Reserved categorical indices, the same for every field and every cross.
MISSING_INDEX = 0
UNSEEN_INDEX = 1
N_RESERVED = 2


@dataclass(frozen=True)
class CategoricalField:
    """A categorical input; `cardinality` counts the reserved missing and unseen indices."""

    name: str
    cardinality: int


@dataclass(frozen=True)
class CrossField:
    """A crossed feature built from several categorical fields (e.g. city x industry)."""

    name: str
    sources: tuple[str, ...]
    cardinality: int


@dataclass(frozen=True)
class FeatureSpec:
    """What a model needs to be built; batches follow it exactly.

    Batches are `{"x_cat": int64[B, len(categorical)], "x_num": float32[B, len(numeric)],
    "x_cross": int64[B, len(crosses)], "y": float32[B], "row": int64[B]}`.
    `wide` and `deep` name the fields (categorical, cross or numeric) that the dataset routes
    to the wide and deep parts of a Wide & Deep style model.
    """

    categorical: tuple[CategoricalField, ...] = ()
    numeric: tuple[str, ...] = ()
    crosses: tuple[CrossField, ...] = ()
    wide: tuple[str, ...] = ()
    deep: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

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

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, so checkpoints load with `weights_only=True`."""
        out = asdict(self)
        out["categorical"] = [dict(f) for f in out["categorical"]]
        out["crosses"] = [{**f, "sources": list(f["sources"])} for f in out["crosses"]]
        out["numeric"] = list(self.numeric)
        out["wide"] = list(self.wide)
        out["deep"] = list(self.deep)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | FeatureSpec) -> FeatureSpec:
        if isinstance(data, FeatureSpec):
            return data
        return cls(
            categorical=tuple(CategoricalField(**f) for f in data.get("categorical", ())),
            numeric=tuple(data.get("numeric", ())),
            crosses=tuple(
                CrossField(name=f["name"], sources=tuple(f["sources"]), cardinality=f["cardinality"])
                for f in data.get("crosses", ())
            ),
            wide=tuple(data.get("wide", ())),
            deep=tuple(data.get("deep", ())),
            extras=dict(data.get("extras", {})),
        )

    def indices(self, names: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
        """Positions of the named fields within x_cat, x_cross and x_num."""
        wanted = set(names)
        return {
            "x_cat": [i for i, f in enumerate(self.categorical) if f.name in wanted],
            "x_cross": [i for i, f in enumerate(self.crosses) if f.name in wanted],
            "x_num": [i for i, n in enumerate(self.numeric) if n in wanted],
        }
