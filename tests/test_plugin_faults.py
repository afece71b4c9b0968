"""Plugins that hang, end the process or fail at import never take the host CLI with them.

Each fake plugin is a dist-info folder plus its module on PYTHONPATH (as pip leaves one). The
commands run in a subprocess with a time limit, so a regression fails here instead of hanging.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_registry import BROKEN, BUILT_INS, GOOD
from zoo import registry

HANGS = """
import time

while True:  # a plugin that never finishes importing
    time.sleep(1)
"""

EXITS_QUIETLY = """
import os

print("a plugin's own output")
os._exit(0)  # ends the process at import, skipping every handler, with status 0
"""

#: Generous: the commands import torch and Lightning twice (host and inspecting child) on a busy CI box.
COMMAND_LIMIT_S = 240


def _site(root: Path, plugins: dict[str, tuple[str, str]]) -> Path:
    """A folder for PYTHONPATH holding one fake distribution per plugin: name -> (module, source)."""
    site = root / "site"
    for name, (module, source) in plugins.items():
        dist = f"zoo-{name.replace('_', '-')}"
        info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
        (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{name} = {module}:Model\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    return site


def _run(command: str, *args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore",
        registry.TIMEOUT_ENV: "5",
    }
    exe = Path(sys.executable).with_name(command)
    try:
        return subprocess.run(
            [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_LIMIT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command} {' '.join(args)}` did not return in {COMMAND_LIMIT_S} s")


@pytest.mark.slow  # two real CLI processes, one waiting out a plugin that hangs (about 30 s)
def test_zoo_models_lists_every_model_beside_plugins_that_hang_or_exit_at_import(tmp_path):
    good = GOOD.replace("class Good(", "class Model(")
    site = _site(
        tmp_path,
        {  # listed in this order: the good one comes after the child that inspects them had to stop
            "a_exits": ("exits_quietly_plugin", EXITS_QUIETLY),
            "b_hangs": ("hangs_plugin", HANGS),
            "c_good": ("good_plugin", good),
        },
    )
    proc = _run("zoo", "models", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert set(rows) >= {*BUILT_INS, "a_exits", "b_hangs", "c_good"}, proc.stdout
    assert rows["a_exits"].split()[1] == "broken" and "ended the process at import" in rows["a_exits"]
    assert rows["b_hangs"].split()[1] == "broken" and "did not finish importing in 5 s" in rows["b_hangs"]
    assert "zoo-b-hangs 0.1.0" in rows["b_hangs"]
    assert rows["c_good"].split()[1] == "fake" and "A well-behaved fake plugin." in rows["c_good"]
    assert "a plugin's own output" not in proc.stdout


@pytest.mark.slow  # a real CLI process beside a plugin that hangs (about 20 s)
def test_composing_an_experiment_does_not_wait_for_a_plugin_that_hangs(tmp_path):
    site = _site(
        tmp_path, {"hangs": ("hangs_plugin", HANGS), "exits": ("exits_quietly_plugin", EXITS_QUIETLY)}
    )
    proc = _run("zoo-train", "experiment=wide_deep_table2", "--cfg", "job", site=site, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment_name: wide_deep_table2" in proc.stdout


def test_a_plugin_named_by_model_that_fails_to_import_is_one_error_line(
    tmp_path, zoo_train_here, monkeypatch
):
    site = _site(tmp_path, {"broken": ("broken_plugin", BROKEN)})
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    try:
        proc = zoo_train_here(
            "model=broken", "logger=none", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
        )
    finally:
        sys.modules.pop("broken_plugin", None)
        registry.refresh()
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: model plugin 'broken' (broken_plugin:Model, from zoo-broken)")
    assert lines[0].endswith("failed to import: boom at import")
