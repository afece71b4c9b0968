"""Readable rules: conjunctions of per-field terms stated on the data's own values.

A numeric term is an interval in the column's raw unit, `low < x <= high`, that may also admit
missing values (`missing=True`): a tree that sends missing values left of `x <= t` yields the
term "x <= t or missing", and an empty interval with `missing=True` reads "x is missing". A
categorical term is a set of allowed labels (`include`, None for all) minus `exclude`; a missing
category is the label MISSING, so "savings is missing" is an explicit condition too.

Terms on the same field combine by intersection, which makes every rule canonical: one term per
field, fields in name order, so two paths with the same meaning compare equal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from zoo.data.spec import RESERVED_LABELS

MISSING = RESERVED_LABELS[0]  # the label of a missing category, "(missing)"
INF = math.inf


def _number(value: float) -> str:
    """A threshold as people write it: 24, 2.5, 1250.75."""
    return f"{value:.6g}"


@dataclass(frozen=True)
class Term:
    """One field's condition. Numeric: `low < x <= high` (or missing when `missing`).
    Categorical (`include` or `exclude` set): the label is in `include` and not in `exclude`."""

    field: str
    low: float = -INF
    high: float = INF
    missing: bool = False
    include: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    @property
    def categorical(self) -> bool:
        return self.include is not None or bool(self.exclude)

    @property
    def empty_interval(self) -> bool:
        return self.low >= self.high

    @property
    def satisfiable(self) -> bool:
        if self.categorical:
            return self.include is None or bool(self.include - self.exclude)
        return self.missing or not self.empty_interval

    @property
    def trivial(self) -> bool:
        """True for a term every row satisfies (no condition at all)."""
        if self.categorical:
            return self.include is None and not self.exclude
        return self.missing and self.low == -INF and self.high == INF

    def __and__(self, other: Term) -> Term:
        """Both terms at once (same field): intervals and label sets intersect."""
        if other.field != self.field:
            raise ValueError(f"cannot intersect a term on {self.field!r} with one on {other.field!r}")
        if self.categorical or other.categorical:
            if self.include is None:
                include = other.include
            elif other.include is None:
                include = self.include
            else:
                include = self.include & other.include
            exclude = self.exclude | other.exclude
            if include is not None:
                include, exclude = include - exclude, frozenset()
            return Term(self.field, include=include, exclude=exclude)
        low, high = max(self.low, other.low), min(self.high, other.high)
        if low >= high:  # canonical empty interval
            low = high = INF
        return Term(self.field, low=low, high=high, missing=self.missing and other.missing)

    def text(self) -> str:
        """The term in words, e.g. `duration_in_month > 24`, `savings = '< 100 DM'`."""
        name = self.field
        if self.categorical:
            if self.include is not None:
                labels = sorted(self.include)
                if labels == [MISSING]:
                    return f"{name} is missing"
                if len(labels) == 1:
                    return f"{name} = {labels[0]!r}"
                return f"{name} in {{{', '.join(repr(v) for v in labels)}}}"
            labels = sorted(self.exclude)
            if labels == [MISSING]:
                return f"{name} is not missing"
            if len(labels) == 1:
                return f"{name} != {labels[0]!r}"
            return f"{name} not in {{{', '.join(repr(v) for v in labels)}}}"
        if self.empty_interval:
            return f"{name} is missing" if self.missing else f"{name} is never true"
        if self.low == -INF and self.high == INF:
            return f"{name} is any value" if self.missing else f"{name} is not missing"
        if self.low == -INF:
            core = f"{name} <= {_number(self.high)}"
        elif self.high == INF:
            core = f"{name} > {_number(self.low)}"
        else:
            core = f"{_number(self.low)} < {name} <= {_number(self.high)}"
        return f"({core} or missing)" if self.missing else core


@dataclass(frozen=True)
class Rule:
    """A conjunction of terms, one per field, in field-name order (see `rule`)."""

    terms: tuple[Term, ...]

    @property
    def length(self) -> int:
        return len(self.terms)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(t.field for t in self.terms)

    def text(self) -> str:
        return " AND ".join(t.text() for t in self.terms) if self.terms else "(always)"

    def __and__(self, other: Rule) -> Rule | None:
        return rule([*self.terms, *other.terms])


def rule(terms: Iterable[Term]) -> Rule | None:
    """The canonical rule for a conjunction of terms, or None when no row can satisfy it."""
    by_field: dict[str, Term] = {}
    for term in terms:
        by_field[term.field] = by_field[term.field] & term if term.field in by_field else term
    kept = []
    for name in sorted(by_field):
        term = by_field[name]
        if not term.satisfiable:
            return None
        if not term.trivial:
            kept.append(term)
    return Rule(tuple(kept))


def _bound(value: float) -> float | None:
    return None if math.isinf(value) else value  # JSON has no infinity


def rules_to_json(rules: Iterable[Rule]) -> list[list[dict]]:
    """Rules as plain JSON data (a checkpoint stores them so, never pickled)."""
    out = []
    for r in rules:
        terms: list[dict[str, Any]] = []
        for t in r.terms:
            if t.categorical:
                include = None if t.include is None else sorted(t.include)
                terms.append({"field": t.field, "include": include, "exclude": sorted(t.exclude)})
            elif t.empty_interval:  # "x is missing"
                terms.append(
                    {"field": t.field, "low": None, "high": None, "missing": t.missing, "empty": True}
                )
            else:
                terms.append(
                    {"field": t.field, "low": _bound(t.low), "high": _bound(t.high), "missing": t.missing}
                )
        out.append(terms)
    return out


def rules_from_json(data: list[list[dict]]) -> list[Rule]:
    """The inverse of `rules_to_json`."""
    rules = []
    for terms in data:
        parsed = []
        for t in terms:
            if "include" in t:
                include = None if t["include"] is None else frozenset(t["include"])
                parsed.append(Term(t["field"], include=include, exclude=frozenset(t["exclude"])))
            elif t.get("empty"):
                parsed.append(Term(t["field"], low=INF, high=INF, missing=bool(t["missing"])))
            else:
                low = -INF if t["low"] is None else float(t["low"])
                high = INF if t["high"] is None else float(t["high"])
                parsed.append(Term(t["field"], low=low, high=high, missing=bool(t["missing"])))
        rules.append(Rule(tuple(parsed)))
    return rules
