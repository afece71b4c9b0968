"""A schedule config may name any torch schedule: the run hands over what it takes and steps it
per optimiser step (horizon in `total_steps`) or per epoch (torch's own schedules)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch
from torch.optim.lr_scheduler import ExponentialLR, OneCycleLR, ReduceLROnPlateau, StepLR

from zoo.errors import ZooError
from zoo.optim import Recipe, plateau, warmup_cosine
from zoo.train import train

SMALL = ["model=dnn", "optim=adamw", "dataset=synthetic", "dataset.params.n_rows=400"]
STEP_LR = "optim.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:0.5}"


def _configure(scheduler, *, monitor_mode: str = "min") -> dict:
    """What a run's model gets from `Recipe.configure`, for a one-parameter model of 40 steps."""
    model = SimpleNamespace(
        learning_rate=0.1, trainer=SimpleNamespace(estimated_stepping_batches=40, world_size=1)
    )
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.0}]
    recipe = Recipe(functools.partial(torch.optim.AdamW), scheduler, monitor_mode=monitor_mode)
    return recipe.configure(model, groups)["lr_scheduler"]


@pytest.mark.parametrize(
    ("scheduler", "kind", "interval"),
    [
        (functools.partial(warmup_cosine, warmup=0.1), torch.optim.lr_scheduler.LambdaLR, "step"),
        (functools.partial(OneCycleLR, max_lr=0.1), OneCycleLR, "step"),
        (functools.partial(StepLR, step_size=2, gamma=0.5), StepLR, "epoch"),
        (functools.partial(ExponentialLR, gamma=0.9), ExponentialLR, "epoch"),
        (functools.partial(plateau, patience=1), ReduceLROnPlateau, "epoch"),
    ],
)
def test_steps_schedules_count_steps_and_torch_schedules_count_epochs(scheduler, kind, interval):
    config = _configure(scheduler)
    assert isinstance(config["scheduler"], kind) and config["interval"] == interval
    assert ("monitor" in config) == (kind is ReduceLROnPlateau)


def test_torch_one_cycle_is_given_the_run_steps_unless_its_config_sets_them():
    assert _configure(functools.partial(OneCycleLR, max_lr=0.1))["scheduler"].total_steps == 40
    set_by_config = functools.partial(OneCycleLR, max_lr=0.1, total_steps=60)
    assert _configure(set_by_config)["scheduler"].total_steps == 60


def test_plateau_follows_the_direction_of_the_monitored_metric():
    assert _configure(functools.partial(plateau), monitor_mode="max")["scheduler"].mode == "max"
    assert _configure(functools.partial(plateau), monitor_mode="min")["scheduler"].mode == "min"


def test_a_torch_epoch_schedule_trains_and_changes_the_rate_each_epoch(tmp_path, make_cfg, monkeypatch):
    built = []
    configure = Recipe.configure

    def recording(self, model, groups):
        built.append(configure(self, model, groups))
        return built[-1]

    monkeypatch.setattr(Recipe, "configure", recording)
    result = train(make_cfg(*SMALL, "trainer.max_epochs=3", STEP_LR), tmp_path)
    assert result["test"]["auc"] == result["test"]["auc"]  # a finished run, not NaN
    optimizer = built[0]["optimizer"]
    # Three epochs of StepLR(step_size=1, gamma=0.5): halved once per epoch, not once per step.
    for group in optimizer.param_groups:
        assert group["lr"] == pytest.approx(group["initial_lr"] * 0.5**3)


def test_an_argument_the_schedule_does_not_take_is_one_clear_error(tmp_path, make_cfg):
    with pytest.raises(ZooError, match=r"optim\.scheduler\.gama: StepLR takes no argument 'gama'.*gamma"):
        train(make_cfg(*SMALL, STEP_LR, "+optim.scheduler.gama=0.5"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing written: a refused run leaves no directory
