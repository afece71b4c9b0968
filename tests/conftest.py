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
