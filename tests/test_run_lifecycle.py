"""The life of a run directory (zoo/run_state.py): a new run never reuses a directory, a lock
keeps a second writer out, refusals write nothing, an interrupted run resumes, and only a run
sealed by its manifest counts as finished."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, STATE_FILE, sha256_file, verify_run
from zoo.resume import Terminated, resume_point, sigterm_raises
from zoo.run_state import LOCK_FILE, RunDirRefused, current_state, read_record, run_lock
from zoo.train import train

SMALL = ["model=lr", "dataset=synthetic", "dataset.params.n_rows=400"]


def _files(run_dir: Path) -> dict[str, str]:
    """Every file under `run_dir` (Hydra's record included) with its SHA-256."""
    return {
        p.relative_to(run_dir).as_posix(): sha256_file(p) for p in sorted(run_dir.rglob("*")) if p.is_file()
    }


@pytest.fixture
def finished(make_cfg, tmp_path) -> Path:
    run_dir = tmp_path / "finished"
    train(make_cfg(*SMALL), run_dir)
    return run_dir


def _dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def test_a_finished_run_is_sealed_and_says_so(finished):
    assert current_state(finished) == "finished"
    assert read_record(finished)["state"] == "finished"
    verify_run(finished)  # the state file is not one of the sealed artifacts
    assert not (finished / LOCK_FILE).exists()  # released


@pytest.mark.parametrize("extra", [["seed=5"], ["model=dnn", "+foo=1"]])
def test_a_new_run_into_a_finished_runs_directory_is_refused_and_changes_nothing(
    finished, tmp_path, zoo_train_here, extra
):
    """Retraining into a finished run (bad case 1) or a refused command aimed at it (bad case 8)
    leaves every file of the run as it was, Hydra's `.hydra/overrides.yaml` included."""
    before = _files(finished)
    proc = zoo_train_here(*SMALL, *extra, f"hydra.run.dir={finished}", cwd=tmp_path)
    errors = _error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "already holds a finished run; a new run never reuses a directory" in errors[0]
    assert _files(finished) == before


def test_refused_in_process_too_and_best_checkpoint_is_never_versioned(finished, make_cfg):
    with pytest.raises(RunDirRefused, match="already holds a finished run"):
        train(make_cfg(*SMALL, "seed=5"), finished)
    assert sorted(p.name for p in (finished / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.parametrize("where", [".", ".."])
def test_the_working_directory_or_above_is_never_a_run_directory(tmp_path, zoo_train_here, where):
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "keep.txt").write_text("keep")
    proc = zoo_train_here(*SMALL, f"hydra.run.dir={where}", cwd=cwd)
    errors = _error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "is the working directory or one above it" in errors[0]
    assert (cwd / "keep.txt").read_text() == "keep"
    assert sorted(p.name for p in cwd.iterdir()) == ["keep.txt"]  # no .hydra/, no log


def test_an_empty_working_directory_is_refused_too(tmp_path, make_cfg, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    with pytest.raises(RunDirRefused, match="working directory"):
        train(make_cfg(*SMALL), Path("."))
    assert empty.is_dir()


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path, make_cfg):
    run_dir = tmp_path / "busy"
    with run_lock(run_dir):
        record = json.loads((run_dir / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
        with pytest.raises(RunDirRefused, match=rf"being written by process {os.getpid()}"):
            train(make_cfg(*SMALL), run_dir)
    assert not (run_dir / LOCK_FILE).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, make_cfg):
    run_dir = tmp_path / "stale"
    run_dir.mkdir()
    dead = _dead_pid()

    (run_dir / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": dead}))
    with run_lock(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_sigterm_after_metrics_before_the_manifest_leaves_a_resumable_run(tmp_path, make_cfg, monkeypatch):
    """Bad case 5: killed between metrics.json and manifest.json. The run says interrupted, is
    not finished, and `resume=` writes its outputs from the fitted model, sealed."""
    cfg = make_cfg(*SMALL)
    run_dir = tmp_path / "cut"
    import zoo.run_outputs

    real = zoo.run_outputs.write_manifest

    def killed(*args, **kwargs):
        assert (run_dir / "metrics.json").is_file()
        os.kill(os.getpid(), signal.SIGTERM)  # delivered here, through the run's handler
        return real(*args, **kwargs)

    monkeypatch.setattr(zoo.run_outputs, "write_manifest", killed)
    with (
        sigterm_raises(),
        pytest.raises(Terminated, match=rf"SIGTERM; continue it with: zoo-train resume={run_dir}"),
    ):
        train(cfg, run_dir)
    monkeypatch.setattr(zoo.run_outputs, "write_manifest", real)
    assert not (run_dir / MANIFEST_FILE).exists()
    assert current_state(run_dir) == "interrupted"
    with pytest.raises(ZooError, match="no manifest"):
        verify_run(run_dir)
    cut_probs = pd.read_parquet(run_dir / "predictions.parquet")["prob"]
    point = resume_point(run_dir)
    assert point.fitted is not None and point.fitted["checkpoint"] == "checkpoints/best.ckpt"
    saved = OmegaConf.load(run_dir / "config.yaml")
    train(saved, run_dir, resume=point)
    verify_run(run_dir)
    assert current_state(run_dir) == "finished"
    pd.testing.assert_series_equal(pd.read_parquet(run_dir / "predictions.parquet")["prob"], cut_probs)


def test_a_killed_writer_leaves_an_interrupted_run_and_resume_refuses_the_rest(tmp_path, finished):
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    dead = _dead_pid()

    record = {"state": "training", "host": socket.gethostname(), "pid": dead}
    (run_dir / STATE_FILE).write_text(json.dumps(record))
    (run_dir / "config.yaml").write_text("seed: 0\n")
    assert current_state(run_dir) == "interrupted"
    assert resume_point(run_dir).checkpoint is None  # no epoch had ended: fit again from the start
    (run_dir / STATE_FILE).write_text(json.dumps({**record, "pid": os.getpid()}))
    with pytest.raises(RunDirRefused, match="still being written by process"):
        resume_point(run_dir)
    (run_dir / STATE_FILE).write_text(json.dumps({**record, "state": "failed"}))
    with pytest.raises(RunDirRefused, match="is a failed run; only an interrupted run can be resumed"):
        resume_point(run_dir)
    with pytest.raises(RunDirRefused, match=r"is a finished run \(sealed by its manifest\)"):
        resume_point(finished)


def test_a_run_that_fails_says_so(tmp_path, make_cfg, monkeypatch):
    import zoo.run_outputs

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(zoo.run_outputs, "write_explanations", broken)
    run_dir = tmp_path / "failed"
    with pytest.raises(RuntimeError, match="disk on fire"):
        train(make_cfg(*SMALL), run_dir)
    assert current_state(run_dir) == "failed"
    assert read_record(run_dir)["error"] == "disk on fire"
    assert not (run_dir / LOCK_FILE).exists()


def test_an_interpolation_loop_is_one_line(tmp_path, zoo_train_here):
    proc = zoo_train_here(*SMALL, "+dataset.a=${dataset.b}", "+dataset.b=${dataset.a}", cwd=tmp_path)
    errors = _error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "dataset" in errors[0] and "Traceback" not in proc.stderr


def test_a_full_disk_while_training_is_one_line_and_a_failed_run(tmp_path, zoo_train_here, monkeypatch):
    import errno

    import zoo.run_outputs

    def full(path, frame):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(zoo.run_outputs, "write_parquet", full)
    run_dir = tmp_path / "full"
    proc = zoo_train_here(*SMALL, "trainer=fast", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    errors = _error_lines(proc)
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert "No space left on device; the run failed" in errors[0] and "predictions.parquet" in errors[0]
    assert "Traceback" not in proc.stderr
    assert current_state(run_dir) == "failed"


def test_unknown_synthetic_parameters_are_one_line(tmp_path, zoo_train_here):
    run_dir = tmp_path / "run"
    proc = zoo_train_here(
        *SMALL, "+dataset.params._target_=os.system", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    errors = _error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "dataset.params._target_ is not a setting of the synthetic generator" in errors[0]
    assert not run_dir.exists()


def test_a_long_dataset_name_is_one_line_before_hydra_makes_the_default_directory(tmp_path, zoo_train_here):
    proc = zoo_train_here(*SMALL, f"dataset.name={'x' * 300}", cwd=tmp_path)
    errors = _error_lines(proc)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "expected 1 to" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()
