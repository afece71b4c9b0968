"""Config overrides the tests share (`from tests.overrides import QUICK_EXPLAIN`)."""

from __future__ import annotations

#: Explanations at their cheapest, for runs whose tests do not look at them: one permutation per
#: field, two fields shown (and given partial dependence), at most 500 validation rows. Such a run
#: still writes every explanation file; tests of explanations ask for more with later overrides.
QUICK_EXPLAIN = ("explain.permutation_repeats=1", "explain.top_fields=2", "explain.max_rows=500")


def loans_csv(path: object) -> tuple[str, ...]:
    """`lr` on a CSV of loans whose target column `status` says `bad` or `good`."""
    target = ("dataset.target=status", "dataset.bad_value=bad")
    return ("dataset=csv", f"dataset.path={path}", *target, "model=lr")
