"""The autoencoder baselines: SAE's greedy pretraining (inside a fit, once, reconstruction
falling layer by layer) and the supervised VAE's KL warm-up, sampling and loss terms."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from zoo.models.sae import PRETRAINING_FILE, StackedAutoencoder, TabularDecoder
from zoo.models.vae import SupervisedVAE
from zoo.testing import planted_batch, tiny_batch, tiny_spec
from zoo.train import train


def tiny_trainer(tmp_path, **kwargs) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(tmp_path),
        **kwargs,
    }
    return pl.Trainer(**options)


def test_tabular_decoder_loss_is_gaussian_and_categorical_nll():
    spec = tiny_spec(2, 2)
    batch = tiny_batch(spec, 6)
    decoder = TabularDecoder(4, spec.cardinalities, spec.n_numeric)
    decoded = decoder(torch.randn(6, 4))
    n = spec.n_numeric
    expected = 0.5 * ((decoded[:, :n] - batch["x_num"]) ** 2).sum(1)
    start = n
    for j, cardinality in enumerate(spec.cardinalities):
        log_p = decoded[:, start : start + cardinality].log_softmax(1)
        expected = expected - log_p[torch.arange(6), batch["x_cat"][:, j]]
        start += cardinality
    assert decoded.shape == (6, n + sum(spec.cardinalities))
    torch.testing.assert_close(decoder.loss(decoded, batch), expected)


# --- SAE ---------------------------------------------------------------------------------------


def test_sae_pretraining_lowers_each_layers_reconstruction():
    torch.manual_seed(0)
    spec = tiny_spec(3, 3)
    batches = [planted_batch(spec, 64, seed=s) for s in range(4)]
    # The paper's rate: 15 epochs of 4 batches at the everyday 1e-3 are too few to show the drop.
    model = StackedAutoencoder(feature_spec=spec, pretrain_epochs=15, learning_rate=3e-3)
    assert not model.pretrained and model.pretrain_history.isnan().all()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    history = model.pretrain(batches)
    assert model.pretrained and history.shape == (3, 15)
    first, last = history[:, 0], history[:, -1]
    assert (last < 0.8 * first).all(), history[:, [0, -1]]
    # Each layer's own parameters moved; the head is fine-tuned later, not pretrained.
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert {"embed.embedding.weight", "encoder.0.weight", "encoder.2.weight", "decoders.2.weight"} <= changed
    assert "head.weight" not in changed
    # Decoders are frozen again: the fine-tuning optimiser never sees them.
    assert not any(p.requires_grad for p in model.decoders.parameters())
    in_groups = {id(p) for group in model.parameter_groups() for p in group["params"]}
    assert not any(id(p) in in_groups for p in model.decoders.parameters())
    table = model.pretraining_table()
    assert list(table.columns) == ["layer", "width", "epoch", "reconstruction"] and len(table) == 45
    assert table.groupby("layer")["width"].first().tolist() == [128, 64, 32]


def test_sae_pretrains_once_when_a_fit_starts_and_keeps_the_record_in_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    spec = tiny_spec()
    model = StackedAutoencoder(feature_spec=spec, pretrain_epochs=3)
    loader = DataLoader([planted_batch(spec, 64, seed=s) for s in range(2)], batch_size=None)
    trainer = tiny_trainer(tmp_path)
    trainer.fit(model, loader)
    assert model.pretrained
    history = model.pretrain_history.clone()
    trainer.save_checkpoint(tmp_path / "sae.ckpt", weights_only=False)  # full state, as zoo-train saves
    loaded = StackedAutoencoder.load_from_checkpoint(tmp_path / "sae.ckpt", weights_only=True)
    assert loaded.pretrained and torch.equal(loaded.pretrain_history, history)
    # A second fit of a pretrained model fine-tunes only.
    tiny_trainer(tmp_path).fit(model, loader)
    assert torch.equal(model.pretrain_history, history)
    # Without pretraining there are no decoders and no record; forward and loss work alone.
    plain = StackedAutoencoder(feature_spec=spec, pretrain_epochs=0)
    assert plain.decoders is None and not plain.pretrained
    tiny_trainer(tmp_path).fit(plain, loader)
    assert plain.pretrain_history.shape == (3, 0)
    with pytest.raises(ValueError, match=r"noise=1\.0, expected"):
        StackedAutoencoder(feature_spec=spec, noise=1.0)


def test_sae_run_pretrains_on_the_datamodules_rows_and_writes_the_record(tmp_path, make_cfg):
    result = train(
        make_cfg("model=sae", "dataset=german", "model.pretrain_epochs=4", "trainer.max_epochs=6"), tmp_path
    )
    table = pd.read_csv(tmp_path / PRETRAINING_FILE)
    assert len(table) == 3 * 4 and table["reconstruction"].notna().all()
    by_layer = table.pivot(index="layer", columns="epoch", values="reconstruction")
    assert (by_layer[4] < by_layer[1]).all(), by_layer
    assert 0.5 < result["test"]["auc"] <= 1


# --- VAE ---------------------------------------------------------------------------------------


def test_vae_kl_weight_ramps_from_zero_to_one_over_the_warm_up():
    torch.manual_seed(0)
    spec = tiny_spec()
    batch = planted_batch(spec, 32)
    model = SupervisedVAE(feature_spec=spec, kl_warmup_steps=4).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=model.learning_rate)
    with torch.no_grad():  # an evaluation of the loss is no step
        model.loss(batch, model(batch))
    weights = []
    for _ in range(7):
        terms = model.loss(batch, model(batch))
        weights.append(float(terms["kl_weight"]))
        expected = terms["bce"] + model.beta * (terms["reconstruction"] + terms["kl_weight"] * terms["kl"])
        torch.testing.assert_close(terms["loss"], expected)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    assert weights == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert SupervisedVAE(feature_spec=spec, kl_warmup_steps=0).kl_weight() == 1.0


def test_vae_kl_weight_follows_the_trainers_global_step(tmp_path):
    torch.manual_seed(0)
    spec = tiny_spec()
    model = SupervisedVAE(feature_spec=spec, kl_warmup_steps=4)
    loader = DataLoader([planted_batch(spec, 32, seed=s) for s in range(3)], batch_size=None)
    trainer = tiny_trainer(tmp_path, log_every_n_steps=1)
    trainer.fit(model, loader)
    assert model.global_step == 3 and model.steps_without_trainer == 0
    assert model.kl_weight() == 0.75
    # Logged per epoch: the mean weight of steps 0, 1 and 2; every loss term is logged.
    assert float(trainer.callback_metrics["train/kl_weight"]) == pytest.approx(0.25)
    assert {"train/bce", "train/reconstruction", "train/kl"} <= set(trainer.callback_metrics)


def test_vae_head_reads_mu_at_inference_and_a_sample_in_training():
    torch.manual_seed(0)
    spec = tiny_spec()
    batch = tiny_batch(spec, 256)
    model = SupervisedVAE(feature_spec=spec).eval()
    with torch.no_grad():
        mu, log_var = model.encode(batch)
        logits = model(batch)
        assert torch.equal(logits, model.head(mu).squeeze(-1)) and torch.equal(logits, model(batch))
        model.train()
        first, second = model(batch), model(batch)
    assert set(first) == {"logits", "mu", "log_var", "z", "decoded"}
    torch.testing.assert_close(first["mu"], mu)
    torch.testing.assert_close(first["logits"], model.head(first["z"]).squeeze(-1))
    assert not torch.allclose(first["logits"], second["logits"]) and not torch.allclose(first["z"], mu)
    # z = mu + sigma * eps with eps standard normal.
    eps = (first["z"] - mu) / torch.exp(0.5 * log_var)
    assert abs(float(eps.mean())) < 0.05 and math.isclose(float(eps.std()), 1.0, abs_tol=0.05)


def test_vae_reconstruction_term_and_kl_are_the_elbos():
    torch.manual_seed(0)
    spec = tiny_spec()
    batch = tiny_batch(spec, 16)
    model = SupervisedVAE(feature_spec=spec, beta=0.5).train()
    output = model(batch)
    terms = model.loss(batch, output)
    mu, log_var = output["mu"], output["log_var"]
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, torch.exp(0.5 * log_var)), torch.distributions.Normal(0.0, 1.0)
    )
    torch.testing.assert_close(terms["kl"], kl.sum(1).mean())
    torch.testing.assert_close(
        terms["reconstruction"], model.reconstruct.loss(output["decoded"], batch).mean()
    )
    torch.testing.assert_close(terms["bce"], F.binary_cross_entropy_with_logits(output["logits"], batch["y"]))
    with pytest.raises(ValueError, match=r"beta=-1, expected"):
        SupervisedVAE(feature_spec=spec, beta=-1)
