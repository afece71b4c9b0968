"""Protected attributes and fair-lending metrics (issue 24, sections 1 and 2): exclusion unless
allowed, the guard for undeclared protected-like columns, group metrics against fairlearn's
MetricFrame and a hand computation, too-small groups, bad settings, and a real run on german with
its metrics.json section, model card, leaderboard columns, --min-air and predict --groups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import roc_auc_score

from zoo.data.datamodule import CreditDataModule
from zoo.errors import ZooError
from zoo.fairness.groups import bin_labels, group_labels
from zoo.fairness.metrics import group_metrics
from zoo.fairness.settings import fairness_settings, protected_columns
from zoo.leaderboard import fairness as board_fairness
from zoo.leaderboard.collect import Run
from zoo.train import train

GERMAN = {"name": "german", "source": "bundled", "file": "german_credit.csv", "target": "creditability"}
GERMAN_PROTECTED = ["personal_status_and_sex", "age_in_years"]


def _german(**keys) -> CreditDataModule:
    dm = CreditDataModule({**GERMAN, "bad_value": "bad", **keys})
    dm.build()
    return dm


# --- group metrics


def _random(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    groups = pd.Series(rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]))
    y = (rng.random(n) < 0.3 + 0.1 * (groups == "b")).astype(int)
    prob = np.clip(0.25 + 0.3 * y + 0.05 * (groups == "c") + rng.normal(0, 0.15, n), 0, 1)
    return y, prob, groups


def test_group_metrics_match_fairlearn_metricframe_exactly_on_random_data():
    y, prob, groups = _random()
    threshold = 0.45
    report = group_metrics(y, prob, groups, threshold=threshold, min_group=30)
    approved = (prob <= threshold).astype(int)  # approve = predicted good
    good = 1 - y
    frame = MetricFrame(
        metrics={"approval_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=good,
        y_pred=approved,
        sensitive_features=groups,
    ).by_group
    auc = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=prob, sensitive_features=groups).by_group
    rows = {r["group"]: r for r in report["groups"]}
    assert set(rows) == {"a", "b", "c"}
    for group, row in rows.items():
        for key in ("approval_rate", "tpr", "fpr"):
            assert row[key] == frame.loc[group, key], (group, key)
        assert row["auc"] == auc.loc[group]
        assert row["bad_rate"] == y[groups == group].mean()
        assert row["mean_pd"] == prob[groups == group].mean()
    # the attribute's summaries are fairlearn's own ratio and difference functions
    ratio = demographic_parity_ratio(good, approved, sensitive_features=groups)
    assert report["worst_air"] == pytest.approx(ratio, abs=1e-15)
    gap = equalized_odds_difference(good, approved, sensitive_features=groups)
    assert report["equalized_odds_gap"] == pytest.approx(gap, abs=1e-15)


def test_air_and_smd_by_hand():
    """Group a: 4 of 5 approved, b: 2 of 5; AIR b = 0.4 / 0.8 = 0.5, flagged; SMD of b against a
    with the pooled sample standard deviation."""
    prob = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.2, 0.4, 0.6, 0.7, 0.8])
    groups = pd.Series(["a"] * 5 + ["b"] * 5)
    report = group_metrics(None, prob, groups, threshold=0.5, min_group=5)
    a, b = report["groups"]
    assert report["reference_group"] == "a"
    assert (a["approval_rate"], b["approval_rate"]) == (0.8, 0.4)
    assert (a["air"], b["air"]) == (1.0, 0.5)
    assert (a["air_flag"], b["air_flag"]) == (False, True) and report["air_flagged"]
    mean_a, mean_b = 0.38, 0.54
    var_a = sum((v - mean_a) ** 2 for v in prob[:5]) / 4
    var_b = sum((v - mean_b) ** 2 for v in prob[5:]) / 4
    assert b["smd"] == pytest.approx((mean_b - mean_a) / np.sqrt((var_a + var_b) / 2), rel=1e-12)
    assert "tpr" not in b and "auc" not in b  # no labels: only what needs none


def test_a_group_below_min_group_is_too_small_not_a_number():
    y, prob, groups = _random(400)
    groups = groups.where(np.arange(len(groups)) >= 20, "tiny")
    report = group_metrics(y, prob, groups, threshold=0.5, min_group=30)
    tiny = next(r for r in report["groups"] if r["group"] == "tiny")
    assert tiny == {"group": "tiny", "count": 20, "too_small": True}
    assert report["too_small"] == ["tiny"]
    sized = [r for r in report["groups"] if r["group"] != "tiny"]
    assert report["worst_air"] == min(r["air"] for r in sized)


def test_numeric_attributes_are_binned_left_closed_with_missing_a_group():
    assert bin_labels([25, 40, 60]) == ["<25", "25-40", "40-60", "60+"]
    ages = pd.Series([19, 25, 39.5, 40, 60, 75, None])
    labels = group_labels(ages, [25, 40, 60]).tolist()
    assert labels == ["<25", "25-40", "25-40", "40-60", "60+", "60+", "missing"]


# --- protected columns in the DataModule


def test_protected_columns_are_excluded_and_kept_aside_row_aligned():
    dm = _german(
        protected=GERMAN_PROTECTED, crosses=[["personal_status_and_sex", "job"], ["purpose", "housing"]]
    )
    names = {f.name for f in (*dm.feature_spec.categorical, *dm.feature_spec.numeric)}
    assert not names & set(GERMAN_PROTECTED)
    assert [c.name for c in dm.feature_spec.crosses] == ["purpose*housing"]  # the cross of one went too
    assert dm.dropped_for_protected == ["personal_status_and_sex*job"]
    assert "personal_status_and_sex" in dm.schema()["ignored"]
    frame = pd.read_csv(Path(__file__).parents[1] / "zoo" / "datasets" / "german_credit.csv")
    for split in ("train", "val", "test"):
        kept = dm.protected[split]
        assert list(kept.columns) == GERMAN_PROTECTED and len(kept) == len(dm.arrays[split]["y"])
        rows = dm.arrays[split]["row"]
        assert (kept["age_in_years"].to_numpy() == frame["age_in_years"].to_numpy()[rows]).all()
    assert not any("allow_protected" in w for w in dm.warnings)


def test_a_protected_column_is_a_feature_only_when_allowed_and_then_a_warning():
    dm = _german(protected=GERMAN_PROTECTED, allow_protected=["age_in_years"])
    names = {f.name for f in (*dm.feature_spec.categorical, *dm.feature_spec.numeric)}
    assert "age_in_years" in names and "personal_status_and_sex" not in names
    assert any("allow_protected" in w and "age_in_years" in w for w in dm.warnings)
    assert list(dm.protected["test"].columns) == GERMAN_PROTECTED  # measured all the same


def test_the_guard_flags_germans_protected_like_columns_unless_declared():
    flagged = [w for w in _german().warnings if "protected characteristic" in w]
    assert any("'personal_status_and_sex'" in w and "sex or gender" in w for w in flagged)
    assert any("'age_in_years'" in w and "flagged, not refused" in w for w in flagged)
    assert any("'foreign_worker'" in w and "national origin" in w for w in flagged)
    declared = [w for w in _german(protected=GERMAN_PROTECTED).warnings if "protected characteristic" in w]
    assert len(declared) == 1 and "'foreign_worker'" in declared[0]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"protected": ["race"]}, r"dataset.protected names 'race', which is not a column of the data"),
        ({"protected": ["creditability"]}, r"dataset.protected names the target column"),
        ({"protected": [], "allow_protected": ["age_in_years"]}, r"not in dataset.protected"),
        ({"protected": "age_in_years,job"}, r"not a column of the data"),
    ],
)
def test_bad_protected_settings_are_one_line(keys, message):
    with pytest.raises(ZooError, match=message) as info:
        _german(**keys)
    assert "\n" not in str(info.value)


def test_bad_fairness_settings_are_one_line():
    with pytest.raises(ZooError, match=r"fairness.min_group=1, expected an integer >= 2"):
        fairness_settings({"fairness": {"min_group": 1}})
    with pytest.raises(ZooError, match=r"fairness.bins.age=\[40, 25\], expected strictly increasing"):
        fairness_settings({"fairness": {"bins": {"age": [40, 25]}}})
    with pytest.raises(ZooError, match=r"fairness.minimum is not a setting"):
        fairness_settings({"fairness": {"minimum": 3}})
    with pytest.raises(ZooError, match=r"names 'sex' twice"):
        protected_columns({"protected": ["sex", "sex"]})


def test_zoo_train_refuses_an_unknown_protected_column_in_one_line(zoo_train_here, tmp_path):
    done = zoo_train_here(
        "dataset=german",
        "dataset.protected=[race]",
        "model=lr",
        "trainer=fast",
        "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "dataset.protected names 'race'" in errors[0]
    done = zoo_train_here(
        "dataset=german",
        "dataset.allow_protected=[age_in_years]",
        f"hydra.run.dir={tmp_path / 'run2'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "not in dataset.protected" in done.stderr
    assert not (tmp_path / "run2" / "metrics.json").exists()


# --- a real run on german


@pytest.fixture(scope="module")
def german_run(tmp_path_factory, make_cfg) -> Path:
    """One lr run on german with its protected columns declared (fast trainer)."""
    run_dir = tmp_path_factory.mktemp("fair") / "sweep" / "0_lr"
    protected = "dataset.protected=[personal_status_and_sex,age_in_years]"
    train(make_cfg("dataset=german", "model=lr", protected), run_dir)
    return run_dir


def test_a_german_run_writes_the_fairness_section_and_the_card(german_run):
    metrics = json.loads((german_run / "metrics.json").read_text())
    section = metrics["fairness"]
    assert section["excluded"] == GERMAN_PROTECTED and section["used_as_features"] == []
    assert section["split"] == "test" and section["threshold"] == metrics["threshold"]
    age = section["attributes"]["age_in_years"]
    assert age["bins"] == [25.0, 40.0, 60.0]
    assert [g["group"] for g in age["groups"]] == ["<25", "25-40", "40-60", "60+"]
    assert sum(g["count"] for g in age["groups"]) == metrics["rows"]["test"]
    assert any(g.get("too_small") for g in age["groups"])  # 60+: a few test rows of 200
    status = section["attributes"]["personal_status_and_sex"]
    assert status["worst_air"] is not None and 0 < status["worst_air"] <= 1
    assert len(status["proxies"]) == 5 and all(
        p["feature"] not in GERMAN_PROTECTED for p in status["proxies"]
    )
    card = (german_run / "model_card.md").read_text()
    fairness = card.split("## Fairness", 1)[1]
    assert "**age_in_years**, binned at 25, 40, 60" in fairness and "too small" in fairness
    assert "Proxies (training rows" in fairness
    assert "'foreign_worker' looks like a protected characteristic" in card  # the undeclared one


def test_the_leaderboard_shows_fairness_columns(german_run, tmp_path):
    from zoo.leaderboard.cli import main

    assert main([str(german_run.parent), "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "worst AIR personal_status_and_sex" in markdown and "EO gap age_in_years" in markdown
    csv = pd.read_csv(tmp_path / "leaderboard.csv")
    metrics = json.loads((german_run / "metrics.json").read_text())
    expected = metrics["fairness"]["attributes"]["age_in_years"]["worst_air"]
    assert csv.loc[0, "air_age_in_years"] == pytest.approx(expected)
    assert "worst AIR age_in_years" in (tmp_path / "leaderboard.html").read_text()
    assert main([str(german_run.parent), "--out", str(tmp_path), "--min-air", "1.5"]) == 2


def _run(model: str, airs: dict[str, float | None], auc: float) -> Run:
    attributes = {name: {"worst_air": air, "equalized_odds_gap": 0.1} for name, air in airs.items()}
    data = {"model": model, "dataset": "german", "test": {"auc": auc}, "fairness": {"attributes": attributes}}
    return Run(Path(f"/runs/{model}/metrics.json"), data)


def test_min_air_ranks_the_best_auc_among_models_meeting_it_on_every_attribute():
    runs = [
        _run("best_but_unfair", {"sex": 0.9, "age": 0.7}, 0.80),
        _run("second", {"sex": 0.85, "age": 0.82}, 0.78),
        _run("third", {"sex": 0.95, "age": 0.9}, 0.75),
        _run("unmeasured", {}, 0.79),
    ]
    runs[3].data.pop("fairness")
    frame = pd.DataFrame(
        {"dataset": "german", "model": [r.data["model"] for r in runs], "variant": ""},
    )
    summary = pd.DataFrame(
        {"dataset": "german", "model": frame["model"], "variant": "", "n_seeds": 1, "rank": [1, 3, 4, 2]}
    )
    attributes = board_fairness.add_fairness_columns(summary, frame, runs)
    assert attributes == ["sex", "age"]
    ranked = board_fairness.rank_within(summary, runs, attributes, 0.8)
    assert ranked["model"].tolist() == ["second", "third", "best_but_unfair", "unmeasured"]
    assert ranked[board_fairness.RANK_COLUMN].tolist()[:2] == [1, 2]
    assert ranked[board_fairness.RANK_COLUMN].isna().tolist()[2:] == [True, True]
    assert "best: german: second" in board_fairness.constraint_text(ranked, 0.8)


def test_predict_groups_scores_a_file_by_a_column(german_run, tmp_path, capsys):
    from zoo.predict import main

    frame = pd.read_csv(Path(__file__).parents[1] / "zoo" / "datasets" / "german_credit.csv").sample(
        300, random_state=0
    )
    file = tmp_path / "new.csv"
    frame.drop(columns=["creditability"]).to_csv(file, index=False)  # no labels
    out = tmp_path / "scores.parquet"
    assert main([str(german_run), str(file), "--out", str(out), "--groups", "personal_status_and_sex"]) == 0
    section = json.loads((tmp_path / "scores.groups.json").read_text())
    status = section["attributes"]["personal_status_and_sex"]
    prob = pd.read_parquet(out)["prob"].to_numpy(np.float64)
    single = (frame["personal_status_and_sex"] == "male : single").to_numpy()
    row = next(g for g in status["groups"] if g["group"] == "male : single")
    assert row["approval_rate"] == pytest.approx(np.mean(prob[single] <= section["threshold"]))
    assert "tpr" not in row and "labels: none" in capsys.readouterr().out
    # a group of one row, and an unknown column, are one line each and exit 2
    frame.loc[frame.index[0], "personal_status_and_sex"] = "unique"
    frame.to_csv(file, index=False)
    capsys.readouterr()
    assert main([str(german_run), str(file), "--out", str(out), "--groups", "personal_status_and_sex"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "group 'unique' has one row" in err[0]
    assert main([str(german_run), str(file), "--out", str(tmp_path / "x.csv"), "--groups", "race"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--groups 'race' is not a column" in err[0]
    assert not (tmp_path / "x.csv").exists()  # refused before scoring
