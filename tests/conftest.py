"""Shared fixtures: composing the real Hydra config for in-process `train(cfg)` calls."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from zoo import registry
from zoo.train import config_dir


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """Compose `conf/config.yaml` with overrides, as `zoo-train` would (plugins included)."""

    def _make(*overrides: str) -> DictConfig:
        registry.store_configs(config_dir())
        with initialize_config_dir(config_dir=str(config_dir())):
            return compose("config", overrides=["trainer=fast", "logger=none", *overrides])

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
