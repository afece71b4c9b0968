"""Synthetic credit data with planted signal, so models can be checked on what they should find.

Three modes: "interactions" plants categorical interactions with no marginal effect, which only models
that cross fields see; "trees" plants step effects on heavy-tailed amounts and counts, which tree
models find easily and linear models and MLPs on standardised inputs find hard; "messy" writes a
credit file with the pathologies of real ones (sentinel codes, unit errors in amounts, integer-coded
categories, missing values that depend on other columns, threshold effects, label noise).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd

from zoo.errors import ZooError

__all__ = ["MODES", "make_synthetic", "planted_pairs"]

MODES = ("interactions", "trees", "messy")

# Category codes come from uniform integers in [0, GRID) mapped through a lookup table, so the
# sampling frequencies are exactly counts / GRID: the weights the double-centring uses.
_GRID = 1 << 16
_MAX_TABLE_CARDINALITY = 1 << 12  # larger fields use a finer grid and a binary search
_FINE_GRID = 1 << 40


def _as_int(value: object) -> int | None:
    """value as an int when it is an integer (bool excluded), else None."""
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    return None


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return value as an int, or raise unless it is an integer >= minimum."""
    number = _as_int(value)
    if number is None or number < minimum:
        raise ZooError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def _check_real(
    name: str,
    value: object,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """Return value as a float, or raise unless it is a finite number in the given interval."""
    x = float(value) if isinstance(value, Real) and not isinstance(value, bool) else math.nan
    above = x > low if open_low else x >= low
    below = x < high if open_high else x <= high
    if not (above and below and math.isfinite(x)):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ZooError(f"{name} must be a number within {interval}, got {value!r}")
    return x


def planted_pairs(
    n_categorical: int, interaction_pairs: int | Iterable[Sequence[int]]
) -> list[tuple[int, int]]:
    """The (a, b) categorical field indices that carry planted interactions, validated.

    An integer k means the pairs (0, 1), (2, 3), ... (2k-2, 2k-1).
    """
    n_categorical = _check_int("n_categorical", n_categorical, 0)
    k = _as_int(interaction_pairs)
    if k is not None:
        if k < 0:
            raise ZooError(f"interaction_pairs must be >= 0, got {k}")
        if 2 * k > n_categorical:
            raise ZooError(
                f"interaction_pairs={k} needs {2 * k} categorical fields, got n_categorical={n_categorical}"
            )
        return [(2 * i, 2 * i + 1) for i in range(k)]
    if isinstance(interaction_pairs, str | bytes) or not isinstance(interaction_pairs, Iterable):
        raise ZooError(
            f"interaction_pairs must be a count or a list of (a, b) index pairs, got {interaction_pairs!r}"
        )
    pairs: list[tuple[int, int]] = []
    for raw in interaction_pairs:
        pair = tuple(raw) if isinstance(raw, Iterable) and not isinstance(raw, str) else (raw,)
        ints = [_as_int(i) for i in pair]
        if len(ints) != 2 or ints[0] is None or ints[1] is None:
            raise ZooError(f"each interaction pair must be two field indices (a, b), got {raw!r}")
        a, b = ints[0], ints[1]
        if not (0 <= a < n_categorical and 0 <= b < n_categorical):
            raise ZooError(
                f"interaction pair {(a, b)} must index categorical fields 0..{n_categorical - 1}, "
                f"got n_categorical={n_categorical}"
            )
        if a == b:
            raise ZooError(f"interaction pair {(a, b)} must join two distinct fields")
        if any({a, b} == set(p) for p in pairs):
            raise ZooError(f"interaction pair {(a, b)} is listed twice")
        pairs.append((a, b))
    return pairs


def _cardinalities(cardinality: int | Iterable[int], n_categorical: int) -> list[int]:
    """One cardinality per categorical field, each an integer >= 2."""
    values: list[object]
    if _as_int(cardinality) is not None:
        values = [cardinality] * n_categorical
    elif isinstance(cardinality, Iterable) and not isinstance(cardinality, str | bytes):
        values = list(cardinality)
        if len(values) != n_categorical:
            raise ZooError(
                f"cardinality must list one value per categorical field ({n_categorical}), "
                f"got {len(values)} values: {values!r}"
            )
    else:
        raise ZooError(f"cardinality must be an integer >= 2 or a list of them, got {cardinality!r}")
    return [_check_int("cardinality", value, 2) for value in values]


def _category_counts(rng: np.random.Generator, k: int) -> tuple[np.ndarray, int]:
    """Mildly uneven category frequencies as integer counts over a grid: (counts, grid)."""
    grid = _GRID if k <= _MAX_TABLE_CARDINALITY else _FINE_GRID
    weights = rng.uniform(0.5, 1.5, size=k)
    counts = np.maximum(np.floor(weights / weights.sum() * grid), 1).astype(np.int64)
    counts[np.argmax(counts)] += grid - counts.sum()
    return counts, grid


def _draw_codes(rng: np.random.Generator, counts: np.ndarray, grid: int, n: int) -> np.ndarray:
    """Category codes with P(code = i) = counts[i] / grid exactly, in the smallest int dtype."""
    k = counts.shape[0]
    dtype = np.int8 if k <= 127 else np.int16 if k <= 32767 else np.int32
    if grid == _GRID:
        table = np.repeat(np.arange(k, dtype=dtype), counts)
        return table[rng.integers(0, grid, size=n, dtype=np.uint16)]
    draws = rng.integers(0, grid, size=n, dtype=np.int64)
    return np.searchsorted(np.cumsum(counts)[:-1], draws, side="right").astype(dtype)


def _centred_effects(rng: np.random.Generator, freq: np.ndarray) -> np.ndarray:
    """Per-category effects with frequency-weighted mean 0 and weighted RMS 1."""
    effect = rng.standard_normal(size=(freq.shape[0],))
    effect -= freq @ effect
    return effect / math.sqrt(freq @ effect**2)


def _double_centred_table(rng: np.random.Generator, freq_a: np.ndarray, freq_b: np.ndarray) -> np.ndarray:
    """Random table T[va, vb] with weighted row and column means 0 and weighted RMS 1.

    Row means use freq_b and column means freq_a, so neither field alone shifts the logit.
    """
    table = rng.standard_normal((freq_a.shape[0], freq_b.shape[0]))
    rows = table @ freq_b
    cols = freq_a @ table
    table = table - rows[:, None] - cols[None, :] + freq_a @ rows
    return table / math.sqrt(freq_a @ table**2 @ freq_b)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function without overflow (tanh form)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _intercept(logit: np.ndarray, bad_rate: float) -> float:
    """c such that mean(sigmoid(logit + c)) == bad_rate (safeguarded Newton on a bracket)."""
    base = math.log(bad_rate / (1.0 - bad_rate))
    lo, hi = base - float(logit.max()), base - float(logit.min())
    c = base - float(logit.mean(dtype=np.float64))
    for _ in range(100):
        p = _sigmoid(logit + np.float32(c))
        gap = float(p.mean(dtype=np.float64)) - bad_rate
        if abs(gap) < 1e-9 or hi - lo < 1e-12:
            break
        if gap > 0:
            hi = c
        else:
            lo = c
        slope = float((p * (1 - p)).mean(dtype=np.float64))
        step = c - gap / slope if slope > 0 else math.nan
        c = step if lo < step < hi else 0.5 * (lo + hi)
    return c


def _level_marginals(logit: np.ndarray, codes: list[np.ndarray], fields: list[int], bad_rate: float) -> None:
    """Shift logit per category, in place, so each category of `fields` has mean sigmoid = bad_rate.

    Double-centring removes marginal effects on the logit scale only; this removes the residue.
    """
    counts = {f: np.bincount(codes[f]) for f in fields}
    for _ in range(50):
        worst = 0.0
        for f in fields:
            p = _sigmoid(logit)
            n = np.maximum(counts[f], 1)
            rate = np.bincount(codes[f], weights=p, minlength=n.shape[0]) / n
            slope = np.bincount(codes[f], weights=p * (1 - p), minlength=n.shape[0]) / n
            gap = np.where(counts[f] > 0, rate - bad_rate, 0.0)
            worst = max(worst, float(np.abs(gap).max()))
            logit -= (gap / np.maximum(slope, 1e-12)).astype(np.float32)[codes[f]]
        if worst < 1e-5:
            return


# mode="trees": the credit columns in frame order (then purpose, the noise columns and the target)
_TREE_NUMERIC = (
    "age",
    "income",
    "loan_amount",
    "debt_to_income",
    "revolving_balance",
    "n_late_payments",
    "n_inquiries_6m",
    "months_employed",
    "has_mortgage",
    "prior_default",
    "is_self_employed",
    "has_phone",
)
_PURPOSES = ("car", "debt_consolidation", "education", "home_improvement", "business", "other")
_PURPOSE_EFFECTS = np.array([-0.2, 0.3, 0.2, -0.3, 0.5, 0.0], dtype=np.float32)  # a mild main effect


def _make_trees(
    *,
    n_rows: int,
    n_categorical: int,
    n_numeric: int,
    cardinalities: list[int],
    bad_rate: float,
    step_effect: float,
    noise: float,
    missing_rate: float,
    seed: int,
    target: str,
) -> pd.DataFrame:
    """Credit columns with heavy-tailed amounts, step effects, flags, and noise columns (mode="trees").

    Numeric columns are float32: age, income (lognormal x Pareto(2.2): heavy tail), loan_amount and
    revolving_balance (lognormal; a quarter of balances are 0), debt_to_income (Beta(2, 4.5)),
    n_late_payments (negative binomial), n_inquiries_6m, months_employed, the 0/1 flags
    has_mortgage, prior_default, is_self_employed and has_phone; then purpose (Categorical of
    _PURPOSES), noise_num_j (N(0, 1) and lognormal, alternating) and noise_cat_i (Categorical of
    "v0", "v1", ...).
    Logit = step_effect * (1.5 [debt_to_income > 0.4] + 2 [n_late_payments >= 3]
      + 2 [revolving_balance > 8000] + 2 [income < 18000] + 1.5 [age < 25 or age >= 65]
      + 1 [months_employed < 6] + 1 [is_self_employed and debt_to_income > 0.4]
      + 1.5 prior_default - 0.5 has_mortgage) + a mild purpose effect + noise * N(0, 1),
    with the intercept solved for bad_rate. loan_amount, n_inquiries_6m, has_phone and the noise
    columns carry no signal. Cells go missing (NaN) with probability missing_rate after the target
    is drawn.
    """
    noise_num_names = [f"noise_num_{j}" for j in range(n_numeric)]
    noise_cat_names = [f"noise_cat_{i}" for i in range(n_categorical)]
    _check_target(target, [*_TREE_NUMERIC, "purpose", *noise_num_names, *noise_cat_names])
    # Separate streams, as in the interactions mode: the model, the features, the outcome, missing cells.
    model_rng, feature_rng, outcome_rng, missing_rng = np.random.default_rng(seed).spawn(4)
    purpose_grid = _category_counts(model_rng, len(_PURPOSES))
    noise_grids = [_category_counts(model_rng, k) for k in cardinalities]

    def flag(share: float) -> np.ndarray:
        return (feature_rng.random(n_rows) < share).astype(np.float32)

    def lognormal(median: float, sigma: float) -> np.ndarray:
        return np.exp(feature_rng.normal(math.log(median), sigma, n_rows))

    age = np.minimum(np.floor(18 + feature_rng.gamma(4.0, 5.0, n_rows)), 85)
    drawn = {
        "age": age,
        "income": np.round(lognormal(22_000, 0.35) * (1 + feature_rng.pareto(2.2, n_rows)), -2),
        "loan_amount": np.round(lognormal(8_000, 0.9), -1),
        "debt_to_income": feature_rng.beta(2.0, 4.5, n_rows),
        "revolving_balance": np.where(
            feature_rng.random(n_rows) < 0.25, 0.0, np.round(lognormal(2_500, 1.3))
        ),
        "n_late_payments": feature_rng.negative_binomial(0.5, 0.45, n_rows),
        "n_inquiries_6m": feature_rng.poisson(1.2, n_rows),
        "months_employed": np.minimum(np.floor(feature_rng.exponential(60.0, n_rows)), (age - 16) * 12),
        "has_mortgage": flag(0.35),
        "prior_default": flag(0.06),
        "is_self_employed": flag(0.12),
        "has_phone": flag(0.8),
    }
    numeric = {name: drawn[name].astype(np.float32) for name in _TREE_NUMERIC}
    purpose = _draw_codes(feature_rng, *purpose_grid, n_rows)
    for j, name in enumerate(noise_num_names):
        values = feature_rng.standard_normal(n_rows, dtype=np.float32)
        numeric[name] = np.exp(values) if j % 2 else values
    codes = [_draw_codes(feature_rng, counts, grid, n_rows) for counts, grid in noise_grids]

    high_dti = numeric["debt_to_income"] > 0.4
    steps = (
        1.5 * high_dti
        + 2.0 * (numeric["n_late_payments"] >= 3)
        + 2.0 * (numeric["revolving_balance"] > 8_000)
        + 2.0 * (numeric["income"] < 18_000)
        + 1.5 * ((numeric["age"] < 25) | (numeric["age"] >= 65))
        + 1.0 * (numeric["months_employed"] < 6)
        + 1.0 * (high_dti & (numeric["is_self_employed"] == 1))
        + 1.5 * numeric["prior_default"]
        - 0.5 * numeric["has_mortgage"]
    )
    logit = (np.float32(step_effect) * steps + _PURPOSE_EFFECTS[purpose]).astype(np.float32)
    if noise > 0:
        logit += np.float32(noise) * outcome_rng.standard_normal(n_rows, dtype=np.float32)
    logit += np.float32(_intercept(logit, bad_rate))
    label = (outcome_rng.random(n_rows, dtype=np.float32) < _sigmoid(logit)).astype(np.int8)

    if missing_rate > 0:
        for values in numeric.values():
            values[missing_rng.random(n_rows, dtype=np.float32) < missing_rate] = np.nan
        for code in [purpose, *codes]:
            code[missing_rng.random(n_rows, dtype=np.float32) < missing_rate] = -1

    columns: dict[str, object] = {name: numeric[name] for name in _TREE_NUMERIC}
    columns["purpose"] = pd.Categorical.from_codes(purpose, categories=list(_PURPOSES))
    columns.update({name: numeric[name] for name in noise_num_names})
    for name, code, k in zip(noise_cat_names, codes, cardinalities, strict=True):
        columns[name] = pd.Categorical.from_codes(code, categories=[f"v{v}" for v in range(k)])
    columns[target] = label
    return pd.DataFrame(columns)


# mode="messy": the columns in frame order (then the target). Sentinel columns are small-valued
# numbers with a code for "unknown" written into a share sentinel_rate of rows; the code's own
# effect on the logit (unknown is mildly riskier, as in bureau data) is the second entry.
_MESSY_NUMERIC = (
    "age",
    "income",
    "loan_amount",
    "revolving_balance",
    "debt_to_income",
    "utilisation",
    "n_late_payments",
    "months_since_last_delinq",
    "n_inquiries_6m",
    "n_dependents",
    "months_employed",
    "months_at_address",
    "has_mortgage",
    "is_self_employed",
    "prior_default",
    "has_phone",
)
_MESSY_CODES = ("region_code", "product_code")  # integer-coded categories, stored as int16
_SENTINELS = {
    "months_since_last_delinq": (999.0, 0.6),
    "n_inquiries_6m": (99.0, 0.3),
    "n_dependents": (9.0, 0.2),
    "months_employed": (-1.0, 0.4),
    "months_at_address": (999_999.0, 0.2),
}
# Non-monotone in the code, so a model that reads the codes as numbers finds little.
_REGION_EFFECTS = np.array([0.0, 0.7, -0.5, 0.2, 0.9, -0.6, 0.3, -0.3, 0.6, -0.8, 0.1, 0.5], dtype=np.float32)
_PRODUCT_CODES = np.array([10, 20, 30, 40, 50], dtype=np.int16)
_PRODUCT_SHARES = (0.35, 0.25, 0.2, 0.12, 0.08)
_PRODUCT_EFFECTS = np.array([-0.3, 0.6, -0.5, 0.8, 0.0], dtype=np.float32)
_SELF_EMPLOYED_SHARE = 0.12
_UNIT_ERROR_SHARE = 0.003  # times tail: amounts typed in cents, 100x the true value
# A share missing_rate of a column goes missing on average, more often where the weight is higher.
_INCOME_MISSING_WEIGHTS = (4.0, 2.0)  # self-employed; product 50 (small online loans, income not asked)
_EMPLOYMENT_MISSING_WEIGHT = 3.0  # applicants under 25
_MAX_MESSY_MISSING = 0.2  # the largest weighted share stays below 1 up to here


def _erlang_cdf(x: float, shape: int, scale: float) -> float:
    """P(G < x) for G ~ Gamma(shape, scale) with a whole shape: the share of ages below a cut-off."""
    z = x / scale
    return 1.0 - math.exp(-z) * sum(z**k / math.factorial(k) for k in range(shape))


def _heavy_amounts(
    rng: np.random.Generator, n: int, median: float, sigma: float, alpha: float, tail: float
) -> np.ndarray:
    """Lognormal x Pareto amounts, log-spread scaled by tail: median * exp(tail * (sigma Z + E / alpha))."""
    z = rng.standard_normal(n)
    e = rng.exponential(1.0, n)  # log(1 + Lomax(alpha)) = E / alpha: the Pareto tail of index alpha
    return median * np.exp(tail * (sigma * z + e / alpha))


def _messy_columns(rng: np.random.Generator, n: int, tail: float) -> dict[str, np.ndarray]:
    """The true values of the messy credit columns (float64), before codes, unit errors and gaps."""
    age = np.minimum(np.floor(18 + rng.gamma(4.0, 5.0, n)), 85)
    income = np.round(_heavy_amounts(rng, n, 36_000, 0.45, 2.5, tail), -2)
    loan_amount = np.maximum(np.round(_heavy_amounts(rng, n, 10_000, 0.6, 3.0, tail), -1), 500)
    balance = np.where(rng.random(n) < 0.25, 0.0, np.round(_heavy_amounts(rng, n, 3_000, 1.0, 3.0, tail)))
    n_late = rng.negative_binomial(0.5, 0.45, n).astype(np.float64)
    since = np.minimum(np.floor(rng.gamma(1.5, 20.0, n)), 240)
    return {
        "age": age,
        "income": income,
        "loan_amount": loan_amount,
        "revolving_balance": balance,
        "debt_to_income": rng.gamma(3.0, 0.11, n),  # a ratio: a few above 1
        "utilisation": np.where(balance > 0, 1.15 * rng.beta(0.9, 1.4, n), 0.0),  # over the limit above 1
        "n_late_payments": n_late,
        "months_since_last_delinq": np.where(n_late > 0, since, np.nan),  # never late: no such month
        "n_inquiries_6m": rng.poisson(1.2, n).astype(np.float64),
        "n_dependents": np.minimum(rng.poisson(0.8, n), 6).astype(np.float64),
        "months_employed": np.minimum(np.floor(rng.exponential(60.0, n)), (age - 16) * 12),
        "months_at_address": np.minimum(np.floor(rng.exponential(70.0, n)), (age - 18) * 12),
        "has_mortgage": (rng.random(n) < 0.35).astype(np.float64),
        "is_self_employed": (rng.random(n) < _SELF_EMPLOYED_SHARE).astype(np.float64),
        "prior_default": (rng.random(n) < 0.05).astype(np.float64),
        "has_phone": (rng.random(n) < 0.85).astype(np.float64),
    }


def _messy_logit(true: dict[str, np.ndarray], codes: dict[str, np.ndarray], step_effect: float) -> np.ndarray:
    """The planted logit (before noise and intercept): threshold steps, smooth log-amount effects,
    non-monotone code effects (region, product, purpose) and the flags, all on the true values."""
    late = true["n_late_payments"]
    recent = (late > 0) & (np.nan_to_num(true["months_since_last_delinq"], nan=np.inf) < 12)
    steps = (
        1.5 * (true["debt_to_income"] > 0.43)
        + 1.5 * (true["utilisation"] > 0.9)
        + 2.0 * (late >= 3)
        + 1.5 * true["prior_default"]
        + 0.8 * recent
    )
    smooth = (
        -1.0 * np.log(true["income"] / 36_000)
        + 0.6 * np.log(true["loan_amount"] / 10_000)
        + 0.25 * np.log1p(true["revolving_balance"] / 1_000)
        - 0.015 * (true["age"] - 40)
        - 0.35 * np.log1p(true["months_employed"] / 12)
        + 0.25 * true["n_inquiries_6m"]
        + 0.15 * true["n_dependents"]
        - 0.1 * np.log1p(true["months_at_address"] / 12)
    )
    flags = 0.4 * true["is_self_employed"] - 0.3 * true["has_mortgage"]
    effects = (
        _REGION_EFFECTS[codes["region_code"] - 1]
        + _PRODUCT_EFFECTS[codes["product_index"]]
        + _PURPOSE_EFFECTS[codes["purpose"]]
    )
    return (step_effect * steps + smooth + flags + effects).astype(np.float32)


def _messy_missing(
    rng: np.random.Generator, true: dict[str, np.ndarray], codes: dict[str, np.ndarray], missing_rate: float
) -> dict[str, np.ndarray]:
    """Missing-at-random masks: income more often for the self-employed and product 50, months
    employed more often under 25; each averages missing_rate over the population."""
    n = true["age"].shape[0]
    self_employed, small = _INCOME_MISSING_WEIGHTS
    income_w = (
        1 + (self_employed - 1) * true["is_self_employed"] + (small - 1) * (codes["product_index"] == 4)
    )
    income_mean = 1 + (self_employed - 1) * _SELF_EMPLOYED_SHARE + (small - 1) * _PRODUCT_SHARES[4]
    young_w = 1 + (_EMPLOYMENT_MISSING_WEIGHT - 1) * (true["age"] < 25)
    young_mean = 1 + (_EMPLOYMENT_MISSING_WEIGHT - 1) * _erlang_cdf(7.0, 4, 5.0)  # age < 25: gamma < 7
    return {
        "income": rng.random(n) < missing_rate * income_w / income_mean,
        "months_employed": rng.random(n) < missing_rate * young_w / young_mean,
    }


def _flip_labels(rng: np.random.Generator, label: np.ndarray, label_noise: float, bad_rate: float) -> None:
    """Flip a share label_noise of labels in place, half each way in expectation, so the bad rate stays."""
    n = label.shape[0]
    flip_bad = label_noise / (2 * bad_rate)
    flip_good = label_noise / (2 * (1 - bad_rate))
    flip = rng.random(n) < np.where(label == 1, flip_bad, flip_good)
    label[flip] = 1 - label[flip]


def _make_messy(
    *,
    n_rows: int,
    bad_rate: float,
    step_effect: float,
    sentinel_rate: float,
    tail: float,
    label_noise: float,
    noise: float,
    missing_rate: float,
    seed: int,
    target: str,
) -> pd.DataFrame:
    """A credit file with the pathologies of real ones (mode="messy"); docs/datasets.md has the table.

    Logit = step_effect * (1.5 [debt_to_income > 0.43] + 1.5 [utilisation > 0.9]
      + 2 [n_late_payments >= 3] + 1.5 prior_default + 0.8 [last delinquency < 12 months ago])
      - log(income / 36000) + 0.6 log(loan_amount / 10000) + 0.25 log1p(revolving_balance / 1000)
      - 0.015 (age - 40) - 0.35 log1p(months_employed / 12) - 0.1 log1p(months_at_address / 12)
      + 0.25 n_inquiries_6m + 0.15 n_dependents
      + 0.4 is_self_employed - 0.3 has_mortgage + region and product effects (non-monotone in the code)
      + each sentinel's own effect where it is written + noise * N(0, 1), on the true values;
    the intercept is solved for bad_rate, and a share label_noise of labels is flipped (half each
    way). What the frame shows differs from the truth: sentinel codes replace a share sentinel_rate
    of five small-valued columns, a share 0.003 * tail of incomes, loan amounts and balances are
    100x (typed in cents), and income and months_employed go missing at random (missing_rate).
    """
    _check_target(target, [*_MESSY_NUMERIC, *_MESSY_CODES, "purpose"])
    if label_noise > 2 * min(bad_rate, 1 - bad_rate):
        raise ZooError(
            f"label_noise={label_noise!r} must be at most 2 * min(bad_rate, 1 - bad_rate) = "
            f"{2 * min(bad_rate, 1 - bad_rate):g}: flips go half each way, so the bad rate stays {bad_rate:g}"
        )
    # Separate streams, so one knob moves only its own draws: the model, the features, the sentinel
    # rows, the outcome, the label flips and the missing cells.
    streams = np.random.default_rng(seed).spawn(6)
    model_rng, feature_rng, sentinel_rng, outcome_rng, flip_rng, missing_rng = streams
    region_grid = _category_counts(model_rng, len(_REGION_EFFECTS))
    purpose_grid = _category_counts(model_rng, len(_PURPOSES))
    product_counts = np.round(np.array(_PRODUCT_SHARES) * _GRID).astype(np.int64)

    true = _messy_columns(feature_rng, n_rows, tail)
    codes = {
        "region_code": _draw_codes(feature_rng, *region_grid, n_rows).astype(np.int16) + 1,
        "product_index": _draw_codes(feature_rng, product_counts, _GRID, n_rows),
        "purpose": _draw_codes(feature_rng, *purpose_grid, n_rows),
    }
    unit_error = {
        name: feature_rng.random(n_rows) < _UNIT_ERROR_SHARE * tail
        for name in ("income", "loan_amount", "revolving_balance")
    }
    sentinel = {name: sentinel_rng.random(n_rows) < sentinel_rate for name in _SENTINELS}

    logit = _messy_logit(true, codes, step_effect)
    for name, (_, effect) in _SENTINELS.items():
        logit += np.float32(effect) * sentinel[name]
    if noise > 0:
        logit += np.float32(noise) * outcome_rng.standard_normal(n_rows, dtype=np.float32)
    logit += np.float32(_intercept(logit, bad_rate))
    label = (outcome_rng.random(n_rows, dtype=np.float32) < _sigmoid(logit)).astype(np.int8)
    if label_noise > 0:
        _flip_labels(flip_rng, label, label_noise, bad_rate)

    shown = dict(true)
    for name, wrong in unit_error.items():
        shown[name] = np.where(wrong, 100 * shown[name], shown[name])
    if missing_rate > 0:
        for name, gap in _messy_missing(missing_rng, true, codes, missing_rate).items():
            shown[name] = np.where(gap, np.nan, shown[name])
    for name, (code, _) in _SENTINELS.items():  # after the gaps: a sentinel row keeps its code
        shown[name] = np.where(sentinel[name], code, shown[name])

    columns: dict[str, object] = {name: shown[name].astype(np.float32) for name in _MESSY_NUMERIC}
    columns["region_code"] = codes["region_code"]
    columns["product_code"] = _PRODUCT_CODES[codes["product_index"]]
    columns["purpose"] = pd.Categorical.from_codes(codes["purpose"], categories=list(_PURPOSES))
    columns[target] = label
    return pd.DataFrame(columns)


def _check_target(target: object, feature_names: list[str]) -> None:
    if not isinstance(target, str) or not target:
        raise ZooError(f"target must be a non-empty column name, got {target!r}")
    if target in feature_names:
        raise ZooError(f"target must differ from the feature names, got {target!r}")


def _check_unused(mode: str, **given: object) -> None:
    """Raise if a parameter that `mode` does not use was moved off its default, rather than ignore it."""
    parameters = inspect.signature(make_synthetic).parameters
    for name, value in given.items():
        default = parameters[name].default
        try:
            same = bool(value == default)
        except (TypeError, ValueError):  # e.g. an array compared with a number
            same = False
        if not same:
            raise ZooError(
                f"{name}={value!r} has no effect with mode={mode!r}, expected the default {default!r}"
            )


def make_synthetic(
    *,
    mode: str = "interactions",
    n_rows: int = 10_000,
    n_categorical: int = 8,
    n_numeric: int = 8,
    cardinality: int | list[int] = 10,
    bad_rate: float = 0.2,
    main_effect: float = 1.0,
    interaction_pairs: int | list[tuple[int, int]] = 2,
    interaction_strength: float = 2.0,
    categorical_main_effect: float = 0.0,
    noise: float = 1.0,
    missing_rate: float = 0.0,
    seed: int = 0,
    target: str = "default",
    step_effect: float = 1.0,
    sentinel_rate: float = 0.05,
    tail: float = 1.0,
    label_noise: float = 0.05,
) -> pd.DataFrame:
    """Credit-like frame with planted signal; by default `cat_i` (Categorical), `num_j` float32, target int8.

    mode="trees" builds a different frame, described in `_make_trees`: readable credit columns with
    step effects (scaled by step_effect), then n_numeric noise numerics and n_categorical noise
    categoricals. mode="messy", described in `_make_messy`, writes a credit file with sentinel
    codes (sentinel_rate), heavy tails (tail), integer-coded categories, missing values that depend
    on other columns (missing_rate), threshold effects (step_effect) and flipped labels
    (label_noise). Parameters that only other modes use must keep their defaults.

    mode="interactions" (the default) plants this signal, on the logit scale:
      - numeric: sum_j beta_j * num_j with num_j ~ N(0, 1); the first ceil(n_numeric / 2) fields
        have |beta_j| ~ main_effect * U(0.5, 1.5) with a random sign, the rest beta_j = 0;
      - categorical main effects: each field outside the planted pairs gets per-category effects
        of frequency-weighted mean 0 and RMS categorical_main_effect (off by default);
      - interactions: for each pair (a, b) of `planted_pairs(n_categorical, interaction_pairs)`,
        interaction_strength * T_ab[cat_a, cat_b] with T_ab random, weighted RMS 1 and
        double-centred with the category frequencies as weights, so neither field alone shifts
        the logit on average;
      - noise * N(0, 1) per row, then an intercept solved so the mean of sigmoid(logit) over the
        rows equals bad_rate, and target ~ Bernoulli(sigmoid(logit)), 1 = default.
    The sigmoid's curvature would still leave paired fields a small marginal effect on the bad
    rate, so small per-category offsets, fitted on the rows, make every category of a paired
    field have expected bad rate exactly bad_rate.
    Category frequencies are mildly uneven (weights U(0.5, 1.5)). Afterwards each numeric cell
    becomes NaN, and each categorical cell missing, with probability missing_rate.
    Deterministic for a seed; coefficients and tables (not the offsets) do not depend on n_rows.
    """
    if not isinstance(mode, str) or mode not in MODES:
        raise ZooError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    n_rows = _check_int("n_rows", n_rows, 1)
    n_categorical = _check_int("n_categorical", n_categorical, 0)
    n_numeric = _check_int("n_numeric", n_numeric, 0)
    if mode == "messy":
        _check_unused(
            mode,
            n_categorical=n_categorical,
            n_numeric=n_numeric,
            cardinality=cardinality,
            main_effect=main_effect,
            interaction_pairs=interaction_pairs,
            interaction_strength=interaction_strength,
            categorical_main_effect=categorical_main_effect,
        )
        return _make_messy(
            n_rows=n_rows,
            bad_rate=_check_real("bad_rate", bad_rate, 0, 1, open_low=True, open_high=True),
            step_effect=_check_real("step_effect", step_effect, 0, math.inf),
            sentinel_rate=_check_real("sentinel_rate", sentinel_rate, 0, 0.5),
            tail=_check_real("tail", tail, 0, 3, open_low=True),
            label_noise=_check_real("label_noise", label_noise, 0, 0.5),
            noise=_check_real("noise", noise, 0, math.inf),
            missing_rate=_check_real("missing_rate", missing_rate, 0, _MAX_MESSY_MISSING),
            seed=_check_int("seed", seed, 0),
            target=target,
        )
    messy_only = {"sentinel_rate": sentinel_rate, "tail": tail, "label_noise": label_noise}
    if mode == "trees":
        _check_unused(
            mode,
            **messy_only,
            main_effect=main_effect,
            interaction_pairs=interaction_pairs,
            interaction_strength=interaction_strength,
            categorical_main_effect=categorical_main_effect,
        )
        return _make_trees(
            n_rows=n_rows,
            n_categorical=n_categorical,
            n_numeric=n_numeric,
            cardinalities=_cardinalities(cardinality, n_categorical),
            bad_rate=_check_real("bad_rate", bad_rate, 0, 1, open_low=True, open_high=True),
            step_effect=_check_real("step_effect", step_effect, 0, math.inf),
            noise=_check_real("noise", noise, 0, math.inf),
            missing_rate=_check_real("missing_rate", missing_rate, 0, 1, open_high=True),
            seed=_check_int("seed", seed, 0),
            target=target,
        )
    _check_unused(mode, step_effect=step_effect, **messy_only)
    if n_categorical + n_numeric == 0:
        raise ZooError("n_categorical + n_numeric must be >= 1, got 0 fields")
    cards = _cardinalities(cardinality, n_categorical)
    pairs = planted_pairs(n_categorical, interaction_pairs)
    bad_rate = _check_real("bad_rate", bad_rate, 0, 1, open_low=True, open_high=True)
    main_effect = _check_real("main_effect", main_effect, 0, math.inf)
    interaction_strength = _check_real("interaction_strength", interaction_strength, 0, math.inf)
    categorical_main_effect = _check_real("categorical_main_effect", categorical_main_effect, 0, math.inf)
    noise = _check_real("noise", noise, 0, math.inf)
    missing_rate = _check_real("missing_rate", missing_rate, 0, 1, open_high=True)
    seed = _check_int("seed", seed, 0)
    cat_names = [f"cat_{i}" for i in range(n_categorical)]
    num_names = [f"num_{j}" for j in range(n_numeric)]
    _check_target(target, cat_names + num_names)

    # Separate streams: the planted model, the features, the outcome and the missing cells.
    model_rng, feature_rng, outcome_rng, missing_rng = np.random.default_rng(seed).spawn(4)

    grids = [_category_counts(model_rng, k) for k in cards]
    freqs = [counts / grid for counts, grid in grids]
    n_active = (n_numeric + 1) // 2
    signs = model_rng.choice([-1.0, 1.0], size=n_active)
    beta = (signs * main_effect * model_rng.uniform(0.5, 1.5, size=n_active)).astype(np.float32)
    paired = {i for pair in pairs for i in pair}
    main_effects = {
        i: (categorical_main_effect * _centred_effects(model_rng, freqs[i])).astype(np.float32)
        for i in range(n_categorical)
        if i not in paired and categorical_main_effect > 0
    }
    tables = [
        (interaction_strength * _double_centred_table(model_rng, freqs[a], freqs[b]))
        .astype(np.float32)
        .ravel()
        for a, b in pairs
    ]

    codes = [_draw_codes(feature_rng, counts, grid, n_rows) for counts, grid in grids]
    numeric = np.empty((n_numeric, n_rows), dtype=np.float32)
    for j in range(n_numeric):  # row by row: much faster than one large draw
        feature_rng.standard_normal(out=numeric[j], dtype=np.float32)

    logit = np.zeros(n_rows, dtype=np.float32)
    if n_active:
        logit += beta @ numeric[:n_active]
    for i, effect in main_effects.items():
        logit += effect[codes[i]]
    for (a, b), table in zip(pairs, tables, strict=True):
        logit += table[codes[a].astype(np.int64) * cards[b] + codes[b]]
    if noise > 0:
        logit += np.float32(noise) * outcome_rng.standard_normal(n_rows, dtype=np.float32)
    logit += np.float32(_intercept(logit, bad_rate))
    if interaction_strength > 0 and pairs:
        _level_marginals(logit, codes, sorted(paired), bad_rate)
    prob = _sigmoid(logit)
    label = (outcome_rng.random(n_rows, dtype=np.float32) < prob).astype(np.int8)

    if missing_rate > 0:
        for j in range(n_numeric):
            numeric[j][missing_rng.random(n_rows, dtype=np.float32) < missing_rate] = np.nan
        for i in range(n_categorical):
            codes[i][missing_rng.random(n_rows, dtype=np.float32) < missing_rate] = -1

    columns: dict[str, object] = {}
    for name, code, k in zip(cat_names, codes, cards, strict=True):
        columns[name] = pd.Categorical.from_codes(code, categories=[f"v{v}" for v in range(k)])
    for name, values in zip(num_names, numeric, strict=True):
        columns[name] = values
    columns[target] = label
    return pd.DataFrame(columns)
