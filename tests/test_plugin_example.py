"""The example third-party plugin in plugins/credit-zoo-example, listed and trained through credit-zoo.

It is used as installed when it is; otherwise these tests install it for themselves as pip
would, as a dist-info folder plus its package on sys.path, so they never skip.
"""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore

from zoo import cli, registry
from zoo.train import train

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "credit-zoo-example"
PROJECT = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
ENTRY_POINTS: dict[str, str] = PROJECT["entry-points"][registry.GROUP]
PACKAGE = "credit_zoo_example"


@pytest.fixture
def example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The example plugin's model name, with the plugin installed for this test only if need be."""
    store = ConfigStore.instance()
    # Only the `model` group: Hydra stores its own nodes on first use, which must survive.
    monkeypatch.setitem(store.repo, "model", dict(store.repo.get("model", {})))
    try:
        distribution(PROJECT["name"])
    except PackageNotFoundError:
        site = tmp_path / "site"
        dist_info = site / f"{PACKAGE}-{PROJECT['version']}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {PROJECT['name']}\nVersion: {PROJECT['version']}\n"
        )
        lines = "".join(f"{name} = {value}\n" for name, value in ENTRY_POINTS.items())
        (dist_info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}")
        shutil.copytree(
            PLUGIN / "src" / PACKAGE, site / PACKAGE, ignore=shutil.ignore_patterns("__pycache__")
        )
        monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    (name,) = ENTRY_POINTS
    yield name
    registry.refresh()
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        if str(tmp_path) in str(getattr(sys.modules[module], "__file__", "")):
            del sys.modules[module]


def test_zoo_models_lists_it_with_family_distribution_and_description(example_plugin, capsys):
    assert example_plugin in registry.names()
    assert registry.discover()[example_plugin].distribution == PROJECT["name"]
    assert cli.main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    row = rows[example_plugin]
    assert f"{PROJECT['name']} {PROJECT['version']}" in row
    assert " additive " in row and "Neural additive model" in row


def test_trains_end_to_end_with_its_constructor_defaults_as_config(example_plugin, make_cfg, tmp_path):
    cfg = make_cfg(f"model={example_plugin}")  # stores the plugins' configs, then composes
    cls = registry.get(example_plugin)
    assert cfg.model == {"name": example_plugin, **registry.default_hparams(cls)}
    run_dir = tmp_path / "run"
    result = train(cfg, run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["model"] == example_plugin and 0 <= saved["test"]["auc"] <= 1
    assert saved["test"]["auc"] == pytest.approx(result["test"]["auc"])
    loaded = cls.load_from_checkpoint(run_dir / saved["best_checkpoint"], weights_only=True)
    assert type(loaded) is cls and loaded.feature_spec.n_categorical == 13
