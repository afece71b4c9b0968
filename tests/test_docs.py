"""The docs' listings against the code, so that drift fails CI: the `zoo models` listing and the
built-in count, the contract table against `CONTRACT_CHECKS`, the `reason_method` strings against
what the models write, the docs' claim about KS and AUC on a small scorer, and which models ship
which numeric embedding."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from zoo import registry
from zoo.explain.contributions import contributions
from zoo.metrics import compute_metrics
from zoo.testing import CONTRACT_CHECKS, build, default_config, tiny_batch, tiny_spec, to_arrays

DOCS = Path(__file__).resolve().parents[1] / "docs"


def built_in_models() -> list[str]:
    return sorted(n for n, info in registry.discover().items() if info.distribution == registry.HOST)


def console_block(text: str, command: str) -> list[str]:
    """The output lines of `command` in the first ```console block that runs it (up to the next
    command or the block's end)."""
    block = re.search(rf"```console\n\$ {re.escape(command)}\n(.*?)(?:^\$ |```)", text, re.S | re.M)
    assert block, f"no console block runs {command!r}"
    return block.group(1).splitlines()


def test_the_getting_started_model_listing_is_every_built_in_model():
    lines = console_block((DOCS / "getting-started.md").read_text(), "zoo models")
    assert lines[0].split()[:3] == ["name", "family", "distribution"]
    listed = [line.split()[0] for line in lines[1:]]
    assert listed == built_in_models(), "run `zoo models` and paste its table into getting-started.md"
    text = (DOCS / "getting-started.md").read_text()
    assert f"These are the {len(listed)} built-in models" in text


def test_plugins_md_counts_the_built_ins_and_its_example_is_not_one_of_them():
    text = (DOCS / "plugins.md").read_text()
    assert f"The {len(built_in_models())} built-in\nmodels" in text
    entry_points = re.search(r'\[project\.entry-points\."credit_zoo\.models"\]\n(\w+) = "credit_zoo_', text)
    assert entry_points, "the worked example's entry point"
    example = entry_points.group(1)
    assert example not in registry.names(), f"the worked example {example!r} is a built-in's name"
    for line in console_block(text, "zoo models")[1:]:
        name = line.split()[0]
        assert name in {"...", example} or name in built_in_models(), line


def test_the_contract_table_lists_every_check():
    text = (DOCS / "plugins.md").read_text()
    table = text[text.index("| check | what it asserts |") :].split("\n\n")[0]
    documented = re.findall(r"^\| `(check_\w+)` \|", table, re.M)
    assert sorted(documented) == sorted(check.__name__ for check in CONTRACT_CHECKS)


def documented_reason_methods() -> dict[str, str]:
    """{models cell: reason_method cell} of the table in explanations.md."""
    text = (DOCS / "explanations.md").read_text()
    table = text[text.index("| models | method | baseline | `reason_method`") :].split("\n\n")[0]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    return {cells[0].lstrip("| "): cells[-1].rstrip(" |").strip("`") for cells in rows}


def test_the_documented_reason_methods_are_the_strings_the_models_write():
    from zoo.models.attention_rules import AttentionRules
    from zoo.models.boosting import SHAP

    documented = documented_reason_methods()
    spec = tiny_spec()
    arrays = to_arrays(tiny_batch(spec, 6, seed=0))
    reference = to_arrays(tiny_batch(spec, 10, seed=1))
    written = {}
    for cell, name in [("`lr`, `lr_cross`", "lr"), ("`wide_deep`, `wide_deep_cross`", "wide_deep")]:
        model = build(default_config(name), spec).eval()
        written[cell] = contributions(model, arrays, reference, n_reference=3).method
    dnn = build(default_config("dnn"), spec).eval()
    written["every other model"] = contributions(dnn, arrays, reference, n_reference=3).method
    written["`catboost`"] = SHAP
    assert sorted(documented) == sorted([*written, "`attention_rules`"])
    for cell, method in written.items():
        assert documented[cell].replace(" N ", " 3 ") == method, cell
    # attention_rules needs a fitted rule set; its method is a literal in field_contributions
    import inspect

    assert f'"{documented["`attention_rules`"]}"' in inspect.getsource(AttentionRules.field_contributions)


def test_a_scorer_can_have_an_auc_below_the_concave_bound_for_its_ks():
    # docs/models/afcc.md: 2 goods, 8 bads, 8 goods, 2 bads from the highest score down
    labels = np.array([0, 0] + [1] * 8 + [0] * 8 + [1, 1])
    probs = np.linspace(0.95, 0.05, 20)
    metrics = compute_metrics(probs, labels)
    assert metrics["auc"] == pytest.approx(0.64) and metrics["ks"] == pytest.approx(0.60)
    assert metrics["auc"] < (1 + metrics["ks"]) / 2


def test_training_md_lists_each_models_shipped_numeric_embedding():
    """The "Numeric embeddings" paragraph names which models ship piecewise-linear and which none."""
    text = (DOCS / "training.md").read_text()
    paragraph = " ".join(
        text[text.index("`piecewise_linear` (at most `dataset.numeric_bins`") :].split("\n\n")[0].split()
    )
    on_part, off_part = paragraph.split("The paper experiments")[0].split("`null` for", 1)
    listed_on = set(re.findall(r"`(\w+)`", on_part)) - {"piecewise_linear"}
    listed_off = set(re.findall(r"`(\w+)`", off_part))
    shipped = {name: default_config(name).get("numeric_embedding", "absent") for name in built_in_models()}
    assert listed_on == {n for n, kind in shipped.items() if kind == "piecewise_linear"}
    assert listed_off == {n for n, kind in shipped.items() if kind is None}
    assert f"for {len(listed_on)} of them" in paragraph
