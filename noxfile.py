"""Test sessions for credit-zoo; `nox -l` lists them with their docstrings."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
# A plain `torch` requirement can pull a multi-GB CUDA build; install the CPU build first.
# Override with CREDIT_ZOO_TORCH (e.g. "torch" on a GPU machine).
TORCH = os.environ.get("CREDIT_ZOO_TORCH", "torch==2.13.0")


def _extra(name: str) -> list[str]:
    """The requirements of one of pyproject.toml's extras (the single place tool pins live)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"][name])


def _install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests on CPU, tiny data, no slow or GPU tests (about 6 minutes on 2 cores).

    One pytest-xdist worker per core (at most 4), each test file whole on one worker so that its
    module fixtures are built once; one torch thread per worker, so workers do not oversubscribe.
    `nox -s tests -- -n 0` runs them in one process."""
    _install(session, "test")
    session.run(
        "pytest", "-m", "not slow and not gpu", "--durations=20",
        "-n", "auto", "--maxprocesses", "4", "--dist", "loadfile", *session.posargs,
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )  # fmt: skip


@nox.session(default=False)
def slow(session: nox.Session) -> None:
    """Longer checks (model quality on real data, multiruns); opt-in."""
    _install(session, "test")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """Tests that need a CUDA device; opt-in, run on a GPU machine."""
    _install(session, "test")
    session.run("pytest", "-m", "gpu", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (pinned in pyproject's `lint` extra) over the package, tests, plugins and this file."""
    session.install(*_extra("lint"))
    session.run("ruff", "check", "zoo", "tests", "plugins", "benchmarks", "noxfile.py", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy (pinned in pyproject's `typecheck` extra) over `zoo/`."""
    _install(session, "typecheck")
    session.run("mypy", "zoo", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation in docs/ with MkDocs (strict: broken links fail)."""
    session.install("mkdocs>=1.6")
    session.run("mkdocs", "build", "--strict", "--site-dir", "build/docs", *session.posargs)


@nox.session(default=False)
def benchmarks(session: nox.Session) -> None:
    """Speed and quality benchmarks (print figures; no pass/fail); opt-in."""
    _install(session)
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        session.run("python", str(script), *session.posargs)


def _plugin_session(plugin: Path) -> None:
    def run_plugin(session: nox.Session) -> None:
        _install(session, "test")
        session.install("-e", str(plugin))
        session.run("pytest", str(plugin / "tests"), *session.posargs)

    run_plugin.__doc__ = f"Install the plugin {plugin.name} beside credit-zoo and run its tests."
    nox.session(name=f"plugin-{plugin.name}")(run_plugin)


for _plugin in PLUGINS:
    _plugin_session(_plugin)
