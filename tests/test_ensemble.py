"""Ensembles of a multirun's runs (zoo/ensemble/): fitted on validation rows only, refused on
runs that do not verify or do not share rows, scored by `zoo predict` through their members,
ranked by the leaderboard, and built by the Hydra callback at the end of a multirun."""

from __future__ import annotations

import json
import shutil
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from zoo.cli import main as zoo_main
from zoo.ensemble import build as build_module
from zoo.ensemble.build import EnsembleSettings, build_ensembles
from zoo.ensemble.select import bagged_greedy, bootstrap_rows, greedy_selection, replicate_seeds
from zoo.errors import ZooError
from zoo.leaderboard import collect_runs
from zoo.manifest import verify_run, write_manifest
from zoo.metrics import compute_metrics
from zoo.monitor import monitor_file
from zoo.outputs import write_json, write_parquet, write_text
from zoo.predict import predict_file
from zoo.run_outputs import predictions_frame
from zoo.run_state import LOCK_FILE
from zoo.train import train

# --- fake sealed runs: predictions, metrics, config and a manifest, no model ------------------


def toy_predictions(seed: int = 0, n_val: int = 300, n_test: int = 300) -> dict[str, dict[str, np.ndarray]]:
    """Labels that depend on two signals, and three members that see one, the other, or noise:
    an ensemble of the first two ranks better than either."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, np.ndarray]] = {}
    start = 0
    for split, n in (("val", n_val), ("test", n_test)):
        a, b = rng.normal(size=n), rng.normal(size=n)
        y = (a + b + rng.normal(scale=0.7, size=n) > 0.4).astype(np.int8)
        out[split] = {
            "row": np.arange(start, start + n),
            "y": y,
            "a": 1 / (1 + np.exp(-(1.5 * a - 0.5))),
            "b": 1 / (1 + np.exp(-(1.5 * b - 0.5))),
            "noise": rng.uniform(0.05, 0.95, size=n),
        }
        start += n
    return out


def fake_run(
    root: Path,
    name: str,
    model: str,
    toy: dict[str, dict[str, np.ndarray]],
    *,
    fold: int = 0,
    data_sha: str = "0" * 64,
    drop_val_rows: int = 0,
) -> Path:
    """A sealed run directory holding what an ensemble reads: predictions.parquet, metrics.json,
    config.yaml, and the manifest over them."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    predictions = {}
    for split, part in toy.items():
        keep = slice(drop_val_rows, None) if split == "val" else slice(None)
        predictions[split] = {
            "row": part["row"][keep],
            "y": part["y"][keep],
            "prob": part[model][keep].astype(np.float32),
        }
    write_parquet(run_dir / "predictions.parquet", predictions_frame(predictions, {}))
    metrics = {"model": model, "dataset": "toy", "seed": 0, "fold": fold, "split_seed": 0, "threshold": 0.5}
    for split, pred in predictions.items():
        metrics[split] = compute_metrics(pred["prob"], pred["y"], threshold=0.5)
    write_json(run_dir / "metrics.json", metrics)
    config = {"model": {"name": model}, "dataset": {"name": "toy"}, "threshold": 0.5, "seed": 0}
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(config)))
    write_manifest(run_dir, data={"source": "frame", "sha256": data_sha}, versions={})
    return run_dir


@pytest.fixture
def toy_sweep(tmp_path) -> Path:
    toy = toy_predictions()
    sweep = tmp_path / "sweep"
    for i, model in enumerate(("a", "b", "noise")):
        fake_run(sweep, f"{i}_{model}_toy_seed0_fold0", model, toy)
    return sweep


def without_digests(record: dict) -> dict:
    """ensemble.json without the members' manifest digests (which change when a member is re-sealed)."""
    members = [{k: v for k, v in m.items() if k != "manifest_sha256"} for m in record["members"]]
    return {**record, "members": members}


# --- greedy selection --------------------------------------------------------------------------


def reference_greedy(probs: np.ndarray, y: np.ndarray, size: int, metric: str) -> list[int]:
    """Caruana et al. (2004) as a plain loop: add, `size` times, the member whose addition gives
    the best validation metric of the mean; ties to the first member."""
    chosen: list[int] = []
    for _ in range(size):
        best, best_score = -1, None
        for j in range(probs.shape[1]):
            mean = np.array([probs[i, chosen + [j]].sum() for i in range(len(y))]) / (len(chosen) + 1)
            if metric == "logloss":
                p = np.clip(mean, 1e-7, 1 - 1e-7)
                score = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
                better = best_score is None or score < best_score
            else:  # AUC by counting pairs, ties a half
                pos, neg = mean[y == 1], mean[y == 0]
                wins = sum(float((p > neg).sum()) + 0.5 * float((p == neg).sum()) for p in pos)
                score = wins / (len(pos) * len(neg))
                better = best_score is None or score > best_score
            if better:
                best, best_score = j, score
        chosen.append(best)
    return [chosen.count(j) for j in range(probs.shape[1])]


@pytest.mark.parametrize("metric", ["logloss", "auc"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_selection_matches_a_plain_reference_loop(metric, seed):
    rng = np.random.default_rng(seed)
    n, m = 120, 6
    y = (rng.uniform(size=n) < 0.3).astype(np.float64)
    # members of varying quality: some signal plus noise, rounded so that AUC ties occur
    probs = np.clip(
        0.3 + rng.uniform(0.0, 0.4, size=m) * (y[:, None] - 0.3) + rng.normal(0, 0.2, (n, m)), 0.01, 0.99
    )
    probs = np.round(probs, 2)
    counts = greedy_selection(probs, y, size=12, metric=metric)
    assert counts.tolist() == reference_greedy(probs, y, 12, metric)
    assert counts.sum() == 12 and (counts > 0).sum() >= 2  # with replacement, more than one member


@pytest.mark.parametrize("seed", [0, 3])
def test_bagged_greedy_is_the_mean_of_the_reference_loop_over_stratified_bootstrap_replicates(seed):
    rng = np.random.default_rng(seed)
    n, m = 60, 4
    y = (rng.uniform(size=n) < 0.3).astype(np.float64)
    probs = np.clip(0.3 + 0.3 * (y[:, None] - 0.3) + rng.normal(0, 0.2, (n, m)), 0.01, 0.99)
    weights = bagged_greedy(probs, y, size=6, bags=4, seed=seed)
    expected = np.zeros(m)
    for seeds in replicate_seeds(seed, 4):
        rows = bootstrap_rows(y, np.random.default_rng(seeds))
        assert np.bincount(y[rows].astype(int)).tolist() == np.bincount(y.astype(int)).tolist()
        assert len(np.unique(rows)) < n  # drawn with replacement
        expected += np.array(reference_greedy(probs[rows], y[rows], 6, "logloss")) / 6
    np.testing.assert_allclose(weights, expected / 4, rtol=0, atol=1e-12)
    assert weights.sum() == pytest.approx(1.0)
    one = bagged_greedy(probs, y, size=6, bags=1, seed=seed)  # bags=1: plain greedy on every row
    np.testing.assert_array_equal(one, np.array(reference_greedy(probs, y, 6, "logloss")) / 6)


def test_bagged_greedy_gives_the_same_weights_on_one_thread_or_several(monkeypatch):
    from zoo.data.threads import PARALLEL_ROWS, THREADS_ENV

    rng = np.random.default_rng(5)
    n, m = PARALLEL_ROWS, 4  # enough rows for the replicates to go to threads
    y = (rng.uniform(size=n) < 0.2).astype(np.float64)
    probs = np.clip(0.2 + 0.2 * (y[:, None] - 0.2) + rng.normal(0, 0.2, (n, m)), 0.01, 0.99)
    weights = {}
    for threads in ("1", "2"):
        monkeypatch.setenv(THREADS_ENV, threads)
        weights[threads] = bagged_greedy(probs, y, size=5, bags=4, seed=1)
    np.testing.assert_array_equal(weights["1"], weights["2"])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--bags", "0", "ensemble bags 0, expected a positive integer"),
        ("--c", "nan", "ensemble c nan, expected a positive finite number (the stack's C)"),
        ("--c", "-1", "ensemble c -1.0, expected a positive finite number (the stack's C)"),
    ],
)
def test_a_bad_bags_or_stack_c_is_one_line(toy_sweep, capsys, option, value, message):
    assert zoo_main(["ensemble", str(toy_sweep), option, value]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


# --- fitting on validation rows only -----------------------------------------------------------


@pytest.mark.parametrize("method", ["greedy", "stack"])
def test_poisoning_the_members_test_labels_changes_nothing_in_ensemble_json(tmp_path, toy_sweep, method):
    settings = EnsembleSettings(method=method, calibration="platt")
    (clean,) = build_ensembles(toy_sweep, settings, tmp_path / "clean")
    for run_dir in sorted(p for p in toy_sweep.iterdir() if p.is_dir()):
        frame = pd.read_parquet(run_dir / "predictions.parquet")
        test = frame["split"] == "test"
        frame.loc[test, "label"] = (1 - frame.loc[test, "label"]).astype(np.int8)  # every test label wrong
        frame.loc[test, "prob"] = np.float32(0.5)
        write_parquet(run_dir / "predictions.parquet", frame)
        write_manifest(run_dir, data={"source": "frame", "sha256": "0" * 64}, versions={})  # sealed again
    (poisoned,) = build_ensembles(toy_sweep, settings, tmp_path / "poisoned")
    before = json.loads((clean.run_dir / "ensemble.json").read_text())
    after = json.loads((poisoned.run_dir / "ensemble.json").read_text())
    assert before["members"][0]["manifest_sha256"] != after["members"][0]["manifest_sha256"]
    assert without_digests(after) == without_digests(before)
    for name in ("calibration.json",):  # the calibration, fitted on validation rows, is the same
        assert (clean.run_dir / name).read_text() == (poisoned.run_dir / name).read_text()
    val = [
        pd.read_parquet(r.run_dir / "predictions.parquet").query("split == 'val'") for r in (clean, poisoned)
    ]
    pd.testing.assert_frame_equal(val[0], val[1])
    assert (
        clean.result["val"] == poisoned.result["val"]
        and clean.result["threshold"] == poisoned.result["threshold"]
    )


def test_an_ensemble_is_a_sealed_run_the_leaderboard_ranks_beside_its_members(toy_sweep):
    from zoo.leaderboard import write_leaderboard

    (built,) = build_ensembles(toy_sweep, EnsembleSettings(method="greedy", size=20))
    assert built.run_dir == toy_sweep / "ensembles" / "toy_seed0_fold0"
    verify_run(built.run_dir)
    assert json.loads((built.run_dir / "state.json").read_text())["state"] == "finished"
    record = json.loads((built.run_dir / "ensemble.json").read_text())
    weights = {m["model"]: m["weight"] for m in record["members"]}
    assert set(weights) == {"a", "b"} and sum(weights.values()) == pytest.approx(1.0)  # noise is never chosen
    metrics = json.loads((built.run_dir / "metrics.json").read_text())
    singles = {m.model: m.metrics for m in built.group.members}
    assert metrics["val"]["auc"] > max(s["val"]["auc"] for s in singles.values())  # would win on validation
    assert metrics["test"]["auc"] > max(s["test"]["auc"] for s in singles.values())
    board = write_leaderboard(toy_sweep, ["auc", "brier"], "test", toy_sweep / "board")
    assert "ensemble_greedy" in set(board.summary["model"])
    comparisons = board.comparisons
    assert comparisons.references["toy"] in ("a", "b")  # the best single model, never the ensemble
    row = comparisons.combined.set_index("model").loc["ensemble_greedy"]
    assert row["diff"] > 0


def test_a_tampered_or_unsealed_run_is_never_used_and_said_in_one_line(toy_sweep, capsys):
    tampered = toy_sweep / "1_b_toy_seed0_fold0"
    with open(tampered / "predictions.parquet", "ab") as handle:
        handle.write(b"x")
    assert zoo_main(["ensemble", str(toy_sweep)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: not used: {tampered}: manifest does not verify: predictions.parquet changed"]
    record = json.loads((toy_sweep / "ensembles" / "toy_seed0_fold0" / "ensemble.json").read_text())
    assert "1_b_toy_seed0_fold0" not in record["candidates"]


# --- groups that do not match ------------------------------------------------------------------


@pytest.mark.parametrize("case", ["other fold rows", "other data"])
def test_runs_of_one_group_on_other_rows_or_data_are_one_line_and_exit_2(tmp_path, capsys, case):
    toy = toy_predictions()
    sweep = tmp_path / "sweep"
    fake_run(sweep, "0_a_toy_seed0_fold0", "a", toy)
    if case == "other fold rows":  # fold 0 of another number of folds: other validation rows
        fake_run(sweep, "1_b_toy_seed0_fold0", "b", toy, drop_val_rows=30)
        expected = "have different validation rows"
    else:
        fake_run(sweep, "1_b_toy_seed0_fold0", "b", toy, data_sha="f" * 64)
        expected = "were trained on different data"
    assert zoo_main(["ensemble", str(sweep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: group toy_seed0_fold0: runs ") and expected in err[0]
    assert not (sweep / "ensembles").exists()


def test_different_folds_make_different_ensembles(tmp_path):
    sweep = tmp_path / "sweep"
    for fold in (0, 1):
        toy = toy_predictions(seed=fold)
        for model in ("a", "b"):
            fake_run(sweep, f"{model}_fold{fold}", model, toy, fold=fold)
    built = build_ensembles(sweep, EnsembleSettings(size=5))
    assert sorted(b.run_dir.name for b in built) == ["toy_seed0_fold0", "toy_seed0_fold1"]
    for b in built:
        assert {m.metrics["fold"] for m in b.group.members} == {b.result["fold"]}
    frame = collect_runs(sweep)  # one leaderboard row over both folds, not a variant per fold
    assert frame.loc[frame["model"] == "ensemble_greedy", "variant"].tolist() == ["", ""]


def test_bad_settings_are_one_line(toy_sweep, capsys):
    assert zoo_main(["ensemble", str(toy_sweep), "--size", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: ensemble size 0, expected a positive integer"
    assert zoo_main(["ensemble", str(toy_sweep), "--models", "a,zzz"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sealed run of 'zzz'" in err[0]


# --- real runs: `zoo predict` through the members ----------------------------------------------


def german_frame() -> pd.DataFrame:
    with resources.as_file(resources.files("zoo.datasets").joinpath("german_credit.csv")) as path:
        return pd.read_csv(path)


@pytest.fixture(scope="module")
def trained_sweep(tmp_path_factory, make_cfg) -> Path:
    """Two real runs (lr, dnn) on fold 0 of 5 of german, as a multirun lays them out (read-only)."""
    sweep = tmp_path_factory.mktemp("trained") / "sweep"
    for i, model in enumerate(("lr", "dnn")):
        cfg = make_cfg(f"model={model}", "data.n_folds=5", "data.fold=0")
        train(cfg, sweep / f"{i}_{model}_german_seed0_fold0")
    return sweep


@pytest.mark.parametrize(
    "settings",
    [EnsembleSettings(method="greedy", size=10, calibration="isotonic"), EnsembleSettings(method="stack")],
    ids=["greedy+isotonic", "stack"],
)
def test_zoo_predict_on_an_ensemble_reproduces_its_predictions(trained_sweep, tmp_path, settings):
    (built,) = build_ensembles(trained_sweep, settings, tmp_path / "ensembles")
    source = tmp_path / "german.csv"
    german_frame().to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    summary = predict_file(built.run_dir, source, out, chunk_rows=300, reasons=2)
    scores = pd.read_parquet(out)
    assert summary.rows == 1000 and {"reason_1", "reason_2", "reason_method"} <= set(scores.columns)
    saved = pd.read_parquet(built.run_dir / "predictions.parquet")
    merged = saved.merge(scores, on="row", suffixes=("_run", "_scored"))
    assert len(merged) == len(saved) == 360
    # the stack's validation rows are out of fold (cross-fitted): its test rows are what it scores
    splits = ["val", "test"] if settings.method == "greedy" else ["test"]
    rows = merged[merged["split"].astype(str).isin(splits)]
    np.testing.assert_array_equal(rows["prob_run"].to_numpy(), rows["prob_scored"].to_numpy())
    threshold = json.loads((built.run_dir / "metrics.json").read_text())["threshold"]
    np.testing.assert_array_equal(scores["decision"], (scores["prob"] > threshold).astype(np.int8))
    member = OmegaConf.load(built.group.members[0].path / "config.yaml")
    assert OmegaConf.load(built.run_dir / "config.yaml").score == member.score  # points on the members' scale


def test_a_member_changed_or_missing_after_the_ensemble_was_built_is_named_in_one_line(
    trained_sweep, tmp_path, capsys
):
    sweep = tmp_path / "sweep"
    shutil.copytree(trained_sweep, sweep)
    (built,) = build_ensembles(sweep, EnsembleSettings(method="stack"))  # the stack keeps every member
    source = tmp_path / "german.csv"
    german_frame().head(20).to_csv(source, index=False)
    member = sweep / "1_dnn_german_seed0_fold0"
    preprocessing = member / "preprocessing.json"
    preprocessing.write_text(preprocessing.read_text().replace('"', '"', 1) + " ")  # one byte more
    out = tmp_path / "scores.parquet"
    assert zoo_main(["predict", str(built.run_dir), str(source), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: ensemble member '1_dnn_german_seed0_fold0' ({member}) changed: "
        "manifest does not verify: preprocessing.json changed"
    ]
    shutil.rmtree(member)
    with pytest.raises(ZooError, match=r"ensemble member '1_dnn_german_seed0_fold0' .* is missing"):
        predict_file(built.run_dir, source, out)
    assert not out.exists()


# --- from Hydra --------------------------------------------------------------------------------


def test_the_hydra_callback_builds_the_ensemble_when_the_multirun_ends(tmp_path, zoo_train_here):
    from tests.overrides import QUICK_EXPLAIN

    sweep = tmp_path / "multirun"
    done = zoo_train_here(
        "-m", "model=lr,dnn", "trainer=fast", "logger=none", "data.n_folds=5", "data.fold=0",
        *QUICK_EXPLAIN, f"hydra.sweep.dir={sweep}", "+ensemble=greedy", "ensemble.size=5",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_dir = sweep / "ensembles" / "german_seed0_fold0"
    assert f"run directory: {run_dir}" in done.stdout
    verify_run(run_dir)
    record = json.loads((run_dir / "ensemble.json").read_text())
    assert record["method"] == "greedy" and record["size"] == 5
    assert record["bags"] == 50 and record["bootstrap_seed"] == 0  # conf/ensemble/greedy.yaml's default
    assert sorted(record["candidates"]) == ["0_lr_german_seed0_fold0", "1_dnn_german_seed0_fold0"]


def test_a_bad_ensemble_setting_stops_the_multirun_before_its_first_job(tmp_path, zoo_train_here):
    sweep = tmp_path / "multirun"
    done = zoo_train_here(
        "-m", "model=lr,dnn", "trainer=fast", "logger=none", f"hydra.sweep.dir={sweep}",
        "+ensemble=greedy", "ensemble.metric=accuracy", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: ensemble metric 'accuracy', expected one of: logloss, auc"
    )
    assert not list(sweep.glob("*/metrics.json"))


def test_an_ensemble_carries_its_points_scale_and_a_monitoring_reference(trained_sweep, tmp_path):
    (built,) = build_ensembles(trained_sweep, EnsembleSettings(method="greedy", size=10), tmp_path / "e")
    run = built.run_dir
    member = json.loads((built.group.members[0].path / "score.json").read_text())
    assert json.loads((run / "score.json").read_text()) == member
    # Monitoring exactly the validation rows: the ensemble scores them as it did when it was built,
    # and the fields are the first member's rows, so every PSI is 0 and every bin is compared.
    saved = pd.read_parquet(run / "predictions.parquet")
    val_rows = saved.loc[saved["split"].astype(str) == "val", "row"].to_numpy()
    source = tmp_path / "val.csv"
    german_frame().iloc[val_rows].to_csv(source, index=False)
    found = monitor_file(run, source)
    assert found.reference.source == "monitor_reference.json" and found.rows == len(val_rows) == 160
    assert found.score.psi == pytest.approx(0.0, abs=1e-12)
    assert found.fields is not None and len(found.fields) == 20
    assert max(s.psi for s in found.fields) == pytest.approx(0.0, abs=1e-12)


def test_a_second_ensemble_of_a_sweep_goes_beside_the_first_and_a_taken_out_is_refused(toy_sweep):
    first = build_ensembles(toy_sweep, EnsembleSettings(size=5))
    second = build_ensembles(toy_sweep, EnsembleSettings(method="stack"))
    assert [b.run_dir.parent.name for b in first + second] == ["ensembles", "ensembles-2"]
    assert json.loads((first[0].run_dir / "ensemble.json").read_text())["method"] == "greedy"
    with pytest.raises(ZooError, match="already holds a finished run"):
        build_ensembles(toy_sweep, EnsembleSettings(size=5), toy_sweep / "ensembles")


def test_two_ensembles_built_at_once_on_one_sweep_go_to_two_folders(toy_sweep, monkeypatch):
    # Both builds reach their first run lock together, after both have looked at ensembles/:
    # the folder is chosen under the lock, so the second goes to ensembles-2 instead of failing.
    real_lock, barrier, first_call = build_module.run_lock, threading.Barrier(2), threading.local()

    def lock_together(run_dir):
        if not getattr(first_call, "done", False):
            first_call.done = True
            barrier.wait(timeout=30)
        return real_lock(run_dir)

    monkeypatch.setattr(build_module, "run_lock", lock_together)
    built, errors = [], []

    def build(method):
        try:
            built.extend(build_ensembles(toy_sweep, EnsembleSettings(method=method, size=5)))
        except Exception as err:  # noqa: BLE001 (reported by the assertion below)
            errors.append(err)

    threads = [threading.Thread(target=build, args=(m,)) for m in ("greedy", "stack")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(b.run_dir.parent.name for b in built) == ["ensembles", "ensembles-2"]
    methods = {json.loads((b.run_dir / "ensemble.json").read_text())["method"] for b in built}
    assert methods == {"greedy", "stack"}
    assert not any((b.run_dir / LOCK_FILE).exists() for b in built)


@pytest.mark.parametrize("method", ["greedy", "stack"])
def test_the_ensemble_configs_and_the_command_line_share_their_defaults(method):
    """conf/ensemble/<method>.yaml is the source of the settings; `zoo ensemble`'s defaults (those
    of EnsembleSettings) must not drift from it."""
    from zoo.train import config_dir

    block = OmegaConf.load(Path(config_dir()) / "ensemble" / f"{method}.yaml")["ensemble"]
    assert EnsembleSettings.from_config(block) == EnsembleSettings(method=method)
