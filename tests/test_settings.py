"""Every run setting is checked before a run writes anything: one `error:` line, exit 2, no leftovers."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from zoo.errors import ZooError
from zoo.settings import RunSettings, check_run_settings
from zoo.train import train


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed='abc'"),
        ("data.eval_batch_size=0", "data.eval_batch_size=0, expected a positive integer"),
        ("data.batch_size=-3", "data.batch_size=-3, expected a positive integer"),
        ("early_stopping.patience=-1", "early_stopping.patience=-1, expected an integer >= 0"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0, expected a positive integer"),
        ("+foo=1", "foo is not a setting of zoo-train"),
        ("+data.batchsize=32", "data.batchsize is not a setting of zoo-train"),
        ("data.n_folds=5 data.fold=5", "data.fold=5, expected 0 <= fold < n_folds=5"),
        ("data.n_folds=1", "data.n_folds=1, expected an integer >= 2"),
        ("calibration=sigmoid", "calibration='sigmoid'"),
        ("+logger.foo=1", "logger config: CSVLogger"),
    ],
)
def test_bad_settings_are_refused_before_any_work(make_cfg, tmp_path, override, message):
    cfg = make_cfg("model=lr", "logger=csv", *override.split())
    with pytest.raises(ZooError, match=None) as caught:
        train(cfg, tmp_path / "run")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_the_schema_covers_every_key_of_the_primary_config(make_cfg):
    cfg = make_cfg()
    schema_keys = set(OmegaConf.structured(RunSettings).keys())
    assert set(cfg.keys()) <= schema_keys
    assert set(cfg.data.keys()) <= set(OmegaConf.structured(RunSettings).data.keys())
    typed = check_run_settings(make_cfg("seed=7", "data.batch_size=64"))
    assert typed.seed == 7 and typed.data.batch_size == 64


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("override", ["seed=abc", "trainer=gpu", "+logger.foo=1", "trainer.max_epochs=0"])
def test_the_command_line_gives_one_error_line_exit_2_and_no_run_directory(
    tmp_path, zoo_train_here, override
):
    run_dir = tmp_path / "run"
    proc = zoo_train_here("model=lr", "logger=csv", override, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert not run_dir.exists()  # neither .hydra/ nor train.log is left behind
    if override == "trainer=gpu":
        assert "no usable CUDA device" in lines[0] and "trainer=cpu" in lines[0]
