"""Model plugins discovered through the `credit_zoo.models` entry-point group.

The entry-point name is the registry key and the Hydra config name (`model=<name>`). Discovery
reads entry-point metadata only; a plugin is imported when it is first used.
"""

from __future__ import annotations

import inspect
import logging
import re
import warnings
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from zoo.errors import ZooError

GROUP = "credit_zoo.models"
log = logging.getLogger(__name__)


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
    """Forget cached discovery and loaded classes (after installing a plugin, and in tests)."""
    _discover.cache_clear()
    _load.cache_clear()


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


def describe(name: str) -> dict[str, str]:
    """One row of `zoo models`: name, family, distribution and version, description (the model
    config's `description:`, else the first paragraph of the class docstring)."""
    info = discover()[name]
    try:
        cls = _load(name)
    except (ImportError, TypeError) as err:
        return {
            "name": name,
            "family": "broken",
            "distribution": f"{info.distribution} {info.version}",
            "description": (str(err).splitlines() or [""])[0],
        }
    return {
        "name": name,
        "family": str(getattr(cls, "family", "other")),
        "distribution": f"{info.distribution} {info.version}".strip(),
        "description": shipped_description(name) or docstring_summary(cls),
    }


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
    or slow third-party plugin cannot touch a run that does not use it)."""
    from pathlib import Path

    from hydra.core.config_store import ConfigStore

    shipped = {p.stem for p in (Path(config_dir) / "model").glob("*.yaml")}
    stored = []
    store = ConfigStore.instance()
    for name in discover():
        if name in shipped or (only is not None and name not in only):
            continue
        try:
            cls = _load(name)
        except (ImportError, TypeError) as err:
            warnings.warn(str(err), stacklevel=2)
            continue
        node = {"name": name, **default_hparams(cls)}
        # replace=True: storing again (each test, each call) replaces silently, as Hydra 1.5 requires.
        store.store(group="model", name=name, node=node, provider=discover()[name].distribution, replace=True)
        stored.append(name)
    return stored
