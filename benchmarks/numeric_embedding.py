"""Piecewise-linear embeddings: the zoo's lookup against rtdl's encoding-times-weights product.

Prints milliseconds per call, forward alone (scoring, explanations) and forward plus backward
(training), at a training batch and at explanation batch sizes, and the largest difference between
the two outputs. Times on a shared machine are noisy: read the ratio column.

    python benchmarks/numeric_embedding.py --fields 37 --bins 48 --threads 1
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import rtdl_num_embeddings
import torch

from zoo.nn.numeric import PiecewiseLinearEmbeddings, bins_from_edges


def per_call_ms(fn: Callable[[], object], repeats: int) -> float:
    """Best of three means of `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fields", type=int, default=37, help="numeric fields (lendingclub_openintro: 37)")
    parser.add_argument("--bins", type=int, default=48, help="bins per field")
    parser.add_argument("--d", type=int, default=8, help="embedding size (dnn's d_embedding)")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 5_000, 50_000])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(20_000, args.fields, generator=gen)
    quantiles = torch.linspace(0, 1, args.bins + 1)
    bins = bins_from_edges([torch.quantile(train[:, j], quantiles) for j in range(args.fields)])
    zoo_layer = PiecewiseLinearEmbeddings(bins, args.d, activation=False, version="B")
    torch.nn.init.normal_(zoo_layer.linear.weight, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rtdl_layer = rtdl_num_embeddings.PiecewiseLinearEmbeddings(
            bins, args.d, activation=False, version="B"
        )
    rtdl_layer.load_state_dict(zoo_layer.state_dict())
    print(f"{args.fields} fields x {args.bins} bins, d={args.d}, {args.threads} thread(s)")
    print(f"{'batch':>7} {'pass':>16} {'rtdl ms':>9} {'zoo ms':>8} {'ratio':>6} {'max |diff|':>11}")
    for batch in args.batches:
        x = torch.randn(batch, args.fields, generator=gen) * 1.5
        compare(rtdl_layer, zoo_layer, x, repeats=max(1, 20_000 // batch))


def compare(
    rtdl_layer: torch.nn.Module, zoo_layer: torch.nn.Module, x: torch.Tensor, *, repeats: int
) -> None:
    """One batch: forward, then forward plus backward, rtdl against the zoo."""
    with torch.no_grad():
        diff = (zoo_layer(x) - rtdl_layer(x)).abs().max().item()
        slow = per_call_ms(lambda: rtdl_layer(x), repeats)
        fast = per_call_ms(lambda: zoo_layer(x), repeats)
    print(f"{len(x):>7} {'forward':>16} {slow:>9.2f} {fast:>8.2f} {slow / fast:>6.1f} {diff:>11.2e}")

    def step(layer: torch.nn.Module) -> None:
        layer(x).square().mean().backward()

    slow = per_call_ms(lambda: step(rtdl_layer), repeats)
    fast = per_call_ms(lambda: step(zoo_layer), repeats)
    print(f"{len(x):>7} {'forward+backward':>16} {slow:>9.2f} {fast:>8.2f} {slow / fast:>6.1f}")


if __name__ == "__main__":
    main()
