"""`zoo monitor`: PSI and CSI against a hand computation, the run's reference against a file of its
own validation rows (PSI exactly 0), a shifted copy, missing and unseen bins, the exit codes."""

from __future__ import annotations

import json
import math
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zoo.cli import main as zoo_main
from zoo.data.encoding import fit_numeric
from zoo.data.preprocess import Preprocessor
from zoo.manifest import artifact_digests
from zoo.monitor import REFERENCE_FILE, monitor_file, psi, status
from zoo.monitor.psi import (
    ACTION_ABOVE,
    Bins,
    count_categories,
    count_raw_numeric,
    encoded_edges,
    numeric_bins,
    psi_terms,
    shares,
)
from zoo.monitor.reference import field_distributions
from zoo.outputs import PREDICTIONS_FILE
from zoo.train import train


def german_frame() -> pd.DataFrame:
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        return pd.read_csv(path)


def hand_psi(reference: list[float], new: list[float]) -> float:
    """PSI written out: shares, evidently's fill of empty bins, sum of (a - e) ln(a / e)."""

    def to_shares(counts: list[float]) -> list[float]:
        total = sum(counts)
        out = [c / total for c in counts]
        smallest = min(s for s in out if s > 0)
        fill = smallest / 1e6 if smallest <= 1e-4 else 1e-4
        return [s if s > 0 else fill for s in out]

    e, a = to_shares(reference), to_shares(new)
    return sum((ai - ei) * math.log(ai / ei) for ai, ei in zip(a, e, strict=True))


# --- the numbers --------------------------------------------------------------------------------


def test_psi_matches_a_hand_computation():
    assert psi([10, 20, 30, 40], [20, 20, 30, 30]) == pytest.approx(
        hand_psi([10, 20, 30, 40], [20, 20, 30, 30])
    )
    # (0.2 - 0.1) ln 2 + 0 + 0 + (0.3 - 0.4) ln(3/4)
    assert psi([10, 20, 30, 40], [20, 20, 30, 30]) == pytest.approx(0.1 * math.log(2) - 0.1 * math.log(0.75))
    assert psi([5, 5, 5], [5, 5, 5]) == 0.0


def test_an_empty_bin_takes_evidentlys_share():
    assert shares([5, 5, 0]).tolist() == [0.5, 0.5, 0.0001]
    assert psi([5, 5, 0], [3, 5, 2]) == pytest.approx(hand_psi([5, 5, 0], [3, 5, 2]))
    # a smallest non-zero share at or below 0.0001 gives a millionth of it instead
    assert shares([1, 20_000, 0])[2] == pytest.approx(1 / 20_001 / 1e6)
    # a bin empty on both sides adds nothing
    assert psi_terms([5, 5, 0], [5, 5, 0])[2] == 0.0


def test_the_bands():
    assert [status(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501)] == [
        "stable",
        "stable",
        "watch",
        "watch",
        "action",
    ]


def test_csi_of_a_numeric_field_counts_deciles_missing_and_special_codes():
    train_values = np.arange(1.0, 101.0)  # 1..100: deciles at 10.9, 20.8, ... (linear interpolation)
    train_values[:3] = 999.0  # a special code
    field = fit_numeric("x", train_values, "standard", (999.0,))
    bins = numeric_bins(field)
    expected_edges = np.quantile(np.asarray(field.quantiles), np.arange(1, 10) / 10)
    np.testing.assert_allclose(bins.edges, expected_edges)
    new = np.array([-5.0, bins.edges[0], bins.edges[0] + 0.01, 50.0, 1e6, np.nan, np.nan, 999.0])
    counts = count_raw_numeric(bins, field, new, encoded_edges(field, bins.edges))
    assert bins.labels[-2:] == ["(missing)", "= 999 (special)"]
    by_hand = np.zeros(len(bins), dtype=int)
    for value in new:
        if math.isnan(value):
            by_hand[len(bins.edges) + 1] += 1
        elif value == 999.0:
            by_hand[len(bins.edges) + 2] += 1
        else:  # right-closed: the first edge at or above the value
            by_hand[sum(value > e for e in bins.edges)] += 1
    assert counts.tolist() == by_hand.tolist()
    assert counts[0] == 2  # -5 and the edge itself fall in "<= e0"


def test_csi_of_a_categorical_field_counts_missing_and_unseen():
    frame = pd.DataFrame({"colour": ["red", "red", "blue", "green", None], "size": [1.0, 2, 3, 4, np.nan]})
    prep = Preprocessor(categorical=["colour"], numeric=["size"]).fit(frame)
    bins = Bins("colour", "categorical", categories=tuple(prep.vocabularies_["colour"].categories))
    index, unseen = prep.vocabularies_["colour"].transform(pd.Series(["red", "pink", None, None, "blue"]))
    counts = dict(zip(bins.labels, count_categories(bins, index).tolist(), strict=True))
    assert counts == {"(missing)": 2, "(unseen)": 1, "blue": 1, "green": 0, "red": 1} and unseen == 1


def test_the_reference_from_model_arrays_equals_counting_the_raw_values():
    """The reference is counted on encoded arrays at training time, new files on raw values: both
    paths put every row of the same frame in the same bin."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(7, 1, 500)),
            "age": rng.integers(18, 80, 500).astype(float),
            "purpose": rng.choice(["car", "tv", "house", None], 500),
        }
    )
    frame.loc[::17, "amount"] = np.nan
    frame.loc[::23, "age"] = -1.0
    for encoding in ("standard", "robust", "quantile_normal", "smooth_clip", "none"):
        prep = Preprocessor(
            categorical=["purpose"],
            numeric=["amount", "age"],
            numeric_encoding=encoding,
            special_values={"age": [-1]},
        ).fit(frame)
        from_arrays = {d.bins.name: d for d in field_distributions(prep, prep.transform(frame))}
        for numeric in prep.numeric_fields_:
            bins = from_arrays[numeric.name].bins
            raw = frame[numeric.name].to_numpy(dtype=float)
            by_raw = count_raw_numeric(bins, numeric, raw, encoded_edges(numeric, bins.edges))
            assert by_raw.tolist() == from_arrays[numeric.name].counts.tolist(), (encoding, numeric.name)
        assert from_arrays["amount"].counts[len(from_arrays["amount"].bins.edges) + 1] == 30  # missing
        assert from_arrays["age"].counts[-1] == 22  # the special code -1


# --- a run --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory, make_cfg) -> Path:
    run_dir = tmp_path_factory.mktemp("lr")
    train(make_cfg("model=lr"), run_dir)
    assert (run_dir / REFERENCE_FILE).is_file()
    return run_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory, run) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    frame = german_frame()
    val_rows = pd.read_parquet(run / PREDICTIONS_FILE).query("split == 'val'")["row"].to_numpy()
    shifted = frame.assign(
        credit_amount=frame["credit_amount"] * 1.5, age_in_years=frame["age_in_years"] + 10
    )
    gaps = frame.head(100).copy()
    gaps.loc[:9, "credit_amount"] = np.nan
    gaps.loc[:4, "purpose"] = "spaceship"
    out = {}
    for name, data in {
        "same": frame,
        "val": frame.iloc[np.sort(val_rows)],
        "shifted": shifted,
        "gaps": gaps.drop(columns=["creditability"]),
    }.items():
        out[name] = folder / f"{name}.csv"
        data.to_csv(out[name], index=False)
    return out


def test_a_file_of_the_runs_own_validation_rows_has_psi_zero(run, files):
    found = monitor_file(run, files["val"], chunk_rows=64)
    assert found.rows == found.reference.rows == 200
    assert found.score.psi == 0.0
    assert found.fields is not None and all(s.psi == 0.0 for s in found.fields)
    assert len(found.score.labels) == 10 and found.score.reference.tolist() == [20] * 10


def test_a_shifted_copy_moves_the_shifted_fields_and_not_the_others(run, files):
    same = monitor_file(run, files["same"])
    shifted = monitor_file(run, files["shifted"], chunk_rows=300)
    assert same.fields is not None and shifted.fields is not None
    csi_same = {s.name: s.psi for s in same.fields}
    csi_shifted = {s.name: s.psi for s in shifted.fields}
    for name in ("credit_amount", "age_in_years"):
        assert csi_shifted[name] > ACTION_ABOVE and csi_shifted[name] > csi_same[name]
        assert csi_same[name] < 0.1
    assert csi_shifted["purpose"] == pytest.approx(csi_same["purpose"])
    assert shifted.score.psi > same.score.psi
    assert shifted.performance is not None and same.performance is not None
    assert same.performance.rows == 1000 and set(same.performance.new) >= {"auc", "ks", "brier"}


def test_missing_and_unseen_rows_land_in_their_own_bins(run, files):
    found = monitor_file(run, files["gaps"])
    fields = {s.name: s for s in found.fields or []}
    amount = dict(zip(fields["credit_amount"].labels, fields["credit_amount"].new.tolist(), strict=True))
    purpose = dict(zip(fields["purpose"].labels, fields["purpose"].new.tolist(), strict=True))
    assert amount["(missing)"] == 10 and purpose["(unseen)"] == 5 and found.unseen["purpose"] == 5
    assert found.performance is None  # no target column


def test_a_run_without_the_reference_file_gets_the_score_psi_only(run, files, tmp_path):
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    (old / REFERENCE_FILE).unlink()
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["artifacts"] = artifact_digests(old)
    (old / "manifest.json").write_text(json.dumps(manifest))
    with_file, without = monitor_file(run, files["shifted"]), monitor_file(old, files["shifted"])
    assert without.fields is None and without.reference.source == PREDICTIONS_FILE
    assert without.score.reference.tolist() == with_file.score.reference.tolist()
    assert without.score.psi == with_file.score.psi


# --- the command --------------------------------------------------------------------------------


def test_the_command_writes_the_report_and_fails_above_the_limit(run, files, tmp_path, capsys):
    out = tmp_path / "report"
    assert (
        zoo_main(["monitor", str(run), str(files["shifted"]), "--out", str(out), "--fail-above", "0.25"]) == 3
    )
    captured = capsys.readouterr()
    assert "credit_amount" in captured.err and "age_in_years" in captured.err
    assert {p.name for p in out.iterdir()} >= {
        "monitor.md",
        "monitor.json",
        "monitor.html",
        "monitor_score.png",
    }
    report = json.loads((out / "monitor.json").read_text())
    assert set(report["over"]) >= {"credit_amount", "age_in_years"}
    assert "data:image/png;base64," in (out / "monitor.html").read_text()
    assert "| age_in_years | numeric |" in (out / "monitor.md").read_text()
    assert zoo_main(["monitor", str(run), str(files["same"]), "--out", str(out), "--fail-above", "100"]) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{run}", "{folder}/nothing.csv"], "does not exist"),
        (["{folder}/no_run", "{same}"], "does not exist"),
        (["{folder}", "{same}"], "not a finished credit-zoo run directory"),
        (["{run}", "{same}", "--fail-above", "high"], "--fail-above='high', expected a number"),
        (["{run}", "{same}", "--fail-above", "nan"], "expected a finite number"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(run, files, tmp_path, capsys, args, message):
    values = {"run": str(run), "folder": str(tmp_path), "same": str(files["same"])}
    argv = ["monitor", *(a.format(**values) for a in args), "--out", str(tmp_path / "out")]
    assert zoo_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


def test_the_docs_state_the_bands_and_exit_codes_the_code_uses():
    from zoo.monitor import EXIT_UNSTABLE
    from zoo.monitor.psi import ACTION_ABOVE, EMPTY_SHARE, STABLE_BELOW

    text = (Path(__file__).resolve().parents[1] / "docs" / "monitoring.md").read_text()
    assert f"< {STABLE_BELOW} stable, {STABLE_BELOW}–{ACTION_ABOVE} watch, > {ACTION_ABOVE} action" in text
    assert f"exits {EXIT_UNSTABLE}" in text and f"{EMPTY_SHARE}" in text
    assert "monitoring.md" in (Path(__file__).resolve().parents[1] / "mkdocs.yml").read_text()
