"""Model plugins discovered through the `credit_zoo.models` entry-point group.

The entry-point name is the registry key and the Hydra config name (`model=<name>`). Discovery
reads entry-point metadata only; a plugin is imported in this process only when a command uses
it. What `zoo models` shows of a third-party plugin, and its default config when a command cannot
tell which models it uses, come from a child process with a time limit: a plugin that hangs, or
ends its process, at import is listed as broken and never stops the host.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import IO, Any

from zoo.errors import ZooError

GROUP = "credit_zoo.models"
log = logging.getLogger(__name__)

#: Seconds a third-party plugin may take to import in the inspecting child process before it is
#: listed as hanging (environment variable CREDIT_ZOO_PLUGIN_TIMEOUT overrides).
IMPORT_TIMEOUT_S = 30.0
#: Seconds the inspecting child may take to start (Python, torch and Lightning) before the first plugin.
START_TIMEOUT_S = 120.0
TIMEOUT_ENV = "CREDIT_ZOO_PLUGIN_TIMEOUT"


@dataclass(frozen=True)
class PluginInfo:
    """An installed model plugin, known without importing it."""

    name: str
    value: str
    distribution: str
    version: str
    entry_point: EntryPoint


HOST = "credit-zoo"


def discover() -> dict[str, PluginInfo]:
    """All plugins in the entry-point group, by name (a copy: callers may change it freely)."""
    return dict(_discover())


@cache
def _discover() -> dict[str, PluginInfo]:
    """Read the entry points once; a duplicate name warns and names both distributions.

    Of two plugins with one name, credit-zoo's own model wins (a plugin cannot silently replace
    a built-in), otherwise the first found.
    """
    found: dict[str, PluginInfo] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            value=ep.value,
            distribution=dist.name if dist is not None else "unknown",
            version=dist.version if dist is not None else "",
            entry_point=ep,
        )
        if ep.name in found:
            if found[ep.name].value == ep.value:
                continue  # the same distribution seen twice on sys.path
            kept, other = (info, found[ep.name]) if info.distribution == HOST else (found[ep.name], info)
            warnings.warn(
                f"model plugin {ep.name!r} is provided by both {kept.distribution} ({kept.value}) "
                f"and {other.distribution} ({other.value}); using {kept.distribution}'s",
                stacklevel=2,
            )
            found[ep.name] = kept
            continue
        found[ep.name] = info
    return dict(sorted(found.items()))


def refresh() -> None:
    """Forget cached discovery, loaded classes and inspections (after installing a plugin, and in tests)."""
    _discover.cache_clear()
    _load.cache_clear()
    _inspected.clear()


def names() -> list[str]:
    return list(discover())


@cache
def _load(name: str) -> type:
    import pytorch_lightning as pl

    info = discover()[name]
    try:
        obj = info.entry_point.load()
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - a plugin calling sys.exit() must not end the host either
        reason = f"{type(err).__name__}({err})" if isinstance(err, SystemExit) else str(err)
        raise ImportError(
            f"model plugin {name!r} ({info.value}, from {info.distribution}) failed to import: {reason}"
        ) from err
    if not (inspect.isclass(obj) and issubclass(obj, pl.LightningModule)):
        raise TypeError(f"model plugin {name!r} ({info.value}) is not a LightningModule class")
    return obj


def get(name: str) -> type:
    """The LightningModule class of a model; an unknown name lists the installed ones."""
    plugins = discover()
    if name not in plugins:
        raise ZooError(f"unknown model {name!r}; installed models: {', '.join(plugins) or '(none)'}")
    try:
        return _load(name)
    except (ImportError, TypeError) as err:
        raise ZooError(str(err)) from None


def load_all() -> dict[str, type]:
    """Every plugin that loads; each one that does not becomes a warning naming it."""
    loaded = {}
    for name in discover():
        try:
            loaded[name] = _load(name)
        except (ImportError, TypeError) as err:
            warnings.warn(str(err), stacklevel=2)
    return loaded


def default_hparams(cls: type) -> dict[str, Any]:
    """Keyword defaults of a model constructor, less `feature_spec`: its default config."""
    out: dict[str, Any] = {}
    for param in inspect.signature(cls).parameters.values():
        if param.name in ("self", "feature_spec") or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if param.default is inspect.Parameter.empty:
            out[param.name] = "???"
        else:
            default = param.default
            out[param.name] = list(default) if isinstance(default, tuple) else default
    return out


#: Keys of a model config that are not constructor arguments: the registry name and the entry's
#: one-line description (`zoo models`).
CONFIG_KEYS = ("name", "description")


def shipped_description(name: str) -> str | None:
    """`description:` of the shipped `conf/model/<name>.yaml`, if any: each of several names
    registered to one class (lr and lr_cross) says what its own config builds."""
    import yaml

    from zoo.train import config_dir

    path = config_dir() / "model" / f"{name}.yaml"
    if not path.is_file():
        return None
    text = (yaml.safe_load(path.read_text()) or {}).get("description")
    return " ".join(str(text).split()) if text else None


def docstring_summary(cls: type) -> str:
    """The first paragraph of a class docstring, on one line."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return " ".join(doc.split("\n\n")[0].split())


def _row(name: str, found: dict[str, Any]) -> dict[str, str]:
    info = discover()[name]
    if "error" in found:
        return {
            "name": name,
            "family": "broken",
            "distribution": f"{info.distribution} {info.version}".strip(),
            "description": (str(found["error"]).splitlines() or [""])[0],
        }
    return {
        "name": name,
        "family": str(found["family"]),
        "distribution": f"{info.distribution} {info.version}".strip(),
        "description": shipped_description(name) or str(found["summary"]),
    }


def describe(name: str) -> dict[str, str]:
    """One row of `zoo models`: name, family, distribution and version, description (the model
    config's `description:`, else the first paragraph of the class docstring). A third-party
    plugin is inspected in a child process (`inspect_plugins`); one that fails there is `broken`."""
    return _row(name, inspect_plugins([name])[name])


def describe_all() -> list[dict[str, str]]:
    """`describe` of every installed model, third-party plugins inspected in one child process."""
    found = inspect_plugins(names())
    return [_row(name, found[name]) for name in found]


#: What `inspect_plugins` found, by model name, until `refresh()`.
_inspected: dict[str, dict[str, Any]] = {}


def inspect_plugins(wanted: list[str]) -> dict[str, dict[str, Any]]:
    """Family, docstring summary and constructor defaults of each named model, or `{"error": ...}`.

    credit-zoo's own models are imported here; third-party plugins in a child process, each with
    IMPORT_TIMEOUT_S to import, so one that hangs, exits or crashes at import is an error row
    and this process never runs its code. A child that stops is replaced for the plugins after."""
    plugins = discover()
    missing = [n for n in wanted if n not in _inspected]
    outside = [n for n in missing if plugins[n].distribution != HOST]
    child = _Inspection(outside) if outside else None  # starts while the built-ins import here
    try:
        for name in missing:
            if name not in outside:
                _inspected[name] = _inspect_here(name)
        while outside:
            child = child or _Inspection(outside)
            _inspected.update(child.collect())
            child = None
            outside = [n for n in outside if n not in _inspected]
    finally:
        if child is not None:
            child.stop()
    return {n: _inspected[n] for n in wanted}


def _inspect_here(name: str) -> dict[str, Any]:
    """What `inspect_plugins` gives for one model, importing it in this process."""
    try:
        cls = _load(name)
    except (ImportError, TypeError) as err:
        return {"error": str(err)}
    return {
        "family": str(getattr(cls, "family", "other")),
        "summary": docstring_summary(cls),
        "hparams": default_hparams(cls),
    }


def _import_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return IMPORT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ZooError(f"{TIMEOUT_ENV}={text!r}, expected a positive number of seconds")
    return seconds


#: The inspecting child: it reads its sys.path and the names from stdin, then answers one JSON
#: line per event on its original stdout (what plugins print goes to stderr).
_CHILD = "import json, sys; r = json.loads(sys.stdin.readline()); sys.path[:] = r['path']; " + (
    "from zoo.registry import serve_inspection; serve_inspection(r['names'])"
)


def serve_inspection(wanted: list[str]) -> None:
    """The child's side of `inspect_plugins`: `{"start": name}` before each import, then
    `{"name": name, "found": ...}`."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a plugin's prints must not garble the answers
    warnings.simplefilter("ignore")
    import pytorch_lightning  # noqa: F401 - the child's start-up cost, before any plugin's clock runs

    import zoo.models.base  # noqa: F401

    for name in wanted:
        answers.write(json.dumps({"start": name}) + "\n")
        found = _inspect_here(name)
        try:
            line = json.dumps({"name": name, "found": found})
        except (TypeError, ValueError) as err:
            line = json.dumps({"name": name, "found": {"error": f"model plugin {name!r}: defaults: {err}"}})
        answers.write(line + "\n")
    answers.close()


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    with stream:
        for line in stream:
            lines.put(line)
    lines.put(None)


class _Inspection:
    """One child process running `serve_inspection` on third-party plugins. `collect` stops at the
    first plugin that hangs or ends the child, which gets an error: each child settles at least one."""

    def __init__(self, wanted: list[str]) -> None:
        self.wanted = wanted
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its own process group: a plugin's children are stopped with it
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        with self.proc.stdin:
            self.proc.stdin.write(json.dumps({"path": sys.path, "names": wanted}) + "\n")

    def _failed(self, name: str, what: str) -> dict[str, Any]:
        info = discover()[name]
        return {"error": f"model plugin {name!r} ({info.value}, from {info.distribution}) {what}"}

    def collect(self) -> dict[str, dict[str, Any]]:
        timeout = _import_timeout()
        found: dict[str, dict[str, Any]] = {}
        current: str | None = None
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    if current is None:  # it never got to a plugin
                        late = (
                            f"was not inspected: the inspecting child did not start in {START_TIMEOUT_S:g} s"
                        )
                        return {n: self._failed(n, late) for n in self.wanted if n not in found}
                    found[current] = self._failed(
                        current, f"did not finish importing in {timeout:g} s ({TIMEOUT_ENV} sets the limit)"
                    )
                    return found
                if line is None:  # the child ended
                    code = self.proc.wait()
                    if current is not None:
                        found[current] = self._failed(
                            current, f"ended the process at import (exit status {code})"
                        )
                    elif not found:  # it never got to a plugin
                        what = f"was not inspected: its inspecting process exited ({code})"
                        return {n: self._failed(n, what) for n in self.wanted}
                    return found
                message = json.loads(line)
                if "start" in message:
                    current, deadline = message["start"], time.monotonic() + timeout
                else:
                    found[message["name"]], current = message["found"], None
        finally:
            self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def chosen_models(argv: list[str]) -> set[str] | None:
    """The model names a `zoo-train` command line asks for (`model=a`, `model=a,b`,
    `model=choice(a,b)`); None when it cannot tell (an experiment or search space may pick one)."""
    names: set[str] = set()
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if key in ("experiment", "hparams_search") and value not in ("", "null"):
            return None
        if key != "model" or not sep:
            continue
        match = re.fullmatch(r"(?:choice\()?([\w.\-, ]+)\)?", value)
        if match is None:
            return None
        names |= {v.strip() for v in match.group(1).split(",") if v.strip()}
    return names


def store_configs(config_dir: Any, only: set[str] | None = None) -> list[str]:
    """Give every plugin without a YAML file in `conf/model/` a config built from its constructor
    defaults, in Hydra's ConfigStore, so `model=<plugin>` works with no edit to this project.

    `only`: the models this command uses; other plugins are then not imported at all (a broken
    or slow third-party plugin cannot touch a run that does not use it), and one of these that
    fails to import gets a bare `{name: ...}` config, so the run says why in one line. Without
    `only`, each plugin's defaults come from `inspect_plugins` (a child process with a time
    limit); one that fails there is a warning and has no config."""
    from pathlib import Path

    from hydra.core.config_store import ConfigStore

    shipped = {p.stem for p in (Path(config_dir) / "model").glob("*.yaml")}
    unshipped = [n for n in discover() if n not in shipped and (only is None or n in only)]
    stored = []
    store = ConfigStore.instance()
    # Without `only`, not imported here: maybe no run uses them. With it, they are imported anyway.
    inspected = inspect_plugins(unshipped) if only is None else {n: _inspect_here(n) for n in unshipped}
    for name, found in inspected.items():
        if "error" in found:
            if only is None:
                warnings.warn(str(found["error"]), stacklevel=2)
                continue
            # `model=<name>` composes, and the run's first check (`registry.get`) is one line
            # naming the import error, not Hydra's "Could not find 'model/<name>'".
            node = {"name": name}
        else:
            node = {"name": name, **found["hparams"]}
            stored.append(name)
        # replace=True: storing again (each test, each call) replaces silently, as Hydra 1.5 requires.
        store.store(group="model", name=name, node=node, provider=discover()[name].distribution, replace=True)
    return stored
