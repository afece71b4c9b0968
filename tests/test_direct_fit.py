"""Direct-fit models (`TreeModel`): fitted on every row of the training split through
`CreditDataModule.split_arrays`, whatever the loaders drop or shard; refused under DDP; seeded by
the run's seed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.models.tree import TreeModel
from zoo.testing import PLANTED_DATASET, build, default_config, planted_batch, planted_frame, tiny_spec


def planted_dm(**options) -> CreditDataModule:
    """120 training rows of `planted_frame`, raw values kept as tree models ask."""
    return CreditDataModule(PLANTED_DATASET, frame=planted_frame(200), raw_values=True, **options)


def recording_tree(name: str, feature_spec) -> tuple[TreeModel, list[dict]]:
    """The model `name`, which notes the training arrays every `fit_model` call gets."""
    model = build(default_config(name), feature_spec)
    assert isinstance(model, TreeModel)
    calls: list[dict] = []
    fit_model = model.fit_model

    def fit(train, val):
        calls.append({"train": train, "val": val})
        return fit_model(train, val)

    model.fit_model = fit  # type: ignore[method-assign]
    return model, calls


def fit(model, tmp_path, *, val_batches: int = 0, **data) -> None:
    """One epoch of a CPU Trainer, quiet."""
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        num_sanity_val_steps=0,
        limit_val_batches=val_batches,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, **data)


def test_split_arrays_hold_every_row_of_the_split_as_a_copy():
    dm = planted_dm(batch_size=32, drop_last=True)
    train = dm.split_arrays("train")
    assert set(train) == {"x_cat", "x_num", "x_cross", "x_raw", "y", "row"}
    assert len(train["y"]) == dm.rows()["train"] == 120
    assert sum(len(b["y"]) for b in dm.train_dataloader()) == 96  # what the loader serves
    np.testing.assert_array_equal(train["row"], dm.arrays["train"]["row"])
    train["y"][:] = -1  # the caller's copy: the DataModule's rows stay as they were
    assert (dm.arrays["train"]["y"] >= 0).all()
    assert "x_raw" not in CreditDataModule(PLANTED_DATASET, frame=planted_frame(200)).split_arrays("val")
    with pytest.raises(ZooError, match=r"split 'training' is not one of train, val, test"):
        dm.split_arrays("training")


@pytest.mark.parametrize("name", ["dt", "catboost"])
def test_a_tree_model_fits_on_every_training_row_under_drop_last(name, tmp_path):
    dm = planted_dm(batch_size=32, drop_last=True)
    model, calls = recording_tree(name, dm.feature_spec)
    fit(model, tmp_path, datamodule=dm)
    assert len(calls) == 1
    np.testing.assert_array_equal(np.sort(calls[0]["train"]["row"]), np.sort(dm.arrays["train"]["row"]))
    np.testing.assert_array_equal(calls[0]["val"]["row"], dm.arrays["val"]["row"])
    assert "x_raw" in calls[0]["train"]


def test_a_rank_of_two_would_still_fit_on_every_row_but_ddp_is_refused():
    dm = planted_dm(batch_size=32)
    model = build(default_config("dt"), dm.feature_spec)
    # What rank 0 of 2 would have gathered from its loader: half the rows.
    dm.setup()
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2)
    assert sum(len(b["y"]) for b in dm.train_dataloader()) == 60
    model.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(ZooError, match=r"fitted once on every training row.*world size is 2, expected 1"):
        model.setup("fit")
    model.trainer = SimpleNamespace(world_size=1)
    model.setup("fit")  # one process: fine


def test_without_a_datamodule_a_tree_model_fits_on_what_the_loaders_serve(tmp_path):
    spec = tiny_spec()
    model, calls = recording_tree("dt", spec)
    train = [planted_batch(spec, 64, seed=s, raw_values=True) for s in (0, 1)]
    val = [planted_batch(spec, 32, seed=2, raw_values=True)]
    loaders = {
        "train_dataloaders": DataLoader(train, batch_size=None),
        "val_dataloaders": DataLoader(val, batch_size=None),
    }
    fit(model, tmp_path, val_batches=1, **loaders)
    assert len(calls) == 1 and len(calls[0]["train"]["y"]) == 128


def test_a_tree_model_takes_the_run_seed_from_the_datamodule(tmp_path):
    dm = planted_dm(batch_size=32, seed=3)
    model = build(default_config("dt"), dm.feature_spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)  # torch's global seed is not the run's
        fit(model, tmp_path, datamodule=dm)
        assert model.seed == 3
