"""The shared DataModule: splits, fixed-shape batches, training-only fitting, bundled data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from zoo.data import splits
from zoo.data.batches import DeviceBatches
from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError

GERMAN = {
    "name": "german",
    "source": "bundled",
    "file": "german_credit.csv",
    "target": "creditability",
    "bad_value": "bad",
    "crosses": [["purpose", "housing"]],
}


def test_bundled_german_batches_have_the_contracted_shape():
    dm = CreditDataModule(GERMAN, batch_size=64, seed=0)
    spec = dm.feature_spec
    assert dm.rows() == {"train": 600, "val": 200, "test": 200}
    assert spec.n_categorical == 13 and spec.n_numeric == 7 and spec.n_crosses == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["x_cat"].dtype == torch.int64 and batch["x_cat"].shape == (64, 13)
    assert batch["x_num"].dtype == torch.float32 and batch["x_num"].shape == (64, 7)
    assert batch["x_cross"].shape == (64, 1)
    assert batch["y"].dtype == torch.float32 and batch["y"].shape == (64,)
    assert int(batch["x_cat"].max()) < max(spec.cardinalities)


def test_split_is_stratified_disjoint_and_seeded():
    y = np.r_[np.zeros(700, np.int8), np.ones(300, np.int8)]
    a = splits.train_val_test(y, seed=3)
    b = splits.train_val_test(y, seed=3)
    c = splits.train_val_test(y, seed=4)
    for x, z in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, z)
    assert not np.array_equal(a[0], c[0])
    assert sum(len(p) for p in a) == 1000
    assert len(np.unique(np.concatenate(a))) == 1000
    for part in a:
        assert abs(y[part].mean() - 0.3) < 0.01


def test_k_fold_covers_every_row_once_as_test():
    y = np.r_[np.zeros(80, np.int8), np.ones(40, np.int8)]
    tests = [splits.k_fold(y, n_folds=5, fold=k, seed=0)[2] for k in range(5)]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(120))
    train, val, test = splits.k_fold(y, n_folds=5, fold=2, seed=0)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)


def test_too_few_rows_for_the_split_is_clear():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0], np.int8)
    with pytest.raises(ZooError, match="at least .* rows of each class"):
        splits.train_val_test(y)


def test_device_batches_shuffle_in_bulk_and_cover_all_rows():
    tensors = {"y": torch.arange(10, dtype=torch.float32), "row": torch.arange(10)}
    loader = DeviceBatches(tensors, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    epoch1 = torch.cat([b["row"] for b in loader])
    epoch2 = torch.cat([b["row"] for b in loader])
    assert sorted(epoch1.tolist()) == list(range(10))
    assert not torch.equal(epoch1, epoch2)  # a new permutation each epoch
    again = DeviceBatches(tensors, batch_size=4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b["row"] for b in again]), epoch1)  # seeded


def test_training_batches_never_end_on_a_single_row():
    # BatchNorm cannot normalise one row: 9 rows in batches of 4 serve 4 + 5, every row once.
    tensors = {"row": torch.arange(9)}
    shuffled = DeviceBatches(tensors, batch_size=4, shuffle=True, seed=0)
    sizes = [len(b["row"]) for b in shuffled]
    assert sizes == [4, 5] and len(shuffled) == 2
    assert sorted(torch.cat([b["row"] for b in shuffled]).tolist()) == list(range(9))
    ordered = DeviceBatches(tensors, batch_size=4)  # evaluation keeps every batch as it is
    assert [len(b["row"]) for b in ordered] == [4, 4, 1] and len(ordered) == 3


def test_device_batches_shard_across_ranks():
    tensors = {"row": torch.arange(10)}
    shards = [
        torch.cat([b["row"] for b in DeviceBatches(tensors, batch_size=3, rank=r, world_size=3)])
        for r in range(3)
    ]
    assert all(len(s) == 4 for s in shards)
    assert set(torch.cat(shards).tolist()) == set(range(10))


def test_datamodule_statistics_ignore_validation_and_test_rows():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)}
    )
    ds = {"name": "t", "target": "y", "bad_value": 1}
    dm = CreditDataModule(ds, frame=frame, seed=0)
    dm.build()
    outside = np.concatenate([dm.arrays["val"]["row"], dm.arrays["test"]["row"]])
    poisoned = frame.copy()
    poisoned.loc[outside, "x"] = 1e6
    poisoned.loc[outside, "c"] = "z"
    dm2 = CreditDataModule(ds, frame=poisoned, seed=0)
    dm2.build()
    assert dm2.preprocessor.means_ == dm.preprocessor.means_
    assert dm2.preprocessor.stds_ == dm.preprocessor.stds_
    assert list(dm2.preprocessor.vocabularies_["c"].categories) == ["a", "b"]
    np.testing.assert_array_equal(dm2.arrays["train"]["x_num"], dm.arrays["train"]["x_num"])
    assert (dm2.arrays["test"]["x_cat"][:, 0] == 1).all()  # every 'z' is unseen


def test_credit_data_missing_values_become_indicators():
    ds = {
        "name": "credit_data",
        "source": "bundled",
        "file": "credit_data.csv",
        "target": "Status",
        "bad_value": "bad",
    }
    dm = CreditDataModule(ds, seed=0)
    spec = dm.feature_spec
    assert "Income__missing" in spec.numeric_names
    for split in ("train", "val", "test"):
        assert np.isfinite(dm.arrays[split]["x_num"]).all()
        assert 0.2 < dm.arrays[split]["y"].mean() < 0.36


def test_ids_and_rows_stay_aligned_when_rows_are_dropped_for_their_target():
    rng = np.random.default_rng(0)
    n = 300
    status = rng.choice(["good", "bad", "open"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    status[:10] = None
    frame = pd.DataFrame({"loan_id": np.arange(1000, 1000 + n), "x": rng.normal(size=n), "status": status})
    ds = {
        "name": "t",
        "target": "status",
        "bad_value": "bad",
        "good_value": "good",
        "roles": {"id": ["loan_id"]},
    }
    dm = CreditDataModule(ds, frame=frame, seed=0)
    dm.build()
    labelled = frame[frame["status"].isin(["good", "bad"])].set_index("loan_id")["status"]
    for name in ("train", "val", "test"):
        ids = dm.ids[name]
        assert len(ids) == len(dm.arrays[name]["y"])
        expected = (labelled.loc[ids] == "bad").to_numpy().astype(np.float32)
        np.testing.assert_array_equal(expected, dm.arrays[name]["y"])
        # `row` is the position in the input frame, before unlabelled rows were dropped
        np.testing.assert_array_equal(frame["loan_id"].to_numpy()[dm.arrays[name]["row"]], ids)


def test_the_target_can_never_be_an_input(make_cfg):
    # The AFCC paper's Table 1 lists its label as a feature; here the target is split off before
    # any role is assigned, so naming it as an input is refused and it is never in the spec.
    cfg = make_cfg("dataset=german", "dataset.roles.categorical=[creditability]")
    with pytest.raises(ZooError, match=r"'creditability', which is not in the data"):
        CreditDataModule(cfg.dataset).build()
    dm = CreditDataModule(make_cfg("dataset=german").dataset)
    dm.build()
    names = [f.name for f in dm.feature_spec.categorical] + list(dm.feature_spec.numeric_names)
    assert "creditability" not in names and len(names) == 20


def test_a_data_file_rewritten_while_it_is_read_is_refused_in_one_line(tmp_path, monkeypatch):
    """The digest is taken in a thread apart from the parser: a file rewritten between the two
    could record the digest of other bytes than those trained on, so the run stops instead."""
    from importlib import resources

    from zoo.data import datamodule

    path = tmp_path / "german.csv"
    path.write_bytes(resources.files("zoo.datasets").joinpath("german_credit.csv").read_bytes())
    ds = {k: v for k, v in GERMAN.items() if k != "file"} | {"source": "file", "path": str(path)}
    ds["cache"] = False
    unchanged = CreditDataModule(ds, seed=0)
    unchanged.build()
    assert len(unchanged.source["sha256"]) == 64  # the unchanged file reads
    real_load = datamodule.load_frame

    def load_then_rewrite(dataset):
        frame = real_load(dataset)
        with path.open("a") as handle:  # another process appends while the run reads
            handle.write(path.read_text().splitlines()[1] + "\n")
        return frame

    monkeypatch.setattr(datamodule, "load_frame", load_then_rewrite)
    with pytest.raises(ZooError, match=r"^data file '.*german.csv' changed while it was read; run again"):
        CreditDataModule(ds, seed=0).build()
