"""The plugin registry against real entry points: fake distributions are dist-info folders on sys.path."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from zoo import cli, registry
from zoo.errors import ZooError
from zoo.models.linear import LogisticRegression
from zoo.models.mlp import DNN
from zoo.train import config_dir, train

BUILT_INS = [
    "afcc", "armnet", "autoint", "catboost", "cnn", "deepfm", "dnn", "dnn_cross", "dt", "fibinet", "fm",
    "gbdt", "hbn", "lr", "lr_cross", "lstm", "ncf", "resnet", "rf", "rnn", "sae", "vae", "wide_deep",
    "wide_deep_cross",
]  # fmt: skip

GOOD = '''
from zoo.models.linear import LogisticRegression


class Good(LogisticRegression):
    """A well-behaved fake plugin."""

    family = "fake"
'''

BROKEN = """
from pathlib import Path

Path(__file__).with_suffix(".imported").touch()  # evidence of the import attempt, which then fails
raise RuntimeError("boom at import")
"""

EXITS = """
import sys

sys.exit(3)  # a plugin that ends the process at import
"""

INTERRUPTED = """
raise KeyboardInterrupt
"""

NOT_A_MODEL = '''
import torch


class PlainClass:
    """Not a model at all."""


class TorchModule(torch.nn.Module):
    """A torch module, but not a LightningModule."""
'''

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """`install(dist, entry_points, modules) -> folder`: a fake installed distribution, as pip leaves it.

    Each gets `<dist>-<version>.dist-info/` (METADATA, entry_points.txt) and its modules in a
    folder of its own prepended to sys.path, where importlib.metadata finds it. Discovery
    caches, the `model` configs in Hydra's ConfigStore and the fake modules are reset afterwards.
    """
    store = ConfigStore.instance()
    # Only the `model` group: Hydra stores its own nodes on first use, which must survive.
    monkeypatch.setitem(store.repo, "model", dict(store.repo.get("model", {})))
    imported: list[str] = []

    def _install(dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> Path:
        site = tmp_path / f"site-{dist}"
        dist_info = site / f"{dist.replace('-', '_')}-0.1.0.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (dist_info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}")
        for module, source in (modules or {}).items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            imported.append(module)
        monkeypatch.syspath_prepend(str(site))
        return site

    registry.refresh()
    yield _install
    registry.refresh()
    for module in imported:
        sys.modules.pop(module, None)


def test_built_ins_are_listed_from_credit_zoo_itself():
    registry.refresh()
    assert set(BUILT_INS) <= set(registry.names())
    for name in BUILT_INS:
        assert registry.discover()[name].distribution == "credit-zoo"


def test_listing_does_not_import_plugins(install):
    site = install("zoo-broken", {"broken": "broken_plugin:Model"}, {"broken_plugin": BROKEN})
    imported = site / "broken_plugin.imported"
    assert "broken" in registry.names() and registry.discover()["broken"].value == "broken_plugin:Model"
    assert not imported.exists()
    row = registry.describe("broken")
    assert row["family"] == "broken" and "boom at import" in row["description"]
    assert row["distribution"] == "zoo-broken 0.1.0"
    assert imported.exists()
    with pytest.raises(ZooError, match=r"'broken' \(broken_plugin:Model, from zoo-broken\).*boom at import"):
        registry.get("broken")


def test_a_plugin_that_fails_to_import_is_a_warning_and_the_others_still_load(install):
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    install("zoo-broken", {"broken": "broken_plugin:Model"}, {"broken_plugin": BROKEN})
    with pytest.warns(UserWarning, match="'broken'.*zoo-broken.*failed to import"):
        loaded = registry.load_all()
    assert set(loaded) >= {*BUILT_INS, "good"} and "broken" not in loaded
    with pytest.warns(UserWarning, match="'broken'.*failed to import"):
        stored = registry.store_configs(config_dir())
    assert "good" in stored and "broken" not in stored
    assert not set(BUILT_INS) & set(stored)  # they ship YAML files in conf/model/


def test_zoo_models_lists_a_broken_plugin_beside_the_others(install, capsys):
    install("zoo-broken", {"broken": "broken_plugin:Model"}, {"broken_plugin": BROKEN})
    assert cli.main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) >= {*BUILT_INS, "broken"}
    assert "broken" in lines["broken"].split()[1] and "boom at import" in lines["broken"]


@pytest.mark.parametrize("target", ["PlainClass", "TorchModule"])
def test_a_plugin_that_is_not_a_lightning_module_is_rejected_by_name(install, target):
    install("zoo-odd", {"odd": f"odd_plugin:{target}"}, {"odd_plugin": NOT_A_MODEL})
    with pytest.raises(ZooError, match=rf"'odd' \(odd_plugin:{target}\) is not a LightningModule"):
        registry.get("odd")
    with pytest.warns(UserWarning, match="'odd'.*not a LightningModule"):
        assert "odd" not in registry.load_all()
    assert registry.describe("odd")["family"] == "broken"


def test_a_duplicate_name_warns_naming_both_distributions(install):
    install("zoo-twin-a", {"twin": "twin_a:Model"})
    install("zoo-twin-b", {"twin": "twin_b:Model"})
    with pytest.warns(UserWarning, match="'twin'") as caught:
        plugins = registry.discover()
    message = str(caught[0].message)
    assert "zoo-twin-a" in message and "zoo-twin-b" in message
    first = message.index("zoo-twin-a") < message.index("zoo-twin-b")
    kept = "zoo-twin-a" if first else "zoo-twin-b"
    assert plugins["twin"].distribution == kept and f"using {kept}'s" in message


def test_a_plugin_cannot_replace_a_built_in(install):
    install("zoo-shadow", {"lr": "shadow:Model"})
    with pytest.warns(UserWarning, match="'lr' is provided by both credit-zoo") as caught:
        plugins = registry.discover()
    assert "zoo-shadow" in str(caught[0].message) and "using credit-zoo's" in str(caught[0].message)
    assert plugins["lr"].distribution == "credit-zoo"
    assert registry.get("lr") is LogisticRegression


def test_discover_returns_a_copy():
    registry.refresh()
    registry.discover().pop("lr")
    assert "lr" in registry.discover()


def test_an_unknown_name_lists_the_installed_models():
    registry.refresh()
    with pytest.raises(ZooError, match="unknown model 'nope'; installed models: ") as caught:
        registry.get("nope")
    assert all(name in str(caught.value) for name in BUILT_INS)


def test_default_hparams_are_the_constructor_defaults():
    assert registry.default_hparams(LogisticRegression) == {
        "use_crosses": False,
        "l2": 1e-3,
        "learning_rate": 1e-2,
        "weight_decay": 0.0,
    }
    assert registry.default_hparams(DNN)["hidden"] == [256, 128, 64]  # a tuple becomes a list

    class NoDefault(LogisticRegression):
        def __init__(self, *, feature_spec, width: int, rate: float = 0.5) -> None: ...

    assert registry.default_hparams(NoDefault) == {"width": "???", "rate": 0.5}


#: Layout switches a model's config may set to what the suite chose: key -> the constructor's value.
SUITE_CHOSEN_LAYOUT = {
    "numeric_embedding": None,
    "first_order": "linear",
    "readout": "last",
    "slot_norm": "none",
    "normalization": "batch",
    "recurrent_init": "torch",
}


@pytest.mark.parametrize("name", BUILT_INS)
def test_shipped_model_yaml_matches_the_constructor_defaults(name):
    registry.refresh()
    shipped = OmegaConf.to_container(OmegaConf.load(config_dir() / "model" / f"{name}.yaml"))
    shipped.pop("defaults", None)  # Hydra's defaults list (e.g. the model's optimiser), not a hyperparameter
    shipped.pop("description", None)  # `zoo models`' line for this name, not a hyperparameter
    defaults = registry.default_hparams(registry.get(name))
    assert set(shipped) == {"name", *defaults} and shipped["name"] == name
    # A variant is the same class with one switch set in its config (crosses on; the LSTM cell)
    # and its own learning rates and widths where its paper or the suite gives them (lstm: 3e-3
    # and hidden 128; wide_deep_cross's wide rate: 1e-2), nothing else.
    found = registry.discover()
    shared = any(n != name and found[n].value == found[name].value for n in found)
    variant_keys = {"use_crosses", "cell", "learning_rate", "wide_learning_rate", "hidden_size"}
    allowed = variant_keys if shared else set()
    # A neural model's config takes the layout the benchmark suite chose for it (numeric embedding,
    # FM's linear term, the recurrent readout); the constructors keep the papers' layout, so
    # checkpoints saved without the setting load as they were saved.
    for key, papers in SUITE_CHOSEN_LAYOUT.items():
        if key in defaults:
            assert defaults[key] == papers
            allowed = allowed | {key}
    assert {k for k in defaults if shipped[k] != defaults[k]} <= allowed


def test_discovery_is_cached_until_refresh(install):
    before = registry.discover()
    install("zoo-late", {"late": "late_plugin:Model"})
    assert registry.discover() == before and "late" not in registry.names()
    registry.refresh()
    assert "late" in registry.names()


def test_an_unknown_model_in_hydra_lists_the_available_options(install):
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    registry.store_configs(config_dir())
    with (
        initialize_config_dir(config_dir=str(config_dir())),
        pytest.raises(MissingConfigException) as caught,
    ):
        compose("config", overrides=["model=nope"])
    message = str(caught.value)
    assert "Could not find 'model/nope'" in message and "Available options in 'model'" in message
    options = message.split("Available options in 'model':")[1].split("Config search path")[0].split()
    assert set(options) >= {*BUILT_INS, "good"}


def test_a_plugin_calling_sys_exit_at_import_is_a_broken_row_not_the_hosts_death(install, capsys):
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    install("zoo-exits", {"exits": "exits_plugin:Model"}, {"exits_plugin": EXITS})
    assert cli.main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) >= {*BUILT_INS, "good", "exits"}
    assert lines["exits"].split()[1] == "broken" and "zoo-exits" in lines["exits"]
    assert "SystemExit(3)" in lines["exits"]
    with pytest.raises(ZooError, match=r"'exits' \(exits_plugin:Model, from zoo-exits\).*SystemExit\(3\)"):
        registry.get("exits")
    with pytest.warns(UserWarning, match="'exits'.*SystemExit"):
        stored = registry.store_configs(config_dir())
    assert "good" in stored and "exits" not in stored


def test_training_another_model_works_beside_a_plugin_that_exits(install, make_cfg, tmp_path):
    install("zoo-exits", {"exits": "exits_plugin:Model"}, {"exits_plugin": EXITS})
    with pytest.warns(UserWarning, match="'exits'.*SystemExit"):
        cfg = make_cfg("model=lr", "dataset=synthetic", "dataset.params.n_rows=300")
    result = train(cfg, tmp_path / "run")
    assert result["model"] == "lr" and 0.0 <= result["val"]["auc"] <= 1.0


def test_ctrl_c_during_a_plugin_import_still_stops_the_host(install):
    install(
        "zoo-interrupted", {"interrupted": "interrupted_plugin:Model"}, {"interrupted_plugin": INTERRUPTED}
    )
    with pytest.raises(KeyboardInterrupt):
        registry.get("interrupted")


def test_storing_plugin_configs_again_does_not_warn(install):
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Hydra 1.4 warns on an unflagged replacement; 1.5 raises
        assert "good" in registry.store_configs(config_dir())
        assert "good" in registry.store_configs(config_dir())
    assert ConfigStore.instance().repo["model"]["good.yaml"].provider == "zoo-good"


@pytest.mark.parametrize(
    ("argv", "chosen"),
    [
        (["model=lr", "dataset=german"], {"lr"}),
        (["-m", "model=lr,good", "seed=0,1"], {"lr", "good"}),
        (["-m", "+model=choice(good, lr)"], {"lr", "good"}),
        (["dataset=german"], set()),
        (["experiment=afcc_table3"], None),
        (["-m", "hparams_search=lr"], None),
        (["model=glob(*)"], None),
    ],
)
def test_the_command_line_names_the_models_to_load(argv, chosen):
    assert registry.chosen_models(argv) == chosen


def test_zoo_train_imports_only_the_chosen_plugin(install):
    site = install("zoo-broken", {"broken": "broken_plugin:Model"}, {"broken_plugin": BROKEN})
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is never imported: no warning
        assert registry.store_configs(config_dir(), only={"good"}) == ["good"]
    assert not (site / "broken_plugin.imported").exists()
    assert "broken_plugin" not in sys.modules


def test_zoo_models_gives_each_name_its_own_whole_description(capsys):
    """Names that share a class (lr and lr_cross) have their own line; none is cut mid-sentence."""
    from zoo.cli import main

    registry.refresh()
    assert main(["models"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    found = registry.discover()
    for name in found:
        text = registry.describe(name)["description"]
        assert text and text in rows[name] and text.endswith((".", ")")), (name, text)
        twins = [n for n in found if n != name and found[n].value == found[name].value]
        assert all(registry.describe(twin)["description"] != text for twin in twins), (name, twins)
    assert "(LR+Cross)" in rows["lr_cross"] and "(LR+Cross)" not in rows["lr"]
    assert rows["attention_rules"].rstrip().endswith("like the other tree models.")


def test_a_plugin_that_hangs_at_import_is_a_broken_row_after_the_time_limit(install, capsys, monkeypatch):
    """The default session's check of bad case 4 (the CLI versions are in the slow session)."""
    from tests.test_plugin_faults import HANGS

    monkeypatch.setenv(registry.TIMEOUT_ENV, "3")
    install("zoo-good", {"good": "good_plugin:Good"}, {"good_plugin": GOOD})
    install("zoo-hangs", {"hangs": "hangs_plugin:Model"}, {"hangs_plugin": HANGS})
    assert cli.main(["models"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) >= {*BUILT_INS, "good", "hangs"}
    assert lines["hangs"].split()[1] == "broken" and "did not finish importing in 3 s" in lines["hangs"]
    assert lines["good"].split()[1] != "broken"
