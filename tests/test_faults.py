"""Faults: SIGTERM and SIGKILL mid-training, and `resume=<run dir>` continuing bit for bit on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.overrides import QUICK_EXPLAIN
from zoo.errors import ZooError
from zoo.resume import resume_point

#: Enough epochs that a kill lands mid-training; early stopping off, so every run trains all of them.
RUN = [
    "model=dnn",
    "dataset=german",
    "logger=csv",
    "trainer.max_epochs=20",
    "early_stopping.patience=1000",
    "early_stopping.patience_steps=0",
    "data.batch_size=64",
    *QUICK_EXPLAIN,
]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def _zoo_train(*overrides: str, cwd: Path, wait: bool = True):
    command = [sys.executable, "-m", "zoo.train", *overrides]
    if not wait:
        return subprocess.Popen(
            command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def _kill_after_first_epoch(proc: subprocess.Popen, run_dir: Path, sig: int) -> tuple[str, str]:
    """Send `sig` once the run has saved its first last checkpoint."""
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert last.exists() and proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    return proc.communicate(timeout=300)


def _probs(run_dir: Path) -> pd.Series:
    return pd.read_parquet(run_dir / "predictions.parquet")["prob"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("faults")
    proc = _zoo_train(*RUN, f"hydra.run.dir={cwd / 'full'}", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return cwd / "full"


def test_sigterm_exits_nonzero_keeps_a_checkpoint_and_resumes_bit_for_bit(tmp_path, uninterrupted):
    run_dir = tmp_path / "cut"
    proc = _zoo_train(*RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path, wait=False)
    _, err = _kill_after_first_epoch(proc, run_dir, signal.SIGTERM)
    assert proc.returncode == 143
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "terminated by SIGTERM" in errors[0] and f"resume={run_dir}" in errors[0]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (run_dir / "metrics.json").exists()
    interrupted_log = (run_dir / "logs" / "metrics.csv").read_text()

    resumed = _zoo_train(f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 20
    pd.testing.assert_series_equal(_probs(run_dir), _probs(uninterrupted), check_exact=True)
    assert (run_dir / "logs" / "metrics.part1.csv").read_text() == interrupted_log  # nothing lost


@pytest.mark.slow  # as the SIGTERM test (same resume path) with a kill that cannot be caught
def test_sigkill_mid_training_resumes_bit_for_bit(tmp_path, uninterrupted):
    run_dir = tmp_path / "killed"
    proc = _zoo_train(*RUN, f"hydra.run.dir={run_dir}", cwd=tmp_path, wait=False)
    _kill_after_first_epoch(proc, run_dir, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    resumed = _zoo_train(f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pd.testing.assert_series_equal(_probs(run_dir), _probs(uninterrupted), check_exact=True)


def test_resume_refuses_what_it_cannot_continue(tmp_path, uninterrupted, zoo_train_here):
    empty = tmp_path / "empty"
    empty.mkdir()
    for run_dir, message in [
        (uninterrupted, "is a finished run"),
        (tmp_path / "nowhere", "is not a directory"),
        (empty, "is not a zoo-train run directory"),
    ]:
        with pytest.raises(ZooError, match=message):
            resume_point(run_dir)
    # From the command line: refused before Hydra writes, and the finished run's record is kept.
    proc = zoo_train_here(f"resume={uninterrupted}", "seed=3", cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "is a finished run (sealed by its manifest); only an interrupted run can be resumed" in errors[0]
    assert "resume=" not in (uninterrupted / ".hydra" / "overrides.yaml").read_text()


def test_a_terminated_multirun_fails_and_records_the_job(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _zoo_train("-m", *RUN, "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path, wait=False)
    _, err = _kill_after_first_epoch(proc, sweep / "0_dnn_german_seed0", signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    record = json.loads((sweep / "failures" / "0_dnn_german_seed0.json").read_text())
    assert record["type"] == "Terminated" and "terminated by SIGTERM" in record["error"]
    assert "seed=0" in record["overrides"]
    assert not (sweep / "1_dnn_german_seed1").exists()  # the sweep stopped: a kill is not a success
