"""The fast training path keeps its behaviour: static batch shapes without losing evaluation rows,
epoch metrics summed on the device equal the plain computation, the optimiser kernel choice, the
compile and mixed-precision options."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from zoo.data.batches import DeviceBatches
from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.optim import adam, kernel_options, lbfgs
from zoo.train import build_model, train

SYNTHETIC = {"name": "synthetic", "source": "synthetic", "target": "default", "bad_value": 1}


def _tensors(n_rows: int) -> dict[str, torch.Tensor]:
    return {"x": torch.arange(n_rows).float().unsqueeze(1), "y": torch.arange(n_rows)}


def test_drop_last_gives_static_shapes_and_evaluation_keeps_every_row() -> None:
    train_batches = DeviceBatches(_tensors(1000), batch_size=256, shuffle=True, drop_last=True)
    for _ in range(2):  # a different ragged rest is left out each epoch
        sizes = [len(b["y"]) for b in train_batches]
        assert sizes == [256, 256, 256] and len(train_batches) == 3
    evaluation = DeviceBatches(_tensors(1000), batch_size=256, drop_last=True)
    assert sorted(torch.cat([b["y"] for b in evaluation]).tolist()) == list(range(1000))
    # Fewer rows than one batch: the one batch is kept, not dropped.
    assert [
        len(b["y"]) for b in DeviceBatches(_tensors(100), batch_size=256, shuffle=True, drop_last=True)
    ] == [100]


def test_without_drop_last_a_single_last_row_still_joins_the_batch_before() -> None:
    batches = DeviceBatches(_tensors(513), batch_size=256, shuffle=True)
    assert [len(b["y"]) for b in batches] == [256, 257] and len(batches) == 2


def test_datamodule_drop_last_applies_to_training_only() -> None:
    dm = CreditDataModule({**SYNTHETIC, "params": {"n_rows": 1000}}, batch_size=64, drop_last=True)
    dm.build()
    assert {len(b["y"]) for b in dm.loader("train", shuffle=True)} == {64}
    for split, rows in dm.rows().items():
        assert sum(len(b["y"]) for b in dm.loader(split)) == rows


def test_epoch_metrics_summed_on_device_equal_the_plain_computation() -> None:
    pl.seed_everything(0, verbose=False)
    dm = CreditDataModule({**SYNTHETIC, "params": {"n_rows": 1500}}, batch_size=128, eval_batch_size=70)
    dm.build()
    model = build_model({"name": "dnn", "hidden": [16]}, dm.feature_spec)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    model.eval()
    with torch.no_grad():
        batches = list(dm.loader("val"))
        logits = torch.cat([model(b) for b in batches])
    y = torch.cat([b["y"] for b in batches])
    assert len(batches) > 1  # several validation batches, weighted by their rows
    logged = trainer.callback_metrics
    expected_loss = F.binary_cross_entropy_with_logits(logits.double(), y.double()).item()
    assert float(logged["val/loss"]) == pytest.approx(expected_loss, rel=1e-5)
    assert float(logged["val/auc"]) == pytest.approx(roc_auc_score(y.numpy(), torch.sigmoid(logits).numpy()))
    assert np.isfinite(float(logged["train/loss"]))


def test_optimiser_kernel_follows_the_device_unless_the_config_sets_it() -> None:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    # torch has a fused CPU kernel for Adam(W), SGD and Adagrad; other optimisers get foreach
    assert kernel_options(partial(torch.optim.AdamW, betas=(0.9, 0.999)), groups) == {"fused": True}
    assert kernel_options(partial(adam), groups) == {"fused": True}
    assert kernel_options(lambda groups, **options: torch.optim.RMSprop(groups, **options), groups) == {
        "foreach": True
    }  # takes any option, but has no fused kernel
    # Lightning refuses to clip gradients for an optimiser that unscales them itself (fused)
    assert kernel_options(torch.optim.AdamW, groups, mixed_precision=True) == {"foreach": True}
    assert kernel_options(partial(torch.optim.AdamW, foreach=False), groups) == {}
    assert kernel_options(partial(lbfgs, max_iter=5), groups) == {}  # takes no such option
    optimizer = torch.optim.AdamW(groups[0]["params"], **kernel_options(torch.optim.AdamW, groups))
    assert optimizer.defaults["fused"] is True
    before = groups[0]["params"][0].detach().clone()
    groups[0]["params"][0].grad = torch.ones(2)
    optimizer.step()  # the fused CPU step runs and moves the parameter against the gradient
    assert (groups[0]["params"][0].detach() < before).all()


def test_an_unknown_compile_mode_is_refused(tmp_path, make_cfg) -> None:
    with pytest.raises(ZooError, match="trainer.compile='fastest'"):
        train(make_cfg("model=dnn", "trainer.compile=fastest"), tmp_path)


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, make_cfg) -> None:
    result = train(make_cfg("model=dnn", "trainer.precision=bf16-mixed", "trainer.max_epochs=1"), tmp_path)
    assert np.isfinite(result["test"]["logloss"])


@pytest.mark.slow  # torch.compile's first build takes ~30 s on a shared 2-core CPU
def test_compiled_model_trains(tmp_path, make_cfg) -> None:
    result = train(make_cfg("model=dnn", "trainer.compile=default", "trainer.max_epochs=1"), tmp_path)
    assert np.isfinite(result["test"]["logloss"])
