"""Training across processes (DDP on CPU) and on a GPU; the GPU tests run in `nox -s gpu`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch

from tests.overrides import QUICK_EXPLAIN
from zoo.data.datamodule import CreditDataModule
from zoo.models.mlp import DNN
from zoo.train import train

GERMAN = {"name": "german", "source": "bundled", "file": "german_credit.csv", "target": "creditability"}
NEURAL = ["lr", "dnn", "lr_cross", "dnn_cross", "wide_deep", "wide_deep_cross"]


def test_ddp_on_two_cpu_processes_trains_and_scores_once(tmp_path):
    # `lr` keeps no cross table (DDP rejects parameters without gradients), and the test
    # metrics are computed by rank 0 alone after rank 1 has left (no cross-process sync).
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.train",
            "model=lr",
            "optim=adamw",  # L-BFGS is single-process (its line search would differ per rank)
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_epochs=2",
            "logger=none",
            *QUICK_EXPLAIN,
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((run_dir / "metrics.json").read_text())
    assert "predictions.parquet" in json.loads((run_dir / "manifest.json").read_text())["artifacts"]
    assert result["rows"] == {"train": 600, "val": 200, "test": 200}
    assert 0.5 < result["test"]["auc"] <= 1.0 and math.isfinite(result["test"]["logloss"])
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()


class _BatchDevices(pl.Callback):
    def __init__(self) -> None:
        self.devices: set[str] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.devices.update(t.device.type for t in batch.values())


@pytest.mark.gpu
def test_batches_are_served_from_gpu_memory():
    assert torch.cuda.is_available(), "the gpu session needs a CUDA device"
    dm = CreditDataModule({**GERMAN, "bad_value": "bad"}, batch_size=64, seed=0)
    model = DNN(feature_spec=dm.feature_spec)
    seen = _BatchDevices()
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        max_epochs=1,
        callbacks=[seen],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(model, datamodule=dm)
    assert seen.devices == {"cuda"}
    assert all(t.is_cuda for split in dm._tensors.values() for t in split.values())


@pytest.mark.gpu
@pytest.mark.parametrize("name", NEURAL)
def test_each_neural_model_trains_on_the_gpu(tmp_path, make_cfg, name):
    assert torch.cuda.is_available(), "the gpu session needs a CUDA device"
    cfg = make_cfg(f"model={name}", "trainer=gpu", "trainer.max_epochs=3")
    result = train(cfg, tmp_path / name)
    assert 0.5 < result["test"]["auc"] <= 1.0
    assert (tmp_path / name / "predictions.parquet").is_file()
