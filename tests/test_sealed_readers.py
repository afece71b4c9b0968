"""Readers of runs take only runs sealed by a manifest that verifies (zoo.manifest.verify_run): the
leaderboard lists the others under its table with their state and reason, and `zoo study` says
when its best trial's run directory does not verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_leaderboard import metrics_json, seal, write_predictions, write_run
from zoo import study as zoo_study
from zoo.errors import ZooError
from zoo.leaderboard import collect_runs, main, unranked_runs, write_leaderboard
from zoo.leaderboard.collect import TestPredictions
from zoo.manifest import seal_problem, verify_run
from zoo.sweeps import RUN_DIR_ATTR


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """lr (test AUC 0.78 + offsets) and dnn (0.70 + offsets) on german, two seeds each, all sealed."""
    root = tmp_path / "sweep"
    for model, base in (("lr", 0.78), ("dnn", 0.70)):
        for seed in (0, 1):
            payload = metrics_json("german", "lr", seed)
            payload["model"] = model
            payload["test"]["auc"] = base + seed / 100
            write_run(root / f"{model}_seed{seed}", payload)
    return root


def _edit_test_auc(run_dir: Path, auc: float) -> None:
    path = run_dir / "metrics.json"
    payload = json.loads(path.read_text())
    payload["test"]["auc"] = auc
    path.write_text(json.dumps(payload))


def test_a_run_whose_metrics_were_edited_is_not_ranked_but_listed_with_the_reason(sweep: Path) -> None:
    _edit_test_auc(sweep / "dnn_seed0", 0.999)

    board = write_leaderboard(sweep, ["auc"])

    ranked = board.summary.set_index("model")
    assert ranked.loc["lr", "rank"] == 1 and ranked.loc["dnn", "n_seeds"] == 1  # the good runs still rank
    assert ranked.loc["dnn", "auc_mean"] == pytest.approx(0.71)  # not 0.999
    md = board.markdown
    assert md.index("| german | 1 | lr |") < md.index("## Runs not ranked")
    assert "| dnn_seed0 | finished | manifest does not verify: metrics.json changed |" in md
    assert "0.999" not in md
    assert "<td>manifest does not verify: metrics.json changed</td>" in board.paths["html"].read_text()
    assert sorted(collect_runs(sweep)["run_dir"]) == [
        str(sweep / n) for n in ("dnn_seed1", "lr_seed0", "lr_seed1")
    ]


def test_a_run_without_its_manifest_is_listed_as_unfinished_with_its_state(sweep: Path) -> None:
    (sweep / "lr_seed1" / "manifest.json").unlink()  # SIGTERM after metrics.json, before the manifest
    (sweep / "dnn_seed1" / "manifest.json").unlink()
    (sweep / "dnn_seed1" / "state.json").write_text(json.dumps({"state": "interrupted", "pid": 7}))
    (sweep / "running" / ".hydra").mkdir(parents=True)
    (sweep / "running" / "state.json").write_text(json.dumps({"state": "training"}))

    board = write_leaderboard(sweep, ["auc"])

    assert set(board.summary["n_seeds"]) == {1}
    section = board.markdown[board.markdown.index("## Runs not ranked") :]
    assert "3 runs not in the table" in section
    assert "| dnn_seed1 | interrupted | no manifest |" in section
    assert "| lr_seed1 | - | no manifest |" in section
    assert "| running | training | no manifest |" in section
    assert [(r.path.name, r.state) for r in unranked_runs(sweep)] == [
        ("dnn_seed1", "interrupted"),
        ("lr_seed1", None),
        ("running", "training"),
    ]


def test_changed_or_missing_predictions_unseal_a_run_and_unlisted_ones_are_not_read(sweep: Path) -> None:
    rows, labels = np.arange(20), np.tile([0, 1], 10)
    for name in ("lr_seed0", "lr_seed1"):
        write_predictions(sweep / name, rows, labels, np.linspace(0.1, 0.9, 20))  # sealed with them
    sealed = (sweep / "lr_seed0" / "manifest.json").read_text()
    write_predictions(sweep / "lr_seed0", rows, labels, labels * 0.99)  # rewritten: a perfect model
    (sweep / "lr_seed0" / "manifest.json").write_text(sealed)  # and the manifest put back
    (sweep / "lr_seed1" / "predictions.parquet").unlink()
    (sweep / "dnn_seed0" / "predictions.parquet").write_bytes(  # added after the run was sealed
        (sweep / "lr_seed0" / "predictions.parquet").read_bytes()
    )

    problems = {r.path.name: r.reason for r in unranked_runs(sweep)}

    assert problems == {
        "lr_seed0": "manifest does not verify: predictions.parquet changed",
        "lr_seed1": "manifest does not verify: predictions.parquet missing",
    }
    assert seal_problem(sweep / "dnn_seed0") is None  # an extra file is not the run's: not read
    assert TestPredictions().get(sweep / "dnn_seed0") is None


def test_verify_run_reasons_and_the_state_file_is_not_an_artifact(sweep: Path) -> None:
    run_dir = sweep / "lr_seed0"
    assert verify_run(run_dir)["artifacts"].keys() == {"metrics.json"}
    (run_dir / "state.json").write_text(json.dumps({"state": "finished"}))  # rewritten after sealing
    assert seal_problem(run_dir) is None
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    seal(run_dir)
    assert "state.json" not in verify_run(run_dir)["artifacts"]
    (run_dir / "checkpoints" / "best.ckpt").unlink()
    with pytest.raises(ZooError, match=r"^manifest does not verify: checkpoints/best.ckpt missing$"):
        verify_run(run_dir)
    (run_dir / "manifest.json").write_text("{")
    assert (seal_problem(run_dir) or "").startswith("manifest unreadable: ")
    (run_dir / "manifest.json").unlink()
    assert seal_problem(run_dir) == "no manifest"


def test_cli_with_no_sealed_run_is_one_error_line(sweep: Path, capsys) -> None:
    for run_dir in sweep.iterdir():
        _edit_test_auc(run_dir, 0.5)

    assert main([str(sweep)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: no run under {sweep} to rank: 4 runs are not sealed by a manifest that verifies"
        f" (first: {sweep / 'dnn_seed0'}: manifest does not verify: metrics.json changed)"
    ]


def test_cli_lists_a_tampered_run_under_the_table(sweep: Path, capsys) -> None:
    _edit_test_auc(sweep / "dnn_seed1", 0.999)

    assert main([str(sweep), "--metrics", "auc"]) == 0

    out = capsys.readouterr().out
    assert out.index("| german | 1 | lr |") < out.index(
        "| dnn_seed1 | finished | manifest does not verify: metrics.json changed |"
    )


def test_zoo_study_says_when_the_best_trials_run_does_not_verify(sweep: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="lr_german", direction="maximize")
    trial = study.ask()
    trial.suggest_float("model.learning_rate", 1e-4, 1e-1, log=True)
    trial.set_user_attr(RUN_DIR_ATTR, str(sweep / "lr_seed1"))
    study.tell(trial, 0.8)

    assert zoo_study.format_summary(study, "memory").endswith(f"run directory: {sweep / 'lr_seed1'}")
    _edit_test_auc(sweep / "lr_seed1", 0.999)
    note = "(not a sealed run: manifest does not verify: metrics.json changed)"
    assert zoo_study.format_summary(study, "memory").endswith(f"run directory: {sweep / 'lr_seed1'} {note}")
