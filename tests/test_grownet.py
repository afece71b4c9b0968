"""GrowNet (`hbn`): the boosting loss against the authors' second-order form, each stage lowering the
training loss, frozen learners staying frozen, the learned boost rate, and `n_active` in checkpoints."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zoo.models.grownet import GrowNet
from zoo.nn import OneRowBatchNorm1d
from zoo.testing import planted_batch, quiet_trainer, tiny_batch, tiny_spec


def grownet(**overrides) -> GrowNet:
    settings = {
        "n_stages": 4,
        "hidden": (16, 16),
        "d_embedding": 4,
        "epochs_per_stage": 2,
        "correct_epochs": 1,
    }
    return GrowNet(feature_spec=tiny_spec(), **{**settings, **overrides})


def fit(model: GrowNet, batch, max_epochs: int, callbacks=(), tmp_path: Path | None = None) -> pl.Trainer:
    """Full-batch Lightning fit on one planted batch, no validation."""
    trainer = quiet_trainer(tmp_path, max_epochs=max_epochs, limit_val_batches=0, callbacks=list(callbacks))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(model, DataLoader([batch], batch_size=None))
    return trainer


class StageLosses(pl.Callback):
    """The ensemble's training cross-entropy in eval mode at the end of every stage."""

    def __init__(self, batch) -> None:
        self.batch, self.losses = batch, []

    def on_train_epoch_end(self, trainer, model) -> None:
        if (trainer.current_epoch + 1) % (model.epochs_per_stage + model.correct_epochs) == 0:
            model.eval()
            with torch.no_grad():
                logits = model(self.batch)
            self.losses.append(float(F.binary_cross_entropy_with_logits(logits, self.batch["y"])))
            model.train()


def test_boosting_loss_is_the_authors_second_order_form():
    # The authors' code (y' = 2y - 1): h = 1 / ((1 + e^{y'F})(1 + e^{-y'F})), target y'(1 + e^{-y'F}),
    # loss mean(h (alpha f - target)^2). Ours writes it as (y - p) / (p (1 - p)) with p = sigmoid(F).
    torch.manual_seed(0)
    model = grownet(initial_boost_rate=0.7)
    model.fitting_stage = 1
    batch = tiny_batch(model.feature_spec, 32, seed=1)
    previous, learner = 3 * torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    output = {"logits": previous + 0.7 * learner, "previous": previous, "learner": learner}
    y = 2 * batch["y"].double() - 1
    h = 1 / ((1 + torch.exp(y * previous)) * (1 + torch.exp(-y * previous)))
    expected = (h * (0.7 * learner - y * (1 + torch.exp(-y * previous))) ** 2).mean()
    terms = model.loss(batch, output)
    torch.testing.assert_close(terms["newton_mse"], expected)
    torch.testing.assert_close(terms["loss"].detach(), expected)


def test_each_boosting_stage_lowers_the_training_loss():
    # Boosting alone (no corrective step): each new learner fitted to the Newton target of the
    # ensemble so far must lower the ensemble's training cross-entropy, from the prior c0 on.
    torch.manual_seed(0)
    batch = planted_batch(tiny_spec(), 400, seed=0)
    model = grownet(epochs_per_stage=15, correct_epochs=0)
    record = StageLosses(batch)
    trainer = fit(model, batch, max_epochs=1000, callbacks=[record])
    assert trainer.current_epoch == 4 * 15  # the schedule ends the fit, not max_epochs
    rate = batch["y"].mean()
    torch.testing.assert_close(model.prior_logit, torch.logit(rate))  # c0: the training log-odds
    base = float(F.binary_cross_entropy(rate.expand(400), batch["y"]))
    losses = [base, *record.losses]
    assert len(losses) == 5
    drops = [a - b for a, b in zip(losses, losses[1:], strict=False)]
    assert all(d > 0.01 for d in drops), f"training BCE by stage {losses}"


def test_stages_with_corrective_steps_lower_the_training_loss():
    torch.manual_seed(0)
    batch = planted_batch(tiny_spec(), 400, seed=1)
    model = grownet(n_stages=3, epochs_per_stage=15, correct_epochs=5)
    record = StageLosses(batch)
    fit(model, batch, max_epochs=1000, callbacks=[record])
    base = float(F.binary_cross_entropy(batch["y"].mean().expand(400), batch["y"]))
    losses = [base, *record.losses]
    assert len(losses) == 4
    assert all(b < a - 0.01 for a, b in zip(losses, losses[1:], strict=False)), losses


def test_boosting_trains_only_the_new_learner_and_corrections_learn_the_boost_rate():
    torch.manual_seed(0)
    batch = planted_batch(tiny_spec(), 200, seed=0)
    model = grownet(epochs_per_stage=2, correct_epochs=1)
    assert "boost_rate" in dict(model.named_parameters()) and model.boost_rate.requires_grad
    initial = copy.deepcopy(model.state_dict())
    boosted = copy.deepcopy(model)
    fit(boosted, batch, max_epochs=2)  # stage 0, boosting epochs only
    fit(model, batch, max_epochs=3)  # the same, then stage 0's corrective epoch

    def changed(state, prefix):
        return any(not torch.equal(initial[k], state[k]) for k in initial if k.startswith(prefix))

    assert changed(boosted.state_dict(), "learners.0.")
    assert float(boosted.boost_rate) == 1.0  # boosting uses the rate as a constant
    assert float(model.boost_rate) != 1.0  # the corrective step learns it
    for state in (boosted.state_dict(), model.state_dict()):  # learners not yet in the ensemble
        assert not any(changed(state, f"learners.{k}.") for k in (1, 2, 3))


def test_frozen_learners_keep_weights_and_batchnorm_statistics_while_a_new_one_is_boosted():
    torch.manual_seed(0)
    batch = planted_batch(tiny_spec(), 200, seed=0)
    model = grownet(epochs_per_stage=2, correct_epochs=1)
    snapshots = {}

    class Snapshot(pl.Callback):
        def on_train_epoch_end(self, trainer, module) -> None:
            snapshots[trainer.current_epoch] = copy.deepcopy(module.state_dict())

    fit(model, batch, max_epochs=5, callbacks=[Snapshot()])  # epochs 3-4 boost learner 1
    stage_0, boosted = snapshots[2], snapshots[4]
    frozen = [k for k in stage_0 if k.startswith("learners.0.") or k == "boost_rate"]
    assert any(k.endswith("running_mean") for k in frozen)
    for key in frozen:
        assert torch.equal(stage_0[key], boosted[key]), key
    assert any(not torch.equal(stage_0[k], boosted[k]) for k in stage_0 if k.startswith("learners.1."))
    assert int(boosted["n_active"]) == 2


def test_a_boosting_step_reaches_every_parameter_as_ddp_needs_then_drops_the_idle_gradients():
    # DDP expects a gradient for every parameter each step; the optimiser must then see only the
    # boosted learner's (AdamW skips a parameter whose gradient is None).
    torch.manual_seed(0)
    model = grownet()
    batch = tiny_batch(model.feature_spec, 16, seed=1)
    model.fitting_stage = 2
    model.n_active.fill_(3)
    model.train()
    model.loss(batch, model(batch))["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.on_after_backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, _ in model.named_parameters() if n.startswith("learners.2.")}


def test_outside_a_trainer_all_stages_are_active_and_the_loss_is_the_ensemble_bce():
    torch.manual_seed(0)
    model = grownet()
    batch = tiny_batch(model.feature_spec, 16, seed=1)
    assert int(model.n_active) == 4 and model.fitting_stage is None
    model.train()
    logits = model(batch)
    terms = model.loss(batch, logits)
    torch.testing.assert_close(terms["loss"].float(), F.binary_cross_entropy_with_logits(logits, batch["y"]))
    model.eval()
    model.prior_logit.fill_(0.5)
    with torch.no_grad():
        full = model(batch)
        model.n_active.fill_(1)
        first = model(batch)
        _, f0 = model.learners[0](batch["x_cat"], batch["x_num"], None)
    torch.testing.assert_close(first, model.prior_logit + model.boost_rate * f0)
    assert not torch.allclose(full, first)


def test_checkpoint_keeps_n_active(tmp_path):
    torch.manual_seed(0)
    batch = planted_batch(tiny_spec(), 200, seed=0)
    model = grownet(epochs_per_stage=1, correct_epochs=1)
    trainer = fit(model, batch, max_epochs=3, tmp_path=tmp_path)  # epoch 2 boosts learner 1
    assert int(model.n_active) == 2
    path = tmp_path / "hbn.ckpt"
    trainer.save_checkpoint(path, weights_only=False)  # full state, as zoo-train saves
    loaded = GrowNet.load_from_checkpoint(path, weights_only=True)
    assert int(loaded.n_active) == 2 and float(loaded.prior_logit) == float(model.prior_logit)
    test = planted_batch(tiny_spec(), 64, seed=3)
    with torch.no_grad():
        expected, got = model.eval()(test), loaded.eval()(test)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        loaded.n_active.fill_(4)
        assert not torch.allclose(loaded(test), expected)  # the untrained learners would change it


def test_normalization_replaces_each_batchnorm_of_the_learners():
    """`batch` keeps the authors' BatchNorm (input of every learner but the first, each hidden
    layer but the last); `layer` puts LayerNorm there and `none` nothing, with the same layers."""
    counts = {}
    for kind, module in (("batch", OneRowBatchNorm1d), ("layer", torch.nn.LayerNorm), ("none", None)):
        model = grownet(n_stages=3, hidden=[8, 8, 4], normalization=kind)
        norms = [m for m in model.modules() if isinstance(m, (OneRowBatchNorm1d, torch.nn.LayerNorm))]
        assert all(type(m) is module for m in norms)
        counts[kind] = len(norms)
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 3 * 4  # three hidden layers and a head per learner
    # 2 hidden norms in each of 3 learners, and the input norm of learners 2 and 3
    assert counts == {"batch": 8, "layer": 8, "none": 0}
    model = grownet(normalization="none").eval()
    out = model(tiny_batch(tiny_spec()))
    assert torch.isfinite(out).all()


def test_a_bad_normalization_is_refused_with_the_value():
    with pytest.raises(
        ValueError, match=r"normalization='group', expected one of \['batch', 'layer', 'none'\]"
    ):
        grownet(n_stages=1, hidden=[4], normalization="group")
