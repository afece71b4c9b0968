"""Rules as binary features, computed in bulk on the tensors' device (step 3 of issue 10).

`RuleEncoder` compiles the distinct terms of a rule list once: numeric terms into columns of
`x_raw` with interval bounds and a missing flag, categorical terms into a boolean table over
category indices. A forward pass evaluates every term on a chunk of rows with vectorised
comparisons and gathers ([N, T]), then every rule as the AND of its terms: a matmul with the
term-rule incidence counts the satisfied terms, and a rule holds where the count is its length.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from zoo.data.spec import FeatureSpec
from zoo.rules.terms import Rule, Term


def _floor_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each value: for a float32 x, `x <= t` and `x > t` then
    read the same in float32 as in float64 (tree thresholds are float64, the data float32)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _holds(term: Term, label: str) -> bool:
    """Whether a categorical term admits a label."""
    return (term.include is None or label in term.include) and label not in term.exclude


class RuleEncoder(nn.Module):
    """bool[N, n_rules] from `(x_cat, x_raw)`: which rows satisfy which rule.

    x_cat: int64[N, len(spec.categorical)] category indices (0 = missing, 1 = unseen); x_raw:
    float[N, len(spec.raw_numeric)] raw numerics with NaN for missing (compared in float32, as
    the trees compare them). Rows are processed `chunk_size` at a time to bound memory
    (chunk_size x distinct terms floats). The compiled buffers are not saved in a state dict:
    they are rebuilt from the rules.
    """

    numeric_column: torch.Tensor  # long[Tn]: the column of x_raw each numeric term reads
    low: torch.Tensor  # float32[Tn], rounded down to float32 (see `_floor_float32`)
    high: torch.Tensor  # float32[Tn]
    missing: torch.Tensor  # bool[Tn]: the term admits a missing value
    categorical_column: torch.Tensor  # long[Tc]: the column of x_cat each categorical term reads
    table: torch.Tensor  # bool[Tc * width]: term k admits index i at k * width + i
    table_offset: torch.Tensor  # long[Tc]: k * width
    incidence: torch.Tensor  # float32[T, n_rules]: 1 where the rule has the term
    length: torch.Tensor  # float32[n_rules]: terms per rule

    def __init__(self, rules: Sequence[Rule], spec: FeatureSpec, *, chunk_size: int = 4096) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size={chunk_size}, expected a positive integer")
        self.rules = tuple(rules)
        self.chunk_size = chunk_size
        numeric_column = {f.name: j for j, f in enumerate(spec.raw_numeric)}
        categorical_column = {f.name: j for j, f in enumerate(spec.categorical)}
        numeric: dict[Term, int] = {}
        categorical: dict[Term, int] = {}
        for found in self.rules:
            for term in found.terms:
                if term.categorical and term.field in categorical_column:
                    categorical.setdefault(term, len(categorical))
                elif not term.categorical and term.field in numeric_column:
                    numeric.setdefault(term, len(numeric))
                else:
                    kind = "categorical" if term.categorical else "raw numeric"
                    raise ValueError(
                        f"term {term.text()!r}: {term.field!r} is not a {kind} field of the spec"
                    )
        # categorical terms: a row of `table` per term, True at the indices whose label it admits
        width = max([1, *(f.cardinality for f in spec.categorical)])
        table = torch.zeros(len(categorical), width, dtype=torch.bool)
        for k, term in enumerate(categorical):
            field = spec.categorical[categorical_column[term.field]]
            admits = [_holds(term, field.label(i)) for i in range(field.cardinality)]
            table[k, : field.cardinality] = torch.tensor(admits)
        # incidence[t, r] = 1 when rule r has term t (numeric terms first)
        position = {**numeric, **{t: len(numeric) + k for k, t in enumerate(categorical)}}
        incidence = torch.zeros(len(position), len(self.rules))
        for r, found in enumerate(self.rules):
            for term in found.terms:
                incidence[position[term], r] = 1.0
        buffers = {
            # numeric terms: low < x <= high, or missing
            "numeric_column": torch.tensor([numeric_column[t.field] for t in numeric], dtype=torch.long),
            "low": torch.from_numpy(_floor_float32(np.array([t.low for t in numeric]))),
            "high": torch.from_numpy(_floor_float32(np.array([t.high for t in numeric]))),
            "missing": torch.tensor([t.missing for t in numeric], dtype=torch.bool),
            "categorical_column": torch.tensor(
                [categorical_column[t.field] for t in categorical], dtype=torch.long
            ),
            "table": table.reshape(-1),
            "table_offset": torch.arange(len(categorical), dtype=torch.long) * width,
            "incidence": incidence,
            "length": torch.tensor([float(r.length) for r in self.rules]),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    @property
    def n_rules(self) -> int:
        return len(self.rules)

    def terms(self, x_cat: torch.Tensor, x_raw: torch.Tensor) -> torch.Tensor:
        """bool[N, T]: which rows satisfy which distinct term (numeric terms first)."""
        parts = []
        if len(self.numeric_column):
            values = x_raw[:, self.numeric_column].float()
            inside = (values > self.low) & (values <= self.high)
            parts.append(torch.where(torch.isnan(values), self.missing, inside))
        if len(self.categorical_column):
            parts.append(self.table[x_cat[:, self.categorical_column] + self.table_offset])
        if not parts:
            return torch.zeros(len(x_cat), 0, dtype=torch.bool, device=x_cat.device)
        return torch.cat(parts, 1)

    def forward(self, x_cat: torch.Tensor, x_raw: torch.Tensor) -> torch.Tensor:
        if not self.rules:
            return torch.zeros(len(x_cat), 0, dtype=torch.bool, device=x_cat.device)
        chunks = []
        for start in range(0, len(x_cat), self.chunk_size):
            rows = slice(start, start + self.chunk_size)
            satisfied = self.terms(x_cat[rows], x_raw[rows]).to(self.incidence.dtype)
            chunks.append(satisfied @ self.incidence == self.length)  # counts are exact in float32
        if not chunks:
            return torch.zeros(0, self.n_rules, dtype=torch.bool, device=x_cat.device)
        return torch.cat(chunks)


def coverage_bits(covered: np.ndarray | torch.Tensor) -> np.ndarray:
    """Packed coverage: uint8[n_rules, ceil(N / 8)] from bool[N, n_rules], one row of bits per
    rule (`np.packbits(covered.T, axis=1)`), for fast overlaps (`np.bitwise_count`) and hashing."""
    if isinstance(covered, torch.Tensor):
        covered = covered.detach().cpu().numpy()
    return np.packbits(np.asarray(covered, dtype=bool).T, axis=1)
