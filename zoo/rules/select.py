"""Choose a compact rule subset in O(n) over n candidate rules (issue 10, step 6).

Each candidate has a score (weight x stability^gamma, computed by the caller), a length, a training
support, a signed lift of the bad rate over the base rate, a coverage bitset over the training rows
and a share of the attention mass. The selection is greedy by score under the constraints:

1. a vectorised pre-filter drops rules that are too long, too rare or not informative
   (length <= L_max, support >= s_min, |lift| >= delta);
2. the survivors are ordered by *quantised* score, highest bucket first (n_buckets equal-width
   buckets over the survivors' score range): a counting (radix) sort on 16-bit bucket keys, linear
   in n, not a comparison sort; ties inside a bucket keep index order;
3. one pass accepts a rule when its Jaccard overlap with every accepted rule is <= the overlap
   limit and the accepted set's attention mass is still < theta, and stops at K_max rules.

Why it is linear: steps 1 and 2 touch each candidate a constant number of times. In step 3 a
candidate is compared with at most K_max accepted rules, each comparison a popcount over N/8
coverage bytes, so a candidate costs O(K_max * N / 8) and the pass O(n) for fixed K_max and N.
The pass works on blocks of candidates (vectorised popcounts against each accepted rule); a
rejection is final because the accepted set only grows, so each (candidate, accepted rule) pair
is compared at most once. A length filter skips pairs whose sizes alone rule out a Jaccard overlap
above the limit (Jaccard <= smaller / larger size), which saves time but not complexity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_BUCKETS = 2**16  # bucket keys are uint16: numpy's stable sort on them is an O(n) radix sort
BLOCK_BYTES = 2**20  # coverage bytes per vectorised block of the greedy pass (cache-sized)


@dataclass(frozen=True)
class Constraints:
    """The selection's knobs (issue 10 defaults). `n_buckets` sets the score resolution of the
    ordering: scores within (max - min) / n_buckets of each other are treated as equal and kept
    in index order. The default, the most uint16 keys allow, costs no more than fewer buckets."""

    max_rules: int = 20  # K_max
    max_length: int = 3  # L_max, conditions per rule
    min_support: float = 0.02  # s_min, fraction of training rows covered
    min_lift: float = 0.1  # delta: a "bad" rule needs lift >= delta, a "good" one lift <= -delta
    max_overlap: float = 0.7  # Jaccard limit between the coverages of two accepted rules
    max_attention_mass: float = 0.95  # theta: accept only while the accepted mass is below it
    n_buckets: int = MAX_BUCKETS

    def __post_init__(self) -> None:
        for name in ("max_rules", "max_length", "n_buckets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name}={value!r}: expected an integer >= 1")
        if self.n_buckets > MAX_BUCKETS:
            raise ValueError(f"n_buckets={self.n_buckets}: expected at most {MAX_BUCKETS} (uint16 keys)")
        numbers = {
            "min_support": (lambda value: 0 <= value < 1, "in [0, 1)"),
            "min_lift": (lambda value: 0 <= value < np.inf, "finite and >= 0"),
            "max_overlap": (lambda value: 0 <= value <= 1, "in [0, 1]"),
            "max_attention_mass": (lambda value: 0 < value <= 1, "in (0, 1]"),
        }
        for name, (valid, expected) in numbers.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not valid(value):
                raise ValueError(f"{name}={value!r}: expected a number {expected}")


def rule_stats(rules: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Support, bad rate and lift of every rule, vectorised over the columns of a rows x rules
    boolean matrix (dense numpy or scipy sparse). Lift is signed and relative:
    bad_rate_covered / base_rate - 1. A rule covering no row has bad rate and lift NaN."""
    y = np.asarray(y).astype(bool).ravel()
    if rules.ndim != 2 or rules.shape[0] != y.shape[0]:
        raise ValueError(f"rules has shape {rules.shape}: expected (rows, rules) with {len(y)} rows, as y")
    base_rate = y.mean() if y.size else 0.0
    if base_rate <= 0:
        raise ValueError(f"base rate {base_rate}: expected at least one bad row (y = 1) to measure lift")
    covered = np.asarray(rules.sum(axis=0), dtype=np.float64).ravel()
    bad = np.asarray(rules[y].sum(axis=0), dtype=np.float64).ravel()
    support = covered / y.size
    bad_rate = np.full_like(covered, np.nan)
    np.divide(bad, covered, out=bad_rate, where=covered > 0)
    return support, bad_rate, bad_rate / base_rate - 1.0


def objective(
    auc_val: float,
    n_rules: int,
    mean_length: float,
    mean_stability: float,
    lam: float = 0.002,
    mu: float = 0.01,
    nu: float = 0.05,
) -> float:
    """J(S) = AUC_val - lam |S| - mu mean length + nu mean stability (issue 10).
    The defaults price 20 rules at 0.04 AUC, one condition more per rule (on average) at 0.01 AUC
    and a perfectly stable set (stability 1) at 0.05 AUC: 20 rules of length 3 cost 0.07 AUC, so
    a set that size must earn its AUC over a few short rules."""
    return auc_val - lam * n_rules - mu * mean_length + nu * mean_stability


def prefilter(
    length: np.ndarray, support: np.ndarray, lift: np.ndarray, constraints: Constraints
) -> np.ndarray:
    """Mask of the rules that meet the per-rule constraints (length, support, |lift|); NaN fails."""
    return (
        (length <= constraints.max_length)
        & (support >= constraints.min_support)
        & (np.abs(lift) >= constraints.min_lift)
    )


def score_buckets(score: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket of each score: floor(n_buckets * (score - min) / (max - min)), the top score in the
    top bucket; all scores share bucket 0 when they are equal."""
    if score.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = float(score.min()), float(score.max())
    if high <= low:
        return np.zeros(score.shape, dtype=np.int64)
    scaled = (score - low) * (n_buckets / (high - low))
    return np.minimum(scaled.astype(np.int64), n_buckets - 1)


def bucket_order(score: np.ndarray, n_buckets: int = MAX_BUCKETS) -> np.ndarray:
    """Positions of `score` from the highest bucket to the lowest, index order within a bucket.
    numpy's stable argsort on <= 16-bit integer keys is an LSD radix sort (counting sort per
    byte), O(n) in C; the scatter step of a counting sort cannot be vectorised otherwise."""
    if not 1 <= n_buckets <= MAX_BUCKETS:
        raise ValueError(f"n_buckets={n_buckets}: expected an integer in [1, {MAX_BUCKETS}]")
    keys = (n_buckets - 1 - score_buckets(score, n_buckets)).astype(np.uint16)
    return np.argsort(keys, kind="stable")


def select_rules(
    score: np.ndarray,
    length: np.ndarray,
    support: np.ndarray,
    lift: np.ndarray,
    coverage: np.ndarray,
    attention_mass: np.ndarray,
    constraints: Constraints | None = None,
) -> np.ndarray:
    """Indices of the accepted rules, in acceptance order (highest score bucket first).
    `coverage` is `np.packbits(R.T, axis=1)` of the rows x rules boolean matrix R: uint8 [n, ceil(N/8)].
    `attention_mass` is each rule's share of the total attention weight."""
    constraints = Constraints() if constraints is None else constraints
    score, length, support, lift, attention_mass = (
        np.asarray(values) for values in (score, length, support, lift, attention_mass)
    )
    if score.ndim != 1:
        raise ValueError(f"score has shape {score.shape}: expected a 1-D array, one value per rule")
    n = len(score)
    for name, values in (
        ("length", length),
        ("support", support),
        ("lift", lift),
        ("attention_mass", attention_mass),
    ):
        if values.shape != (n,):
            raise ValueError(f"{name} has shape {values.shape}: expected ({n},), one value per rule")
    if coverage.dtype != np.uint8 or coverage.ndim != 2 or coverage.shape[0] != n:
        raise ValueError(
            f"coverage is {coverage.dtype} {coverage.shape}: expected uint8 ({n}, ceil(rows / 8)) packed bits"
        )
    if (bad := np.flatnonzero(~np.isfinite(score))).size:
        raise ValueError(f"score[{bad[0]}] = {score[bad[0]]}: expected finite values")
    if (bad := np.flatnonzero(~(np.isfinite(attention_mass) & (attention_mass >= 0)))).size:
        raise ValueError(f"attention_mass[{bad[0]}] = {attention_mass[bad[0]]}: expected finite values >= 0")
    candidates = np.flatnonzero(prefilter(length, support, lift, constraints))
    order = candidates[bucket_order(score[candidates], constraints.n_buckets)]
    return _greedy(order, coverage, attention_mass, constraints)


def _reject_overlaps(
    words: np.ndarray,
    sizes: np.ndarray,
    alive: np.ndarray,
    rule_words: np.ndarray,
    rule_size: int,
    limit: float,
) -> None:
    """Clear `alive` (in place) for the candidates whose Jaccard overlap with one accepted rule
    exceeds `limit`. Two empty coverages are the same set (overlap 1). Since Jaccard <= smaller
    size / larger size, only alive candidates of similar size need the popcount (a length filter)."""
    check = np.flatnonzero(alive & (sizes >= limit * rule_size) & (rule_size >= limit * sizes))
    both = words[check]
    both &= rule_words
    intersection = np.bitwise_count(both).sum(axis=1, dtype=np.int64)
    union = sizes[check] + rule_size - intersection
    jaccard = np.ones(len(check))
    np.divide(intersection, union, out=jaccard, where=union > 0)
    alive[check[jaccard > limit]] = False


def _greedy(
    order: np.ndarray, coverage: np.ndarray, attention_mass: np.ndarray, constraints: Constraints
) -> np.ndarray:
    """One pass over `order`: accept a rule whose overlap with every accepted rule is within the
    limit while the accepted mass is below theta; stop at K_max. A block of candidates is checked
    against the rules accepted before it at once; after an acceptance inside the block, only the
    rest of the block is checked against the new rule."""
    n_bytes = coverage.shape[1]
    n_words = -(-n_bytes // 8)  # compare 64 bits at a time: pad each coverage row to whole words
    block_rows = max(1, BLOCK_BYTES // max(n_words * 8, 1))
    buffer = np.zeros((block_rows, n_words * 8), dtype=np.uint8)
    accepted: list[int] = []
    accepted_words = np.zeros((constraints.max_rules, n_words), dtype=np.uint64)
    accepted_sizes = np.zeros(constraints.max_rules, dtype=np.int64)
    mass = 0.0
    limit = constraints.max_overlap
    for start in range(0, len(order), block_rows):
        block = order[start : start + block_rows]
        np.take(coverage, block, axis=0, out=buffer[: len(block), :n_bytes], mode="clip")  # valid indices
        words = buffer[: len(block)].view(np.uint64)
        sizes = np.bitwise_count(words).sum(axis=1, dtype=np.int64)
        alive = np.ones(len(block), dtype=bool)
        for k in range(len(accepted)):
            _reject_overlaps(words, sizes, alive, accepted_words[k], accepted_sizes[k], limit)
        position = 0
        while (following := np.flatnonzero(alive[position:])).size:
            position += int(following[0])
            k = len(accepted)
            accepted.append(int(block[position]))
            accepted_words[k], accepted_sizes[k] = words[position], sizes[position]
            mass += float(attention_mass[block[position]])
            if k + 1 == constraints.max_rules or mass >= constraints.max_attention_mass:
                return np.asarray(accepted, dtype=np.int64)
            position += 1
            rest = slice(position, len(block))
            _reject_overlaps(
                words[rest], sizes[rest], alive[rest], accepted_words[k], accepted_sizes[k], limit
            )
    return np.asarray(accepted, dtype=np.int64)
