"""Shared fixtures: composing the real Hydra config for in-process `train(cfg)` calls."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from tests.overrides import QUICK_EXPLAIN
from zoo import registry
from zoo.train import config_dir


@pytest.fixture(scope="session")
def make_cfg() -> Callable[..., DictConfig]:
    """Compose `conf/config.yaml` with overrides, as `zoo-train` would (plugins included), with
    the fast trainer, no logger and `QUICK_EXPLAIN`; a test's own overrides come last and win."""

    def _make(*overrides: str) -> DictConfig:
        registry.store_configs(config_dir())
        with initialize_config_dir(config_dir=str(config_dir())):
            return compose("config", overrides=["trainer=fast", "logger=none", *QUICK_EXPLAIN, *overrides])

    return _make


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: on a 2-core runner, two threads compete with everything
    else and small models train many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` skip without CUDA under a plain `pytest`; `-m gpu` (`nox -s gpu`) asks
    for them explicitly, so there they run and fail loudly on a machine without a GPU."""
    import torch

    markexpr = str(config.getoption("markexpr", "") or "")
    if torch.cuda.is_available() or ("gpu" in markexpr and "not gpu" not in markexpr):
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def private_reading_cache(tmp_path_factory, monkeypatch):
    """Tests write the CSV reading cache into a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("CREDIT_ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "reading-cache"))


@pytest.fixture
def zoo_train_here(monkeypatch, capfd) -> Callable[..., subprocess.CompletedProcess]:
    """`zoo-train ARGS` run in `cwd` through its console entry point (`zoo.app.main`) inside this
    process, as a `CompletedProcess` (exit code, stdout, stderr), warnings ignored as the CLI tests'
    PYTHONWARNINGS=ignore does. For tests of what the command says and leaves behind: a subprocess
    pays ~8 s of imports (test_bad_input keeps one that runs the real process). Hydra's run config
    and the logging setup it installs are undone afterwards."""
    from hydra.core.hydra_config import HydraConfig

    from zoo.app import main

    def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["zoo-train", *args])
        hydra_cfg = HydraConfig.instance().cfg
        loggers = [
            logging.root,
            *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)),
        ]
        saved = [(lg, lg.level, lg.handlers[:], lg.propagate, lg.disabled) for lg in loggers]
        capfd.readouterr()
        code: int | str | None = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                main()
        except SystemExit as stop:
            code = stop.code
        finally:
            HydraConfig.instance().cfg = hydra_cfg
            for lg, level, handlers, propagate, disabled in saved:
                for handler in lg.handlers:
                    if handler not in handlers:
                        handler.close()  # Hydra's console and train.log handlers
                lg.handlers[:] = handlers
                lg.setLevel(level)
                lg.propagate, lg.disabled = propagate, disabled
        out, err = capfd.readouterr()
        returncode = code if isinstance(code, int) else (0 if code is None else 1)
        return subprocess.CompletedProcess(["zoo-train", *args], returncode, out, err)

    return _run
