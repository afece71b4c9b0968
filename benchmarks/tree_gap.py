"""The gap on tree-friendly data (step effects, heavy tails, flags): test AUC and Brier of the
linear, neural and boosted models, and what numeric encodings and embeddings close (a table)."""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from zoo import registry
from zoo.train import config_dir, train

VARIANTS = {
    "lr": ["model=lr"],
    "dnn": ["model=dnn"],
    "dnn, quantile-normal inputs": ["model=dnn", "dataset.numeric_encoding=quantile_normal"],
    "dnn, robust clipping": ["model=dnn", "dataset.numeric_encoding=robust"],
    "dnn, periodic embeddings": ["model=dnn", "model.numeric_embedding=periodic"],
    "dnn, piecewise-linear embeddings": ["model=dnn", "model.numeric_embedding=piecewise_linear"],
    "catboost": ["model=catboost"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="synthetic_trees")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    registry.store_configs(config_dir())
    print(f"### {args.dataset}, {args.folds}-fold test metrics (mean ± std)")
    print("| model | test AUC | test Brier |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            runs = []
            for fold in range(args.folds):
                overrides = [*VARIANTS[name], f"dataset={args.dataset}", "logger=none", "trainer=cpu"]
                overrides += [f"data.n_folds={args.folds}", f"data.fold={fold}"]
                with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
                    cfg = compose("config", overrides=overrides)
                runs.append(train(cfg, Path(tmp) / f"{len(runs)}_{name.replace(' ', '_')}"))
            auc = np.array([r["test"]["auc"] for r in runs])
            brier = np.array([r["test"]["brier"] for r in runs])
            cells = [f"{v.mean():.4f} ± {v.std(ddof=1):.4f}" for v in (auc, brier)]
            print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
