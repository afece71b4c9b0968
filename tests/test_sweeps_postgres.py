"""Two sweep workers sharing one Optuna study on a real PostgreSQL server on loopback.

The server is Debian's `postgresql` package (on the project's machine image; `.ci/run` installs
it where it is missing), started in a temporary directory for this module and stopped after it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from tests.test_sweeps import STATES, _sweep

pytest.importorskip("psycopg", reason="the test extra installs psycopg (the PostgreSQL driver)")


def _server_bin() -> Path | None:
    """The directory of `initdb` and `pg_ctl`: on PATH, or Debian's versioned location."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1; its SQLAlchemy URL."""
    bindir = _server_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package: postgresql)")
    # The server refuses to run as root: run it as Debian's `postgres` user then.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="zoo-pg-"))
    data = home / "data"
    if as_user:
        shutil.chown(home, user="postgres")
    port = _free_port()
    run = lambda *args: subprocess.run([*as_user, *args], check=True, capture_output=True, timeout=120)  # noqa: E731
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "zoo", "--auth=trust", "-E", "UTF8")
        run(
            str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {port} -k {home}", "start",
        )  # fmt: skip
    except subprocess.CalledProcessError as err:
        shutil.rmtree(home, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {err.stderr.decode()[-500:]}") from None
    try:
        yield f"postgresql+psycopg://zoo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow  # a PostgreSQL server and two workers; test_sweeps checks sharing on SQLite
def test_two_workers_share_one_study_on_postgresql(tmp_path, postgres_url):
    storage = f"hydra.sweeper.storage='{postgres_url}'"
    workers = [
        _sweep(tmp_path, "hydra.sweeper.n_trials=2", storage, env={"ZOO_WORKER": str(i)}, wait=False)
        for i in range(2)
    ]
    for proc in workers:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-3000:]
    trials = optuna.load_study(study_name="lr_german", storage=postgres_url).trials
    assert len(trials) == 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    for trial in trials:  # finished, or a failure with its error recorded
        assert trial.state == STATES.COMPLETE or (trial.state == STATES.FAIL and trial.user_attrs["error"])
    assert not (tmp_path / "multirun" / "sweeps" / "lr_german" / "study.db").exists()  # no SQLite fallback
