"""Neural models start at the training bad rate (`start_at_base_rate`, zoo/base_rate.py): the
offset is the training log-odds, is added to every forward's logits, is kept by checkpoints and a
resumed fit, and is 0 when switched off or for a checkpoint saved before it existed."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from zoo.base_rate import StartAtBaseRate, training_log_odds
from zoo.data.batches import DeviceBatches
from zoo.models.linear import LogisticRegression
from zoo.models.mlp import DNN
from zoo.testing import quiet_trainer, tiny_batch, tiny_spec


def imbalanced_batch(n: int = 200, bad: int = 9):
    """A tiny batch whose labels are `bad` ones among `n` rows (a 4.5% bad rate)."""
    batch = tiny_batch(tiny_spec(), n=n, seed=3)
    y = torch.zeros(n)
    y[torch.randperm(n, generator=torch.Generator().manual_seed(0))[:bad]] = 1.0
    return {**batch, "y": y}


def fit(model, loader, *, callbacks=(), max_epochs=1, tmp_path=None, ckpt_path=None):
    trainer = quiet_trainer(tmp_path, max_epochs=max_epochs, limit_val_batches=0, callbacks=list(callbacks))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")
        trainer.fit(model, loader, ckpt_path=ckpt_path)
    return trainer


def device_batches(batch, batch_size: int = 32) -> DeviceBatches:
    return DeviceBatches(batch, batch_size=batch_size, shuffle=True)


def test_the_offset_is_the_training_log_odds_from_either_kind_of_loader():
    batch = imbalanced_batch()
    expected = math.log(9 / 191)
    for loader in (device_batches(batch), DataLoader([batch], batch_size=None)):
        model = DNN(feature_spec=tiny_spec(), hidden=(8,))
        trainer = fit(model, loader, callbacks=[StartAtBaseRate()])
        assert model.logit_offset.item() == pytest.approx(expected, abs=1e-6)
        assert training_log_odds(trainer).item() == pytest.approx(expected, abs=1e-6)


def test_the_offset_enters_every_forward():
    batch = imbalanced_batch()
    model = DNN(feature_spec=tiny_spec(), hidden=(8,)).eval()
    with torch.no_grad():
        without = model(batch)
        model.logit_offset.fill_(-3.0)
        with_offset = model(batch)
    torch.testing.assert_close(with_offset, without - 3.0)


def test_without_the_callback_logits_start_at_zero():
    model = DNN(feature_spec=tiny_spec(), hidden=(8,))
    fit(model, device_batches(imbalanced_batch()))
    assert model.logit_offset.item() == 0.0


def test_models_solved_to_their_optimum_have_no_offset():
    model = LogisticRegression(feature_spec=tiny_spec())
    assert not hasattr(model, "logit_offset")
    assert "logit_offset" not in model.state_dict()


def test_a_resumed_fit_keeps_the_offset_of_its_checkpoint(tmp_path):
    batch = imbalanced_batch()
    model = DNN(feature_spec=tiny_spec(), hidden=(8,))
    trainer = fit(model, device_batches(batch), callbacks=[StartAtBaseRate()], tmp_path=tmp_path)
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    # Resumed on rows with another bad rate: the fit is not fresh, so the saved offset stays.
    other = {**batch, "y": 1.0 - batch["y"]}
    resumed = DNN(feature_spec=tiny_spec(), hidden=(8,))
    fit(resumed, device_batches(other), callbacks=[StartAtBaseRate()], max_epochs=2, ckpt_path=ckpt)
    assert resumed.logit_offset.item() == pytest.approx(math.log(9 / 191), abs=1e-6)


def test_a_checkpoint_saved_before_the_offset_existed_loads_with_zero():
    model = DNN(feature_spec=tiny_spec(), hidden=(8,))
    model.logit_offset.fill_(-2.0)
    state = {k: v for k, v in model.state_dict().items() if k != "logit_offset"}
    loaded = DNN(feature_spec=tiny_spec(), hidden=(8,))
    loaded.logit_offset.fill_(5.0)
    loaded.load_state_dict(state)  # strict: the missing key is filled, not an error
    assert loaded.logit_offset.item() == 0.0


def test_a_run_starts_at_the_base_rate_unless_the_config_says_false(make_cfg, tmp_path):
    from zoo.train import train

    offsets = {}
    for on in (True, False):
        cfg = make_cfg("model=dnn", "dataset=german", f"start_at_base_rate={str(on).lower()}")
        run = tmp_path / str(on)
        train(cfg, run)
        state = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
        offsets[on] = float(state["logit_offset"])
    # german's training split: 180 bad rows of 600 (the split is stratified).
    assert offsets[True] == pytest.approx(math.log(180 / 420), abs=1e-6)
    assert offsets[False] == 0.0
