"""Numeric preprocessing v2: special codes found on training rows, smooth clipping, integer codes as
categories, one numeric-embedding setting shared by every neural model, and old runs still loading."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pandas as pd
import pytest
import torch

from zoo import registry
from zoo.data import special
from zoo.data.datamodule import CreditDataModule
from zoo.data.encoding import SMOOTH_CLIP, fit_numeric
from zoo.data.preprocess import SPECIAL_INFIX, Preprocessor
from zoo.data.sources import DATASET_DEFAULTS
from zoo.data.spec import FeatureSpec
from zoo.errors import ZooError
from zoo.testing import tiny_batch, tiny_spec
from zoo.train import config_dir

RNG = np.random.default_rng(7)
N = 5000


def _with_codes(values: np.ndarray, codes: dict[float, float], seed: int = 0) -> np.ndarray:
    """`values` with each code written into its share of rows (disjoint rows)."""
    out = values.astype(np.float64).copy()
    order = np.random.default_rng(seed).permutation(len(out))
    start = 0
    for code, share in codes.items():
        stop = start + int(share * len(out))
        out[order[start:stop]] = code
        start = stop
    return out


# --- special values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bulk", "codes"),
    [
        (RNG.integers(0, 60, N), {999.0: 0.06}),  # months since delinquency, 999 = never
        (RNG.integers(0, 60, N), {999.0: 0.05, 9999.0: 0.01, -1.0: 0.02}),  # several codes
        (RNG.poisson(1.0, N), {99.0: 0.03}),  # a count with 99 = unknown
        (RNG.poisson(0.8, N), {9.0: 0.02}),  # dependants, 9 = unknown
        (np.exp(RNG.normal(10, 0.5, N)).round(), {999999.375: 0.01}),  # an amount with a coded value
        (RNG.normal(50, 10, N), {-8.0: 0.007}),  # a rare negative code in a positive field
    ],
)
def test_planted_codes_are_found(bulk, codes):
    found = special.detect(_with_codes(bulk, codes))
    assert sorted(found) == sorted(codes)


@pytest.mark.parametrize(
    "values",
    [
        np.exp(RNG.normal(11, 1.2, N)),  # lognormal income: a heavy tail, no repeated extreme
        (RNG.pareto(1.5, N) + 1) * 1000,  # Pareto balances: skew of tens
        np.where(RNG.random(N) < 0.7, 0.0, np.exp(RNG.normal(8, 1.5, N))),  # zero-inflated amounts
        (RNG.random(N) < 0.1).astype(float),  # a 0/1 flag
        RNG.poisson(0.4, N).astype(float),  # counts of late payments, 5 or 6 now and then
        np.clip(RNG.normal(50, 30, N), 0, 100).round(),  # utilisation capped at 0 and 100
        RNG.integers(18, 80, N).astype(float),  # age
        np.concatenate([RNG.normal(0, 1, N - 60), np.full(60, 4.0)]),  # a repeated value inside the tail
    ],
)
def test_real_tails_and_small_codes_are_left_alone(values):
    assert special.detect(values) == []


def test_codes_become_missing_with_their_own_indicator_and_leave_statistics_alone():
    months = _with_codes(RNG.integers(0, 60, 2000), {999.0: 0.1}, seed=1)
    frame = pd.DataFrame({"months": months})
    pre = Preprocessor(categorical=[], numeric=["months"], detect_special_values=True).fit(frame)
    field = pre.numeric_fields_[0]
    assert field.special_values == (999.0,)
    real = months[months != 999]
    filled = np.where(months == 999, np.median(real), months)  # codes are imputed like missing values
    assert field.mean == pytest.approx(filled.mean()) and field.std == pytest.approx(filled.std())
    assert field.quantiles[-1] == real.max() and field.median == np.median(real)
    names = [f.name for f in pre.feature_spec().numeric]
    assert names == ["months", f"months{SPECIAL_INFIX}999"]
    out = pre.transform(frame)["x_num"]
    coded = months == 999
    np.testing.assert_array_equal(out[:, 1], coded.astype(np.float32))
    np.testing.assert_allclose(out[coded, 0], (np.median(real) - filled.mean()) / filled.std(), rtol=1e-6)
    assert "999 (10.0%)" in pre.special_report(len(frame))[0]
    # Without detection the code is a number like any other, and sets the scale.
    plain = Preprocessor(categorical=[], numeric=["months"]).fit(frame)
    assert plain.numeric_fields_[0].special_values == () and plain.stds_["months"] > 200


def test_declared_codes_and_their_errors():
    frame = pd.DataFrame({"a": [1.0, 2.0, 7.0, 3.0, 7.0], "b": [-1.0, 5.0, 6.0, -1.0, 8.0]})
    pre = Preprocessor(categorical=[], numeric=["a", "b"], special_values={"a": [7], "default": [-1, 42]})
    pre.fit(frame)
    assert [f.special_values for f in pre.numeric_fields_] == [(7.0,), (-1.0,)]  # 42 never occurs
    with pytest.raises(ZooError, match="names 'c', which is not a numeric field"):
        Preprocessor(categorical=[], numeric=["a"], special_values={"c": [1]}).fit(frame)
    with pytest.raises(ZooError, match=r"special_values.a holds 'x', expected finite numbers"):
        Preprocessor(categorical=[], numeric=["a"], special_values={"a": ["x"]}).fit(frame)
    with pytest.raises(ZooError, match="detect_special_values='yes', expected true or false"):
        Preprocessor(categorical=[], numeric=["a"], detect_special_values="yes").fit(frame)  # type: ignore[arg-type]


# --- fitted on training rows only ---------------------------------------------------------------


def _messy_frame(n: int = 1200, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = np.exp(rng.normal(10.5, 0.8, n))
    months = _with_codes(rng.integers(0, 80, n), {999.0: 0.08}, seed=seed)
    region = rng.integers(1, 8, n)
    logit = -1.5 + 0.8 * (np.log(income) - 10.5) * -1 + 0.9 * (months == 999) + 0.4 * (region % 3 == 0)
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    purpose = rng.choice(["car", "home", "other"], n)
    return pd.DataFrame(
        {"income": income, "months": months, "region": region, "purpose": purpose, "default": default}
    )


DATASET = {
    "name": "messy",
    "target": "default",
    "bad_value": 1,
    "numeric_encoding": "quantile_normal",
    "detect_special_values": True,
    "integer_categories": 10,
}


def test_a_poisoned_test_row_changes_nothing_that_was_fitted():
    frame = _messy_frame()
    clean = CreditDataModule(DATASET, frame=frame, seed=0)
    clean.build()
    test_rows = clean.arrays["test"]["row"]
    poisoned = frame.copy()
    poisoned.loc[test_rows[:40], "income"] = 1e12  # extreme amounts and fresh codes, test rows only
    poisoned.loc[test_rows[40:80], "months"] = 9999.0
    poisoned.loc[test_rows[80:90], "region"] = 99
    dirty = CreditDataModule(DATASET, frame=poisoned, seed=0)
    dirty.build()
    assert dirty.preprocessor.to_dict() == clean.preprocessor.to_dict()
    for split in ("train", "val"):
        for key, value in clean.arrays[split].items():
            np.testing.assert_array_equal(dirty.arrays[split][key], value)
    assert clean.roles["region"] == "categorical"  # 7 integer codes <= 10
    assert any("'months': 999" in w for w in clean.warnings)


def test_a_training_value_beyond_float64_statistics_is_an_error_not_a_dropped_field():
    values = np.array([1.0, 2.0, 1e308, 3.0])
    with pytest.raises(ZooError, match=r"'amount' has a standard deviation of inf"):
        fit_numeric("amount", values, "standard")


# --- smooth clipping and integer categories -----------------------------------------------------


def test_smooth_clip_is_bounded_robust_and_inverts():
    values = np.concatenate([RNG.normal(100, 10, 999), [1e9]])  # one wild value
    field = fit_numeric("x", values, "smooth_clip")
    q1, q3 = np.quantile(values, [0.25, 0.75])
    assert field.mean == pytest.approx(np.median(values)) and field.std == pytest.approx(q3 - q1)
    encoded = field.encode(values)
    assert np.all(np.abs(encoded) < SMOOTH_CLIP)
    assert encoded[-1] > 2.99  # the wild value is clipped, not allowed to set the scale
    inner = values[:-1]
    np.testing.assert_allclose(field.decode(field.encode(inner)), inner, rtol=1e-9)
    # In the middle, smooth clipping is close to robust scaling: x / sqrt(1 + (x/3)^2) at x = 1.
    one_iqr = field.mean + field.std
    assert field.encode(np.array([one_iqr]))[0] == pytest.approx(1 / np.sqrt(1 + 1 / 9))


def test_integer_categories_respect_given_roles_and_reject_bad_values():
    frame = _messy_frame()
    dm = CreditDataModule({**DATASET, "roles": {"numeric": ["region"]}}, frame=frame, seed=0)
    dm.build()
    assert dm.roles["region"] == "numeric" and dm.roles["months"] == "numeric"  # months: many values
    for bad in (2, "ten", 2.5, True):
        with pytest.raises(
            ZooError, match=r"dataset.integer_categories=.*expected null \(off\) or an integer"
        ):
            CreditDataModule({**DATASET, "integer_categories": bad}, frame=frame, seed=0).build()


# --- one numeric-embedding setting for every neural model ---------------------------------------


def _models_with_numeric_embedding() -> list[str]:
    names = []
    for name in registry.names():
        cls = registry.get(name)
        if "numeric_embedding" in inspect.signature(cls.__init__).parameters:
            names.append(name)
    return sorted(set(names))


def test_every_neural_model_takes_the_setting():
    names = set(_models_with_numeric_embedding())
    families = {n: registry.get(n).family for n in registry.names()}
    neural = {
        n for n, fam in families.items() if fam in ("neural", "interaction") and n not in ("lr", "lr_cross")
    }
    assert neural - names == set(), f"neural models without numeric_embedding: {sorted(neural - names)}"


@pytest.mark.parametrize("kind", ["linear", "periodic", "piecewise_linear"])
@pytest.mark.parametrize("model", _models_with_numeric_embedding())
def test_each_kind_builds_trains_a_step_and_reads_the_numerics(model, kind):
    torch.manual_seed(0)
    spec = tiny_spec(2, 3)
    cls = registry.get(model)
    net = cls(feature_spec=spec, numeric_embedding=kind)
    assert net.hparams["numeric_embedding"] == kind
    batch = tiny_batch(spec, n=32)
    net.train()
    output = net(batch)
    loss = net.loss(batch, output)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    loss.backward()
    embedded = [m for m in net.modules() if type(m).__name__ == "NumericEmbedding"]
    assert embedded, f"{model} built no NumericEmbedding for numeric_embedding={kind!r}"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for m in embedded for p in m.parameters())
    net.eval()
    changed = {k: v.clone() for k, v in batch.items()}
    changed["x_num"][:, 0] += 3.0
    assert not torch.allclose(net.logits(net(batch)), net.logits(net(changed)))


def test_an_unknown_kind_is_named():
    with pytest.raises(ValueError, match="numeric_embedding='fourier', expected null or one of"):
        registry.get("afcc")(feature_spec=tiny_spec(), numeric_embedding="fourier")


# --- old runs ---------------------------------------------------------------------------------


def test_preprocessing_and_specs_saved_before_v2_still_load():
    frame = _messy_frame(300)
    pre = Preprocessor(categorical=["purpose"], numeric=["income", "months"]).fit(frame)
    saved = json.loads(json.dumps(pre.to_dict()))
    for field in saved["numeric"]:  # the first format had neither key
        del field["special_values"], field["code"]
    loaded = Preprocessor.from_dict(saved)
    for key, value in pre.transform(frame).items():
        np.testing.assert_array_equal(loaded.transform(frame)[key], value)
    spec = pre.feature_spec().to_dict()
    for field in spec["numeric"]:
        del field["special_values"], field["code"]
    old = FeatureSpec.from_dict(spec)
    assert old.numeric_names == pre.feature_spec().numeric_names
    # A model saved without the numeric_embedding hyperparameter builds as it did: no embedding.
    net = registry.get("afcc")(feature_spec=spec)
    assert not any(type(m).__name__ == "NumericEmbedding" for m in net.modules())
    # Nor the later layout switches: afcc's H as the paper forms it, resnet with BatchNorm.
    assert net.slot_norm is None and not any(isinstance(m, torch.nn.LayerNorm) for m in net.modules())
    resnet = registry.get("resnet")(feature_spec=spec)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in resnet.modules()) == 3  # 2 blocks, head


# --- scoring reproduces a run trained with the new preprocessing ----------------------------------


def test_predict_reproduces_the_runs_predictions_with_codes_embeddings_and_integer_categories(
    make_cfg, tmp_path
):
    from zoo.predict import predict_file
    from zoo.train import train

    source = tmp_path / "messy.csv"
    _messy_frame(800).to_csv(source, index=False)
    cfg = make_cfg(
        "model=dnn",
        "dataset=csv",
        f"dataset.path={source}",
        "dataset.target=default",
        "dataset.bad_value=1",
        "dataset.numeric_encoding=quantile_normal",
        "dataset.detect_special_values=true",
        "dataset.integer_categories=10",
        "dataset.numeric_bins=6",
        "model.numeric_embedding=piecewise_linear",
    )
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    saved = json.loads((run_dir / "preprocessing.json").read_text())
    months = next(f for f in saved["numeric"] if f["name"] == "months")
    assert months["special_values"] == [999.0]
    assert {f["max_bins"] for f in saved["numeric"] if f["quantiles"]} == {6}  # the cap reached every field
    assert "region" in saved["categorical"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert any("'months': 999" in w for w in metrics["warnings"])
    out = tmp_path / "scores.parquet"
    predict_file(run_dir, source, out, chunk_rows=300)
    scores = pd.read_parquet(out)
    saved_rows = pd.read_parquet(run_dir / "predictions.parquet")  # validation and test rows
    runs = saved_rows.merge(scores, on="row", suffixes=("_run", "_scored"))
    assert len(scores) == 800 and len(runs) == len(saved_rows) == 320
    np.testing.assert_array_equal(runs["prob_run"].to_numpy(), runs["prob_scored"].to_numpy())


def test_every_shipped_dataset_config_sets_the_preprocessing_defaults():
    """The values a hand-written config gets for a left-out key are the ones every shipped config
    writes out, so the two cannot drift apart."""
    from omegaconf import OmegaConf

    for path in sorted((config_dir() / "dataset").glob("*.yaml")):
        written = OmegaConf.load(path)
        assert {k: written[k] for k in DATASET_DEFAULTS} == DATASET_DEFAULTS, path.name


def test_a_dataset_config_without_the_preprocessing_keys_reads_as_the_shipped_ones():
    """Leaving out numeric_encoding, special values and bins gives the suite's choices
    (quantile-normal, codes found, 32 bins), not standard scaling of a column a sentinel ruined."""
    rng = np.random.default_rng(0)
    n = 600
    amount = rng.lognormal(8, 1.5, n)
    amount[rng.random(n) < 0.05] = 999999.0  # a sentinel in 5 % of rows
    frame = pd.DataFrame({"amount": amount, "c": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)})
    bare = {"name": "t", "target": "y", "bad_value": 1}
    built = {}
    for label, ds in (("bare", bare), ("written", {**bare, **DATASET_DEFAULTS})):
        dm = CreditDataModule(ds, frame=frame, seed=0)
        dm.build()
        built[label] = dm
    fields = {f.name: f for f in built["bare"].preprocessor.numeric_fields_}
    assert fields["amount"].encoding == "quantile_normal"
    assert fields["amount"].special_values == (999999.0,) and fields["amount"].max_bins == 32
    assert built["bare"].preprocessor.numeric_fields_ == built["written"].preprocessor.numeric_fields_
    for split in ("train", "val", "test"):
        bare_rows, written_rows = (built[k].arrays[split]["x_num"] for k in ("bare", "written"))
        np.testing.assert_array_equal(bare_rows, written_rows)
    # an explicit null still means "uncapped" for the bins, as docs/configuration.md says
    dm = CreditDataModule({**bare, "numeric_bins": None}, frame=frame, seed=0)
    dm.build()
    assert {f.name: f for f in dm.preprocessor.numeric_fields_}["amount"].max_bins is None


def test_a_runs_config_writes_out_the_preprocessing_it_got(make_cfg, tmp_path):
    """A dataset config that leaves the keys out is saved with the values the run used, so a
    resume, or a later change of the defaults, reads the run the same."""
    from omegaconf import OmegaConf

    from zoo.train import train

    source = tmp_path / "messy.csv"
    _messy_frame(300).to_csv(source, index=False)
    left_out = [f"~dataset.{key}" for key in DATASET_DEFAULTS]
    cfg = make_cfg("model=lr", "dataset=csv", f"dataset.path={source}", "dataset.target=default",
                   "dataset.bad_value=1", *left_out)  # fmt: skip
    assert not set(DATASET_DEFAULTS) & set(cfg.dataset)
    train(cfg, tmp_path / "run")
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml").dataset
    assert {key: saved[key] for key in DATASET_DEFAULTS} == DATASET_DEFAULTS
