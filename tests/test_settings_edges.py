"""Settings at the edges of numbers and names: one line naming the setting, before any work; and
every neural model trains on batches of one row."""

from __future__ import annotations

import pytest
import torch

from zoo import registry
from zoo.errors import ZooError
from zoo.models.tree import TreeModel
from zoo.settings import check_run_settings
from zoo.testing import build, default_config, planted_batch, tiny_spec, total_loss

LONG_NAME = "x" * 300


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=dnn", "model.learning_rate=nan"], "model.learning_rate=nan, expected a finite number > 0"),
        (["model=dnn", "model.learning_rate=inf"], "model.learning_rate=inf, expected a finite number > 0"),
        (["model=lr", "model.learning_rate=-0.1"], "model.learning_rate=-0.1, expected a finite number > 0"),
        (["model=dnn", "model.dropout=nan"], "model.dropout=nan, expected a finite number"),
        (["seed=-1"], "seed=-1, expected an integer from 0 to 4294967295"),
        ([f"seed={2**64}"], f"seed={2**64}, expected an integer from 0 to 4294967295"),
        (["data.split_seed=-5"], "data.split_seed=-5, expected an integer from 0 to 4294967295"),
        ([f"dataset.name={LONG_NAME}"], "(300 characters), expected 1 to 100 characters"),
        (["dataset.name=a/b"], "dataset.name='a/b', expected a name without '/'"),
    ],
)
def test_an_edge_value_is_one_line_naming_the_setting(make_cfg, overrides, message):
    with pytest.raises(ZooError) as caught:
        check_run_settings(make_cfg(*overrides))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_largest_seed_is_accepted(make_cfg):
    assert check_run_settings(make_cfg(f"seed={2**32 - 1}")).seed == 2**32 - 1


@pytest.mark.parametrize(
    "override",
    ["model.learning_rate=inf", "seed=-1", f"dataset.name={LONG_NAME}"],
    ids=["inf", "seed", "name"],
)
def test_the_command_line_says_so_in_one_line_exit_2(tmp_path, zoo_train_here, override):
    proc = zoo_train_here(
        "model=dnn", "logger=none", override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert override.split("=")[0] in lines[0]


NEURAL = [n for n in registry.names() if not issubclass(registry.get(n), TreeModel)]


@pytest.mark.parametrize("name", NEURAL)
def test_every_neural_model_trains_on_a_batch_of_one_row(name):
    """Batch statistics of one row are undefined: BatchNorm layers (zoo.nn.OneRowBatchNorm1d) then
    use their running statistics, so `data.batch_size=1` and a ragged last batch of one row train."""
    spec = tiny_spec()
    model = build(default_config(name), spec).train()
    batch = planted_batch(spec, 1, seed=0)
    loss = total_loss(model.loss(batch, model(batch)))
    loss.backward()
    assert torch.isfinite(loss)
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_zoo_train_armnet_with_batch_size_1(make_cfg, tmp_path):
    from zoo.train import train

    cfg = make_cfg(
        "model=armnet",
        "data.batch_size=1",
        "dataset=synthetic",
        "dataset.params.n_rows=300",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=20",
    )
    result = train(cfg, tmp_path / "run")
    assert result["model"] == "armnet" and 0.0 <= result["val"]["auc"] <= 1.0
