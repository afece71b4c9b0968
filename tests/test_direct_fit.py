"""Direct-fit models (`TreeModel`): fitted once through `zoo.fitting`, no epoch loop, on every row
of the training split (`CreditDataModule.split_arrays`), whatever the loaders drop or shard;
refused across processes; seeded by the run's seed; refused by `Trainer.fit`."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.fitting import fit_directly, placement
from zoo.models.tree import TreeModel
from zoo.testing import PLANTED_DATASET, build, default_config, planted_batch, planted_frame, tiny_spec
from zoo.train import train


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
def test_a_tree_model_fits_on_every_training_row_under_drop_last(name):
    dm = planted_dm(batch_size=32, drop_last=True)
    model, calls = recording_tree(name, dm.feature_spec)
    fit_directly(model, dm)
    assert len(calls) == 1
    np.testing.assert_array_equal(np.sort(calls[0]["train"]["row"]), np.sort(dm.arrays["train"]["row"]))
    np.testing.assert_array_equal(calls[0]["val"]["row"], dm.arrays["val"]["row"])
    assert "x_raw" in calls[0]["train"]


def test_more_than_one_process_is_refused_for_a_direct_fit(make_cfg, tmp_path):
    cfg = make_cfg("model=dt", "trainer=fast", "trainer.devices=2", "+trainer.strategy=ddp")
    with pytest.raises(ZooError, match=r"fitted once on every training row.*world size is 2, expected 1"):
        train(cfg, tmp_path / "run")
    assert placement(make_cfg("trainer=fast").trainer) == (torch.device("cpu"), 1)


def test_a_direct_fit_takes_no_epochs_and_reloads_from_its_one_checkpoint(make_cfg, tmp_path):
    result = train(make_cfg("model=dt", "trainer=fast"), tmp_path / "run")
    assert result["epochs"] == 0 and result["best_checkpoint"] == "checkpoints/best.ckpt"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.ckpt"]


def test_trainer_fit_refuses_a_direct_fit_model_with_one_line():
    spec = tiny_spec()
    model = build(default_config("dt"), spec)
    batch = planted_batch(spec, 8, seed=0, raw_values=True)
    with pytest.raises(TypeError, match="fitted once by its library.*zoo.fitting.fit_directly"):
        model.training_step(batch, 0)


def test_without_a_datamodule_a_tree_model_fits_on_what_the_loaders_serve():
    spec = tiny_spec()
    model, calls = recording_tree("dt", spec)
    train_rows = [planted_batch(spec, 64, seed=s, raw_values=True) for s in (0, 1)]
    val = [planted_batch(spec, 32, seed=2, raw_values=True)]
    loaders = SimpleNamespace(
        train_dataloader=lambda: DataLoader(train_rows, batch_size=None),
        val_dataloader=lambda: DataLoader(val, batch_size=None),
    )
    fit_directly(model, loaders)
    assert len(calls) == 1 and len(calls[0]["train"]["y"]) == 128


def test_a_tree_model_takes_the_run_seed_from_the_datamodule():
    dm = planted_dm(batch_size=32, seed=3)
    model = build(default_config("dt"), dm.feature_spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)  # torch's global seed is not the run's
        fit_directly(model, dm)
        assert model.seed == 3
