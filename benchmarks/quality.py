"""5-fold test AUC of the zoo's models against the same architectures in other libraries.

Every model sees identical folds (`data.n_folds=5 data.fold=k`, stratified, seed 0) and identical
features: the peers are trained on the zoo's preprocessed fold tensors (category indices and
encoded numerics, fitted on the fold's training rows). Peers are optional extras, imported here
only (`pip install -e .[bench-peers]`): DeepCTR-Torch (WDL, DeepFM, FiBiNET, AutoInt) and
pytorch-widedeep (WideDeep with TabMlp). Peers keep the epoch of best validation AUC (patience 10).
Prints a table (mean and standard deviation over folds); asserts nothing.

    python benchmarks/quality.py --datasets german credit_data
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score

from zoo.data.datamodule import CreditDataModule
from zoo.train import config_dir, train

ZOO_MODELS = ["wide_deep", "deepfm", "fibinet", "autoint", "catboost"]
DEEPCTR = {"WDL": "wide_deep", "DeepFM": "deepfm", "FiBiNET": "fibinet", "AutoInt": "autoint"}


def zoo_config(dataset: str, model: str, fold: int, n_folds: int, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir())):
        return compose(
            "config",
            overrides=[
                f"dataset={dataset}",
                f"model={model}",
                f"data.n_folds={n_folds}",
                f"data.fold={fold}",
                "logger=none",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


def zoo_auc(dataset: str, model: str, fold: int, n_folds: int, overrides: list[str]) -> float:
    cfg = zoo_config(dataset, model, fold, n_folds, overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        return float(train(cfg, run_dir)["test"]["auc"])


def fold_data(dataset: str, fold: int, n_folds: int) -> CreditDataModule:
    """The fold's preprocessed arrays, built exactly as `zoo-train` builds them."""
    cfg = zoo_config(dataset, "dnn", fold, n_folds, [])
    dm = CreditDataModule(
        cfg.dataset,
        batch_size=cfg.data.batch_size,
        split=cfg.data.split,
        n_folds=n_folds,
        fold=fold,
        seed=int(cfg.seed),
    )
    dm.build()
    return dm


def best_epoch_auc(
    fit_epoch: Callable[[], None],
    predict: Callable[[str], np.ndarray],
    model,
    dm: CreditDataModule,
    *,
    max_epochs: int,
    patience: int = 10,
) -> float:
    """Train epoch by epoch; test AUC of the weights with the best validation AUC."""
    best, best_state, waited = -1.0, None, 0
    for _ in range(max_epochs):
        fit_epoch()
        val = roc_auc_score(dm.arrays["val"]["y"], predict("val"))
        if val > best:
            best, best_state, waited = val, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return float(roc_auc_score(dm.arrays["test"]["y"], predict("test")))


def deepctr_auc(name: str, dm: CreditDataModule, args: argparse.Namespace) -> float:
    import torch
    from deepctr_torch import models
    from deepctr_torch.inputs import DenseFeat, SparseFeat

    torch.manual_seed(0)
    spec = dm.feature_spec
    sparse = [SparseFeat(f"c{j}", n, embedding_dim=8) for j, n in enumerate(spec.cardinalities)]
    dense = [DenseFeat(f"n{j}", 1) for j in range(dm.arrays["train"]["x_num"].shape[1])]

    def inputs(split: str) -> dict[str, np.ndarray]:
        arrays = dm.arrays[split]
        named = {f"c{j}": arrays["x_cat"][:, j] for j in range(len(sparse))}
        return named | {f"n{j}": arrays["x_num"][:, j] for j in range(len(dense))}

    columns = sparse + dense
    model = getattr(models, name)(columns, columns, dnn_hidden_units=(256, 128, 64), device="cpu")
    model.compile(torch.optim.AdamW(model.parameters(), lr=1e-3), "binary_crossentropy")
    train_x, train_y = inputs("train"), dm.arrays["train"]["y"]
    return best_epoch_auc(
        lambda: model.fit(train_x, train_y, batch_size=args.batch_size, epochs=1, verbose=0),
        lambda split: model.predict(inputs(split), batch_size=8192).ravel(),
        model,
        dm,
        max_epochs=args.max_epochs,
    )


def widedeep_auc(dm: CreditDataModule, args: argparse.Namespace) -> float:
    """pytorch-widedeep: WideDeep(wide, TabMlp) on the zoo's category indices and numerics."""
    import torch
    from pytorch_widedeep import Trainer
    from pytorch_widedeep.models import TabMlp, Wide, WideDeep

    torch.manual_seed(0)
    spec = dm.feature_spec
    n_cat = len(spec.cardinalities)
    offsets = np.concatenate([[0], np.cumsum(spec.cardinalities)[:-1]]).astype(np.int64)
    n_num = dm.arrays["train"]["x_num"].shape[1]
    column_idx = {f"c{j}": j for j in range(n_cat)} | {f"n{j}": n_cat + j for j in range(n_num)}
    tab = TabMlp(
        column_idx=column_idx,
        cat_embed_input=[(f"c{j}", n, 8) for j, n in enumerate(spec.cardinalities)],
        continuous_cols=[f"n{j}" for j in range(n_num)],
        mlp_hidden_dims=[256, 128, 64],
    )
    model = WideDeep(wide=Wide(input_dim=int(sum(spec.cardinalities)) + 1, pred_dim=1), deeptabular=tab)
    trainer = Trainer(model, objective="binary", verbose=0)

    def tab_x(split: str) -> np.ndarray:
        arrays = dm.arrays[split]
        return np.hstack([arrays["x_cat"].astype(np.float32), arrays["x_num"]])

    def wide_x(split: str) -> np.ndarray:
        return dm.arrays[split]["x_cat"] + offsets + 1  # one index space; 0 is Wide's padding

    train = dm.arrays["train"]
    return best_epoch_auc(
        lambda: trainer.fit(
            X_wide=wide_x("train"),
            X_tab=tab_x("train"),
            target=train["y"],
            n_epochs=1,
            batch_size=args.batch_size,
        ),
        lambda split: trainer.predict_proba(X_wide=wide_x(split), X_tab=tab_x(split))[:, 1],
        model,
        dm,
        max_epochs=args.max_epochs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["german", "credit_data"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=ZOO_MODELS)
    parser.add_argument("--peers", nargs="*", default=[*DEEPCTR, "WideDeep"])
    parser.add_argument(
        "--batch-size", type=int, default=256, help="peers' batch size (zoo: data.batch_size)"
    )
    parser.add_argument("--max-epochs", type=int, default=100, help="peers' epoch limit (patience 10)")
    parser.add_argument("--set", nargs="*", default=[], metavar="OVERRIDE", help="zoo-train overrides")
    args = parser.parse_args()
    for dataset in args.datasets:
        results: dict[str, list[float]] = {}
        started = time.perf_counter()
        for fold in range(args.folds):
            for model in args.models:
                results.setdefault(f"zoo {model}", []).append(
                    zoo_auc(dataset, model, fold, args.folds, args.set)
                )
            dm = fold_data(dataset, fold, args.folds)
            for peer in args.peers:
                try:
                    if peer == "WideDeep":
                        auc = widedeep_auc(dm, args)
                        label = "pytorch-widedeep WideDeep+TabMlp"
                    else:
                        auc = deepctr_auc(peer, dm, args)
                        label = f"deepctr {peer}"
                except ImportError as err:
                    print(f"# {peer} skipped: {err}")
                    args.peers = [p for p in args.peers if p != peer]
                    continue
                results.setdefault(label, []).append(auc)
            print(f"# {dataset} fold {fold} done, {time.perf_counter() - started:.0f} s", flush=True)
        print(f"\n{dataset}: test AUC over {args.folds} stratified folds (identical folds and features)")
        print(f"{'model':<36} {'mean':>7} {'std':>7}  folds")
        for label, values in results.items():
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            folds = " ".join(f"{v:.4f}" for v in values)
            print(f"{label:<36} {statistics.mean(values):>7.4f} {std:>7.4f}  {folds}", flush=True)


if __name__ == "__main__":
    main()
