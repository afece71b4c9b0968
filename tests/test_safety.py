"""Runs that cannot do harm: configs build only allowed classes, corrupt artifacts never load,
row ids stay exact, hyperparameters are never chosen on the test split."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.overrides import QUICK_EXPLAIN
from zoo import registry
from zoo.config_targets import CONFIG_TARGETS, build_from_config
from zoo.data.validate import resolve_target
from zoo.errors import ZooError
from zoo.manifest import MANIFEST_FILE, load_checkpoint, sha256_file
from zoo.outputs import CHECKPOINT_FILE, METRICS_FILE
from zoo.predict import main as predict_main
from zoo.run_checks import check_settings
from zoo.run_outputs import predict_split as predict
from zoo.train import config_dir, train

pytest_plugins = ("pytester",)

SMALL = ["dataset=synthetic", "dataset.params.n_rows=400"]


def _payloads(victim: Path, file: Path, marker: Path) -> list[str]:
    """Overrides that would delete `victim`, overwrite `file` and run a shell command creating `marker`."""
    return [
        f"+logger.x={{_target_:zoo.outputs.discard_run_dir,run_dir:'{victim}',before:[]}}",
        f"+logger.y={{_target_:zoo.outputs.write_text,path:'{file}',text:overwritten}}",
        f"+optim.optimizer.z={{_target_:os.system,_args_:['touch {marker}']}}",
    ]


@pytest.fixture
def targets(tmp_path: Path) -> tuple[Path, Path, Path]:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    file = tmp_path / "file.txt"
    file.write_text("original")
    return victim, file, tmp_path / "marker"


def _untouched(victim: Path, file: Path, marker: Path) -> None:
    assert (victim / "keep.txt").read_text() == "keep"
    assert file.read_text() == "original"
    assert not marker.exists()


# --- what a config may instantiate ----------------------------------------------------------


def test_the_cli_refuses_configs_that_call_project_or_system_functions(tmp_path, targets, zoo_train_here):
    proc = zoo_train_here(
        *SMALL, "trainer=fast", f"hydra.run.dir={tmp_path}/run", *_payloads(*targets), cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "logger.x._target_='zoo.outputs.discard_run_dir'" in errors[0]
    _untouched(*targets)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "key",
    [
        "+hydra.callbacks.x",
        "hydra.job_logging.handlers.file.class",
        "+hydra.hydra_logging.x",
        "hydra.sweeper._target_",
    ],
)
def test_hydra_keys_that_run_code_are_refused_in_one_line_before_anything(
    tmp_path, targets, zoo_train_here, key
):
    _, file, _ = targets
    payload = f"{key}={{_target_:zoo.outputs.write_text,path:'{file}',text:overwritten}}"
    proc = zoo_train_here(*SMALL, "trainer=fast", f"hydra.run.dir={tmp_path}/run", payload, cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-2000:]
    assert "cannot be set on the command line: it builds or runs code" in errors[0]
    assert "Traceback" not in proc.stderr
    _untouched(*targets)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_each_payload_is_refused_before_any_work(make_cfg, targets, index):
    payload = _payloads(*targets)[index]
    cfg = make_cfg(*SMALL, payload)
    target = payload.split("_target_:")[1].split(",")[0]
    with pytest.raises(ZooError, match=rf"_target_='{target}' is not something a config may build"):
        check_settings(cfg)
    _untouched(*targets)


def test_the_allowlist_holds_even_when_the_config_check_is_bypassed(monkeypatch, targets):
    """Defence in depth: Hydra's own allowlist is exactly CONFIG_TARGETS, whatever an outer
    context (hydra.main's) allows."""
    from hydra.utils import execution_whitelist as allow

    victim, file, marker = targets
    monkeypatch.setattr("zoo.config_targets.check_targets", lambda node, where: None)
    nested = {"_target_": "torch.optim.AdamW", "_partial_": True, "x": {"_target_": "zoo.outputs.write_text"}}
    nested["x"].update(path=str(file), text="overwritten")
    with allow(["zoo.*", "os.*"]), pytest.raises(ZooError, match="write_text"):
        build_from_config(nested, "optim.optimizer")
    payload = {"_target_": "zoo.outputs.discard_run_dir", "run_dir": str(victim), "before": []}
    with allow(["zoo.*"]), pytest.raises(ZooError, match="discard_run_dir"):
        build_from_config(payload, "logger")
    _untouched(victim, file, marker)


@pytest.mark.parametrize("group", ["optim", "logger"])
def test_every_shipped_optim_and_logger_config_is_allowed(make_cfg, group):
    names = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
    assert names
    for name in names:
        check_settings(make_cfg(f"{group}={name}"))  # raises on a target outside CONFIG_TARGETS
    assert "pytorch_lightning.loggers.CSVLogger" in CONFIG_TARGETS and "torch.optim.AdamW" in CONFIG_TARGETS
    assert not any(t.startswith(("zoo.outputs", "zoo.sweeps", "os.")) for t in CONFIG_TARGETS)


# --- corrupt artifacts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def catboost_run(tmp_path_factory) -> dict:
    """A finished catboost run (read-only: tests corrupt copies), and what training logged."""
    from hydra import compose, initialize_config_dir

    registry.store_configs(config_dir())
    with initialize_config_dir(config_dir=str(config_dir())):
        cfg = compose(
            "config",
            overrides=[
                "trainer=fast",
                "logger=none",
                *QUICK_EXPLAIN,
                "model=catboost",
                "model.iterations=20",
                *SMALL,
            ],
        )
    records: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    lightning = logging.getLogger("pytorch_lightning")
    before = lightning.level
    lightning.setLevel(logging.DEBUG)
    lightning.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_dir = tmp_path_factory.mktemp("catboost")
            train(cfg, run_dir)
    finally:
        lightning.removeHandler(handler)
        lightning.setLevel(before)
    return {"dir": run_dir, "log": records, "warnings": [str(w.message) for w in caught]}


@pytest.fixture
def run_copy(catboost_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(catboost_run["dir"], copy)
    return copy


def _predict_error(run_dir: Path, tmp_path: Path, capsys) -> str:
    source = tmp_path / "score.csv"
    pd.DataFrame({"a": [1]}).to_csv(source, index=False)
    assert predict_main([str(run_dir), str(source), "--out", str(tmp_path / "scores.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not (tmp_path / "scores.parquet").exists()
    return err[0]


def test_flipped_bytes_in_a_checkpoint_are_refused_by_zoo_predict(run_copy, tmp_path, capsys):
    checkpoint = run_copy / CHECKPOINT_FILE
    data = bytearray(checkpoint.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.choice(len(data), size=min(2000, len(data) // 2), replace=False):
        data[i] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    line = _predict_error(run_copy, tmp_path, capsys)
    assert str(checkpoint) in line and "corrupted" in line


def test_a_zero_byte_checkpoint_is_refused_by_zoo_predict_and_by_load_checkpoint(run_copy, tmp_path, capsys):
    checkpoint = run_copy / CHECKPOINT_FILE
    checkpoint.write_bytes(b"")
    line = _predict_error(run_copy, tmp_path, capsys)
    assert str(checkpoint) in line
    with pytest.raises(ZooError, match=r"best.ckpt.*empty \(0 bytes\)"):
        load_checkpoint(registry.get("catboost"), checkpoint)


def test_a_truncated_checkpoint_is_a_zoo_error_not_eof(run_copy):
    checkpoint = run_copy / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    with pytest.raises(ZooError, match=r"best.ckpt' could not be loaded"):
        load_checkpoint(registry.get("catboost"), checkpoint)


def test_altered_booster_bytes_inside_a_checkpoint_are_a_zoo_error(run_copy):
    from zoo.models.tree import CHECKPOINT_KEY

    checkpoint = run_copy / CHECKPOINT_FILE
    state = torch.load(checkpoint, weights_only=True)  # plain data only: no pickled objects
    state[CHECKPOINT_KEY] = state[CHECKPOINT_KEY][:200]
    torch.save(state, checkpoint)
    with pytest.raises(ZooError, match=r"could not be loaded: CatBoostModel: the checkpoint's fitted model"):
        load_checkpoint(registry.get("catboost"), checkpoint)


def test_a_missing_manifest_entry_and_bad_json_are_one_line_errors(run_copy, tmp_path, capsys):
    manifest_path = run_copy / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    del manifest["artifacts"][CHECKPOINT_FILE]
    manifest_path.write_text(json.dumps(manifest))
    assert "'checkpoints/best.ckpt' is not listed in" in _predict_error(run_copy, tmp_path, capsys)

    metrics = run_copy / METRICS_FILE
    metrics.write_text('{"threshold": 0.5,')  # cut short, with a digest that matches
    manifest["artifacts"][METRICS_FILE] = sha256_file(metrics)
    manifest_path.write_text(json.dumps(manifest))
    line = _predict_error(run_copy, tmp_path, capsys)
    assert str(metrics) in line and "is not valid JSON" in line


def test_training_catboost_never_unpickles_freely(catboost_run):
    assert not [m for m in catboost_run["log"] if "weights_only" in m]
    assert not [m for m in catboost_run["warnings"] if "weights_only" in m]
    state = torch.load(catboost_run["dir"] / CHECKPOINT_FILE, weights_only=True)
    assert "state_dict" in state


# --- review items ---------------------------------------------------------------------------


class _StubModel(torch.nn.Module):
    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        return {"prob": torch.full((len(batch["row"]),), 0.25, dtype=torch.float64), **batch}


class _StubData:
    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def loader(self, split: str) -> list[dict]:
        return [{"row": part, "y": torch.zeros(len(part))} for part in self.rows.split(2)]


def test_predict_keeps_row_ids_above_2_to_the_24_exact():
    rows = torch.tensor([2**24 + 1, 2**24 + 3, 2**31 + 7, 5], dtype=torch.int64)
    out = predict(_StubModel(), _StubData(rows), "test")  # type: ignore[arg-type]
    assert out["row"].dtype == np.int64
    np.testing.assert_array_equal(out["row"], rows.numpy())
    assert out["prob"].dtype == np.float32


def test_choosing_hyperparameters_on_the_test_split_needs_an_explicit_yes(make_cfg):
    with pytest.raises(
        ZooError, match=r"optimized_metric='test/auc' would choose hyperparameters on the test"
    ):
        check_settings(make_cfg("optimized_metric=test/auc"))
    check_settings(make_cfg("optimized_metric=test/auc", "allow_test_selection=true"))
    check_settings(make_cfg("optimized_metric=val/auc"))


def test_a_one_valued_target_names_the_column_and_the_real_remedy():
    frame = pd.DataFrame({"x": [1, 2, 3], "status": ["bad", "bad", "bad"]})
    with pytest.raises(ZooError) as caught:
        resolve_target(frame, target="status", bad_value="bad")
    message = str(caught.value)
    assert "target 'status' holds one value ('bad') in all 3 rows" in message
    assert "good_value" not in message  # keeping some classes cannot help: there is one
    two = pd.DataFrame({"x": [1, 2, 3], "status": ["bad", "good", "bad"]})
    with pytest.raises(ZooError, match=r"every kept row is bad \(bad_value=\['bad', 'good'\]"):
        resolve_target(two, target="status", bad_value=["bad", "good"])


def test_gpu_tests_skip_with_a_reason_without_cuda_under_plain_pytest(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    gpu: needs a CUDA device\n")
    pytester.makepyfile(
        """
        import pytest
        import torch

        @pytest.mark.gpu
        def test_needs_cuda():
            assert torch.cuda.is_available()
        """
    )
    result = pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*needs a CUDA device (torch.cuda.is_available() is False)*"])
        explicit = pytester.runpytest_inprocess("-m", "gpu", "-p", "no:cacheprovider")
        explicit.assert_outcomes(failed=1)  # `nox -s gpu` asked for them: a missing GPU is loud
