"""Search spaces of the Optuna sweeps (issue 11): `conf/hparams_search/<model>.yaml` for every
built-in model, over keys its composed config has, in the sweeper's own syntax, containing the
model's defaults. Composition only, no training (the sweeps themselves run in their own tests)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from zoo import registry
from zoo.models.tree import TreeModel
from zoo.sweeps import register_resolvers
from zoo.train import config_dir

SEARCH_DIR = config_dir() / "hparams_search"
#: Shared sweeper settings, not a model's search space.
SHARED = {"_optuna"}
#: Models shipped by credit-zoo; a plugin package ships its own search space.
BUILT_IN = sorted(name for name, info in registry.discover().items() if info.distribution == registry.HOST)
#: Choices that mix types on purpose: scikit-learn's max_features takes a rule name or a share.
MIXED_TYPES = {("rf", "model.max_features")}
#: Where a search space may point: the model, the data loaders, the optimiser, the dataset.
RUN_SETTINGS = ("model", "data", "optim", "dataset")
#: Stands for "no such key" (a key may hold null).
ABSENT = object()


@cache
def composed(name: str) -> DictConfig:
    """The primary config with `hparams_search=<name>`, Hydra's node included (the sweeper's params)."""
    registry.store_configs(config_dir())
    register_resolvers()  # the `zoo.*` resolvers of _optuna.yaml, as zoo-train registers them
    with initialize_config_dir(config_dir=str(config_dir())):
        overrides = ["trainer=fast", "logger=none", f"hparams_search={name}"]
        return compose("config", overrides=overrides, return_hydra_config=True)


def search_space(name: str) -> dict[str, str]:
    params = composed(name).hydra.sweeper.params
    assert params, f"hparams_search={name}: hydra.sweeper.params is empty"
    return {str(k): str(v) for k, v in params.items()}


def distributions_of(name: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The sweeper's own reading: Optuna distributions, fixed values, fixed overrides."""
    return create_params_from_overrides([f"{k}={v}" for k, v in search_space(name).items()])


def parsed_value(key: str, choice: Any) -> Any:
    """What a trial's override `key=choice` sets, exactly as the sweeper writes it (`f"{k}={v}"`):
    a list choice is encoded as the string "[64,32]", a quoted "null" as the string null."""
    return OverridesParser.create().parse_override(f"{key}={choice}").value()


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def same_kind(a: Any, b: Any) -> bool:
    """Both numbers (not booleans), or both of one type."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return True
    return type(a) is type(b)


def test_every_built_in_model_has_a_search_space():
    files = {p.stem for p in SEARCH_DIR.glob("*.yaml")} - SHARED
    assert len(BUILT_IN) >= 20, f"registry lists {BUILT_IN}, expected the zoo's built-in models"
    assert sorted(set(BUILT_IN) - files) == [], "models without conf/hparams_search/<model>.yaml"
    assert sorted(files - set(registry.names())) == [], "search spaces naming no registered model"


@pytest.mark.parametrize("name", BUILT_IN)
def test_search_space_selects_its_model(name):
    raw = OmegaConf.to_container(OmegaConf.load(SEARCH_DIR / f"{name}.yaml"))
    assert isinstance(raw, dict)
    assert raw["defaults"] == ["_optuna", {"override /model": name}]
    cfg = composed(name)
    assert cfg.model.name == name
    assert cfg.hydra.runtime.choices.model == name
    assert cfg.hydra.sweeper.direction == "maximize"


@pytest.mark.parametrize("name", BUILT_IN)
def test_search_space_keys_exist_in_the_composed_config(name):
    cfg = composed(name)
    for key in search_space(name):
        assert key.split(".")[0] in RUN_SETTINGS, f"{name}: {key} is not a run setting"
        assert OmegaConf.select(cfg, key, default=ABSENT) is not ABSENT, f"{name}: {key} is not in the config"


@pytest.mark.parametrize("name", BUILT_IN)
def test_search_space_parses_and_holds_the_defaults(name):
    cfg = composed(name)
    params = search_space(name)
    distributions, fixed, fixed_overrides = distributions_of(name)
    assert fixed == {} and fixed_overrides == [], f"{name}: entries that are not sweeps: {fixed}"
    assert sorted(distributions) == sorted(params)
    for key, dist in distributions.items():
        default = OmegaConf.select(cfg, key)
        if isinstance(default, DictConfig) or OmegaConf.is_list(default):
            default = OmegaConf.to_container(default)
        where = f"{name}: {key}={params[key]} (default {default!r})"
        if isinstance(dist, CategoricalDistribution):
            values = [parsed_value(key, c) for c in dist.choices]
            assert any(same_value(v, default) for v in values), f"{where}: the default is not a choice"
            if (name, key) not in MIXED_TYPES:
                odd = [v for v in values if None not in (v, default) and not same_kind(v, default)]
                assert odd == [], f"{where}: choices {odd} are not of the default's type"
        elif isinstance(dist, IntDistribution):
            assert isinstance(default, int) and not isinstance(default, bool), f"{where}: not an integer knob"
            assert dist.low <= default <= dist.high and (default - dist.low) % dist.step == 0, where
        else:
            assert isinstance(dist, FloatDistribution)
            assert isinstance(default, (int, float)) and not isinstance(default, bool), where
            assert dist.low <= default <= dist.high, f"{where}: the default is outside the interval"


@pytest.mark.parametrize("name", BUILT_IN)
def test_search_space_covers_the_training_knobs(name):
    """Learning rate on a log scale wherever the model has one its optimiser uses (not L-BFGS,
    which finds its own steps), weight decay wherever the optimiser applies it (AdamW), batch size
    wherever training goes in mini-batches."""
    cfg = composed(name)
    params = search_space(name)
    distributions = distributions_of(name)[0]
    if "learning_rate" in cfg.model and not cfg.optim.full_batch:
        dist = distributions.get("model.learning_rate")
        assert isinstance(dist, FloatDistribution) and dist.log, f"{name}: learning rate not on a log scale"
    if "weight_decay" in cfg.model and cfg.optim.optimizer._target_ == "torch.optim.AdamW":
        assert "model.weight_decay" in params, f"{name}: AdamW's weight decay is not searched"
    tree_model = issubclass(registry.get(name), TreeModel)
    if not tree_model and not cfg.optim.full_batch:
        assert "data.batch_size" in params, f"{name}: trained in mini-batches, batch size not searched"
    if tree_model:
        assert "data.batch_size" not in params, f"{name}: fitted once, data.batch_size does nothing"


def test_full_batch_lbfgs_models_tune_what_lbfgs_uses():
    """L-BFGS sets its own steps by line search on the whole training split: a learning rate or a
    batch size in its search space would be trials spent on a knob that changes nothing."""
    lbfgs = [name for name in BUILT_IN if composed(name).optim.get("full_batch")]
    assert {"lr", "lr_cross"} <= set(lbfgs), lbfgs
    for name in lbfgs:
        space = search_space(name)
        assert not {"model.learning_rate", "data.batch_size", "optim.scheduler"} & set(space), (name, space)
        assert "model.l2" in space, name
