"""How the O(n) rule selection (`zoo.rules.select.select_rules`) scales with the number of
candidate rules n: time it on synthetic candidates for several n, print a table and a
least-squares fit seconds = a + b * n (issue 10 target: 1e6 candidates in about a second on CPU).

The synthetic candidates are built so that the greedy pass does real work: most pass the cheap
filters (length, support, |lift|); every coverage is a noisy copy of one of K_max prototypes, so
two copies of one prototype overlap (Jaccard ~0.88) and two of different prototypes barely do; the
first K_max - 1 prototypes appear at every score, the last only among the lowest 1% of scores. So
K_max - 1 rules are accepted at once, then nearly every candidate is checked against them and
rejected for overlap, and K_max is reached only near the end of the order.

Run with one thread: OMP_NUM_THREADS=1 python benchmarks/rule_selection_speed.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zoo.rules.select import Constraints, bucket_order, prefilter, select_rules

DROP_BITS = 4  # a coverage bit of the prototype is dropped with probability 2**-DROP_BITS


def make_candidates(n: int, rows: int, max_rules: int, seed: int) -> dict[str, np.ndarray]:
    """Synthetic candidate rules: score, length, support, lift, packed coverage, attention mass."""
    rng = np.random.default_rng(seed)
    score = rng.lognormal(size=n) * rng.uniform(0.2, 1.0, size=n)  # weight x stability
    length = rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.3, 0.05], size=n)
    lift = rng.normal(0.0, 0.6, size=n)
    density = rng.uniform(0.05, 0.3, size=max_rules)
    prototypes = np.packbits(rng.random((max_rules, rows)) < density[:, None], axis=1)
    prototype = rng.integers(0, max_rules - 1, size=n)
    lowest = score < np.quantile(score, 0.01)
    prototype[lowest & (rng.random(n) < 0.5)] = max_rules - 1
    coverage = np.empty((n, prototypes.shape[1]), dtype=np.uint8)
    for start in range(0, n, 100_000):
        part = slice(start, min(start + 100_000, n))
        drop = rng.integers(0, 256, size=coverage[part].shape, dtype=np.uint8)
        for _ in range(DROP_BITS - 1):
            drop &= rng.integers(0, 256, size=drop.shape, dtype=np.uint8)
        coverage[part] = prototypes[prototype[part]] & ~drop
    support = np.bitwise_count(coverage).sum(axis=1) / rows
    attention_mass = score / score.sum()
    return {
        "score": score,
        "length": length,
        "support": support,
        "lift": lift,
        "coverage": coverage,
        "attention_mass": attention_mass,
    }


def eligible_order(candidates: dict[str, np.ndarray], constraints: Constraints) -> np.ndarray:
    """The candidates passing the cheap filters, in the greedy pass's order (as select_rules does)."""
    eligible = np.flatnonzero(
        prefilter(candidates["length"], candidates["support"], candidates["lift"], constraints)
    )
    return eligible[bucket_order(candidates["score"][eligible], constraints.n_buckets)]


def scanned(order: np.ndarray, selected: np.ndarray, mass: np.ndarray, constraints: Constraints) -> int:
    """How many eligible candidates the greedy pass looked at: up to the last acceptance when it
    stopped at K_max or theta, else all."""
    stopped = len(selected) == constraints.max_rules or mass[selected].sum() >= constraints.max_attention_mass
    return int(np.flatnonzero(order == selected[-1])[0]) + 1 if stopped else len(order)


def median_seconds(repeats: int, work, *args, **kwargs) -> tuple[float, float, object]:
    """Median wall and CPU seconds of `work(*args, **kwargs)` over `repeats` calls, and its last
    result. CPU time is the figure to trust on a shared machine, where wall time includes waiting."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = work(*args, **kwargs)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return float(np.median(wall)), float(np.median(cpu)), result


def linear_fit(n: np.ndarray, seconds: np.ndarray) -> tuple[float, float, float]:
    """Least-squares seconds = a + b * n: (a, b, R^2)."""
    slope, intercept = np.polyfit(n, seconds, 1)
    total = np.sum((seconds - seconds.mean()) ** 2)
    r2 = 1.0 - np.sum((seconds - intercept - slope * n) ** 2) / total if total > 0 else 1.0
    return float(intercept), float(slope), float(r2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    parser.add_argument("--rows", type=int, default=2000, help="training rows N covered by the bitsets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-rules", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    constraints = Constraints(max_rules=args.max_rules)
    sizes = [int(size) for size in args.sizes]
    print(f"rows N={args.rows}  K_max={constraints.max_rules}  n_buckets={constraints.n_buckets}")
    header = f"{'n':>10} {'eligible':>10} {'scanned':>10} {'selected':>8} {'wall s':>8} {'cpu s':>8}"
    print(header + f" {'cpu ns/cand':>11} {'filter+sort cpu s':>17}")
    wall, cpu = [], []
    for size in sizes:
        candidates = make_candidates(size, args.rows, constraints.max_rules, args.seed)
        seconds = median_seconds(args.repeats, select_rules, **candidates, constraints=constraints)
        _, sorting, order = median_seconds(args.repeats, eligible_order, candidates, constraints)
        wall.append(seconds[0])
        cpu.append(seconds[1])
        looked_at = scanned(order, seconds[2], candidates["attention_mass"], constraints)
        print(
            f"{size:>10,} {len(order):>10,} {looked_at:>10,} {len(seconds[2]):>8} {seconds[0]:>8.3f}"
            f" {seconds[1]:>8.3f} {seconds[1] / size * 1e9:>11.0f} {sorting:>17.4f}"
        )
        del candidates
    n = np.asarray(sizes, dtype=np.float64)
    for name, measured in (("wall", wall), ("cpu", cpu)):
        intercept, slope, r2 = linear_fit(n, np.asarray(measured))
        print(
            f"{name} fit: seconds = {intercept:.4f} + {slope:.3e} * n  (R^2 = {r2:.4f});"
            f" {slope * 1e6:.3f} s per 1e6 candidates"
        )


if __name__ == "__main__":
    main()
