"""benchmarks/suite.py's bookkeeping: the tables that chose the defaults, read from result rows.

The suite trains nothing here: its rows are written by hand, so every figure below is known.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
import suite  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


def _row(
    dataset: str, model: str, variant: str, fold: int, auc: float, note: str = "", seed: int = 0
) -> dict:
    return {"dataset": dataset, "model": model, "variant": variant, "fold": fold, "n_folds": 5,
            "seed": seed, "auc": auc, "brier": 0.1, "logloss": 0.3, "seconds": 1.0, "note": note}  # fmt: skip


def _rows() -> list[dict]:
    """Two sets, two folds: `dnn` 0.80/0.70, `lr` 0.78/0.71, CatBoost 0.79/0.74 (fold means)."""
    aucs = {
        ("german", "dnn"): (0.79, 0.81),
        ("german", "lr"): (0.77, 0.79),
        ("german", "catboost_direct"): (0.78, 0.80),
        ("credit_data", "dnn"): (0.69, 0.71),
        ("credit_data", "lr"): (0.70, 0.72),
        ("credit_data", "catboost_direct"): (0.73, 0.75),
    }
    return [
        _row(ds, m, "peer" if m == "catboost_direct" else "v", k, auc)
        for (ds, m), folds in aucs.items()
        for k, auc in enumerate(folds)
    ]


def test_summary_keeps_the_last_result_that_did_not_fail() -> None:
    rows = _rows() + [
        _row("german", "dnn", "v", 0, float("nan"), note="failed: RuntimeError: boom"),
        _row("german", "dnn", "v", 1, 0.85),  # a rerun of fold 1 replaces 0.81
    ]
    stats = suite.summary(rows)
    german = stats.loc[("dnn@v", "german")]
    assert german["n"] == 2  # the failed line is not a third fold
    assert german["auc"] == pytest.approx((0.79 + 0.85) / 2)
    assert stats.loc[("catboost_direct", "german")]["auc"] == pytest.approx(0.79)  # peers keep their name


def test_tables_rank_entries_and_give_gaps_to_catboost_and_lr() -> None:
    text = suite.tables(_rows())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("entry"))
    assert header.index("german") < header.index("credit_data")  # the suite's order, not alphabetical
    table = [line for line in lines if "|" in line and not line.startswith("entry")]
    # Mean rank over the two sets: CatBoost 2nd then 1st (1.5), dnn 1st then 3rd (2.0), lr 3rd, 2nd (2.5).
    assert [line.split()[0] for line in table] == ["catboost_direct", "dnn@v", "lr@v"]
    assert table[0].endswith("1.5") and table[1].endswith("2.0") and table[2].endswith("2.5")
    assert "0.800±0.014" in table[1]  # german: mean and sample std of 0.79 and 0.81
    # dnn against lr@v: +0.02 on german, -0.01 on credit_data; one set within 0.005.
    gaps = text.split("AUC gap to lr@v")[1]
    assert "dnn@v" in gaps and "+0.0050  credit_data (-0.0100)  1/2" in gaps
    against_catboost = text.split("AUC gap to catboost_direct")[1].split("AUC gap to")[0]
    assert "dnn@v" in against_catboost and "-0.0150  credit_data (-0.0400)  1/2" in against_catboost


def test_compare_gives_each_models_change_between_two_variants() -> None:
    rows = _rows() + [
        _row(ds, "dnn", "w", k, auc + 0.01)
        for ds, auc in (("german", 0.80), ("credit_data", 0.70))
        for k in (0, 1)
    ]
    text = suite.compare(rows, "v", "w")
    line = next(line for line in text.splitlines() if line.strip().startswith("dnn"))
    # german 0.800 -> 0.810 (+0.010), credit_data 0.700 -> 0.710 (+0.010)
    assert "mean +0.0100" in line and "worst +0.0100" in line and "2 sets" in line
    assert not any(line.strip().startswith("lr ") for line in text.splitlines())  # no lr@w: no line


def test_result_rows_are_appended_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "suite.csv"
    for row in _rows()[:3]:
        suite.append_row(out, row)
    back = suite.read_rows([out, tmp_path / "missing.csv"])  # a shard that wrote nothing is no error
    assert [r["model"] for r in back] == ["dnn", "dnn", "lr"]
    assert out.read_text().count("dataset,model") == 1  # one header for the appended lines


def test_model_overrides_apply_only_to_models_with_the_key() -> None:
    extra = ["model.numeric_embedding=null", "dataset.numeric_bins=16"]
    assert suite.model_overrides("dnn", extra) == extra
    assert suite.model_overrides("lr", extra) == ["dataset.numeric_bins=16"]  # lr has no embedding


def test_a_kept_run_with_other_settings_is_named_not_reused(tmp_path: Path) -> None:
    cfg = OmegaConf.create({"seed": 0, "dataset": {"numeric_bins": 32}, "model": {"name": "dnn"}})
    OmegaConf.save(cfg, tmp_path / suite.CONFIG_FILE)
    assert suite.kept_settings_changed(tmp_path, cfg) is None
    now = OmegaConf.merge(cfg, {"dataset": {"numeric_bins": 16}})
    assert suite.kept_settings_changed(tmp_path, now) == "dataset.numeric_bins: 32 != 16"
    extra = OmegaConf.merge(cfg, {"model": {"dropout": 0.1}})  # a key the kept run did not have
    assert suite.kept_settings_changed(tmp_path, extra) == "model.dropout: None != 0.1"


def test_summary_pools_the_folds_of_every_seed() -> None:
    rows = _rows() + [_row("german", "dnn", "v", k, 0.70, seed=1) for k in (0, 1)]
    german = suite.summary(rows).loc[("dnn@v", "german")]
    assert german["n"] == 4  # seed 1's folds 0 and 1 are other rows than seed 0's, not reruns
    assert german["auc"] == pytest.approx((0.79 + 0.81 + 0.70 + 0.70) / 4)


def test_a_seeds_results_do_not_stand_for_another_seeds(tmp_path: Path, monkeypatch) -> None:
    """run() skips an entry only when the CSV has it for the same seed."""
    trained: list[tuple[str, int, int]] = []

    def fake_zoo(model, dataset, fold, n_folds, k, seed, extra, keep=None):
        trained.append((model, seed, k))
        return {"auc": 0.7, "brier": 0.1, "logloss": 0.3}, "epochs=1"

    monkeypatch.setattr(suite, "run_zoo", fake_zoo)
    monkeypatch.setattr(suite.parity, "build_fold", lambda *args: object())
    out = tmp_path / "suite.csv"
    suite.append_row(out, _row("german", "dnn", "v", 0, 0.79))  # seed 0, fold 0 already there

    def run(seed: int) -> None:
        argv = ["--datasets", "german", "--models", "dnn", "--variant", "v", "--folds", "1"]
        suite.run(suite.parse_args([*argv, "--seed", str(seed), "--out", str(out)]))

    run(0)
    assert trained == []  # done
    run(1)
    assert trained == [("dnn", 1, 0)]  # seed 1 is a new split: trained
    run(1)
    assert trained == [("dnn", 1, 0)]  # and now done
    assert sorted(int(r["seed"]) for r in suite.read_rows([out])) == [0, 1]


def test_a_line_cut_short_by_a_kill_is_run_again(tmp_path: Path, monkeypatch) -> None:
    trained: list[int] = []

    def fake_zoo(model, dataset, fold, n_folds, k, seed, extra, keep=None):
        trained.append(k)
        return {"auc": 0.7, "brier": 0.1, "logloss": 0.3}, "epochs=1"

    monkeypatch.setattr(suite, "run_zoo", fake_zoo)
    monkeypatch.setattr(suite.parity, "build_fold", lambda *args: object())
    out = tmp_path / "suite.csv"
    suite.append_row(out, _row("german", "dnn", "v", 0, 0.79))
    with out.open("a") as handle:
        handle.write("german,dnn,v,1,5,")  # fold 1's line, cut off before its seed
    argv = ["--datasets", "german", "--models", "dnn", "--variant", "v", "--folds", "2", "--out", str(out)]
    suite.run(suite.parse_args(argv))
    assert trained == [1]  # fold 0 was whole: done; fold 1 is trained again
    # Its new line starts on a line of its own, so it reads back whole and is done next time.
    assert [(r["fold"], r["auc"]) for r in suite.read_rows([out]) if suite._whole(r)] == [
        ("0", "0.79"),
        ("1", "0.7"),
    ]
    suite.run(suite.parse_args(argv))
    assert trained == [1]


def test_pytabkit_peers_with_another_validation_metric_are_entries_of_their_own(
    tmp_path: Path, monkeypatch
) -> None:
    """--pytabkit-val-metric reaches RealMLP/TabM and labels their rows; other peers stay `peer`."""
    called: list[tuple[str, str | None]] = []

    def fake_pytabkit(name, fold, seed, threads, val_metric):
        called.append((name, val_metric))
        return [0.2, 0.8]

    monkeypatch.setattr(suite.parity, "pytabkit_model", fake_pytabkit)
    monkeypatch.setattr(suite.parity, "build_fold", lambda *args: type("F", (), {"y": {"test": [0, 1]}})())
    monkeypatch.setattr(suite, "sklearn_lr_quantile", lambda fold: [0.3, 0.6])
    out = tmp_path / "suite.csv"
    argv = ["--datasets", "german", "--models", "tabm_d", "sklearn_lr_quantile", "--folds", "1"]
    argv += ["--out", str(out)]
    suite.run(suite.parse_args([*argv, "--pytabkit-val-metric", "cross_entropy"]))
    suite.run(suite.parse_args(argv))  # the default metric: a new entry, not "done"
    assert called == [("tabm_d", "cross_entropy"), ("tabm_d", None)]
    rows = suite.read_rows([out])
    assert [(r["model"], r["variant"]) for r in rows] == [
        ("tabm_d", "val_cross_entropy"),
        ("sklearn_lr_quantile", "peer"),
        ("tabm_d", "peer"),
    ]
    assert set(suite.summary(rows).index.get_level_values("entry")) == {
        "tabm_d@val_cross_entropy",
        "tabm_d",
        "sklearn_lr_quantile",
    }


def test_an_unknown_pytabkit_metric_is_refused_before_any_fold(monkeypatch, capsys) -> None:
    """A misspelt --pytabkit-val-metric stops at the command line in one line, not after an epoch
    of every fold. pytabkit's own check is stood in for, so this runs without the bench extra."""
    import types

    def apply(y_pred, y, name):
        if name not in ("class_error", "1-auc_ovr"):
            raise ValueError(f"Unknown metric {name}")

    fake = types.ModuleType("pytabkit.models.training.metrics")
    fake.Metrics = types.SimpleNamespace(apply=apply)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pytabkit.models.training.metrics", fake)
    assert suite.parse_args(["--pytabkit-val-metric", "1-auc_ovr"]).pytabkit_val_metric == "1-auc_ovr"
    with pytest.raises(SystemExit):
        suite.parse_args(["--pytabkit-val-metric", "1-auc"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(
        "--pytabkit-val-metric='1-auc', expected a pytabkit metric name such as 1-auc_ovr or brier"
    )
