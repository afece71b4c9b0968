"""Leaderboard: collecting run dirs, summarising over seeds, and the md/csv/png files and CLI."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from zoo import leaderboard
from zoo.errors import ZooError
from zoo.leaderboard import (
    collect_runs,
    format_markdown,
    main,
    plot_bars,
    summarise,
    write_leaderboard,
)

METRIC_NAMES = ["auc", "accuracy", "ks", "gmean", "precision", "recall", "f1", "f1_macro"]
METRIC_NAMES += ["brier", "logloss", "ece"]
MODELS = ["lr", "dnn"]
DATASETS = ["german", "taiwan"]
SEEDS = [0, 1, 2]
# Test AUC per (dataset, model) before the per-seed offset: dnn wins on german, lr on taiwan.
BASE_AUC = {("german", "lr"): 0.78, ("german", "dnn"): 0.80, ("taiwan", "lr"): 0.72}
BASE_AUC[("taiwan", "dnn")] = 0.70
SEED_OFFSET = [0.0, 0.013, -0.021]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def split_metrics(auc: float) -> dict[str, float]:
    """Every metric as a simple function of auc, so expectations can be computed from it."""
    return {
        "auc": auc,
        "accuracy": auc - 0.03,
        "ks": 2 * auc - 1.1,
        "gmean": auc - 0.08,
        "precision": auc - 0.18,
        "recall": auc - 0.28,
        "f1": auc - 0.23,
        "f1_macro": auc - 0.1,
        "brier": 0.4 - auc / 3,
        "logloss": 1.3 - auc,
        "ece": 0.9 - auc,
    }


def auc_for(dataset: str, model: str, seed: int) -> float:
    return BASE_AUC[(dataset, model)] + SEED_OFFSET[seed]


def metrics_json(dataset: str, model: str, seed: int, **extra) -> dict:
    auc = auc_for(dataset, model, seed)
    return {
        "model": model,
        "dataset": dataset,
        "seed": seed,
        "experiment": None,
        "threshold": 0.5,
        "threshold_method": "fixed",
        "fit_seconds": 1.0 + seed,
        "rows": {"train": 600, "val": 200, "test": 200},
        "val": split_metrics(auc + 0.01),
        "test": split_metrics(auc),
        **extra,
    }


def write_run(run_dir: Path, payload: dict | str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


@pytest.fixture
def multirun(tmp_path: Path) -> Path:
    """2 datasets x 2 models x 3 seeds, one Hydra multirun time-stamp dir per dataset."""
    root = tmp_path / "multirun"
    for d, dataset in enumerate(DATASETS):
        job = 0
        for model in MODELS:
            for seed in SEEDS:
                run_dir = root / "2026-11-22" / f"1{d}-00-00" / str(job)
                write_run(run_dir, metrics_json(dataset, model, seed))
                job += 1
    return root


def expected(dataset: str, model: str, metric: str) -> tuple[float, float]:
    values = [split_metrics(auc_for(dataset, model, s))[metric] for s in SEEDS]
    return float(np.mean(values)), float(np.std(values, ddof=1))


def test_collect_runs_gives_one_flat_row_per_run(multirun: Path) -> None:
    runs = collect_runs(multirun)

    assert len(runs) == len(MODELS) * len(DATASETS) * len(SEEDS)
    for column in ["model", "dataset", "seed", "fit_seconds", "threshold", "run_dir"]:
        assert column in runs.columns
    for name in METRIC_NAMES:
        assert f"test/{name}" in runs.columns and f"val/{name}" in runs.columns
    row = runs[(runs.dataset == "taiwan") & (runs.model == "dnn") & (runs.seed == 1)].iloc[0]
    assert row["test/auc"] == pytest.approx(0.70 + 0.013)
    assert row["val/auc"] == pytest.approx(0.70 + 0.013 + 0.01)
    assert row["fit_seconds"] == 2.0
    assert (Path(row["run_dir"]) / "metrics.json").is_file()


def test_summarise_means_and_sample_stds_match_numpy(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc", "ks", "brier"])

    assert len(summary) == 4
    assert (summary["n_seeds"] == 3).all()
    for row in summary.to_dict("records"):
        for metric in ["auc", "ks", "brier"]:
            mean, std = expected(row["dataset"], row["model"], metric)
            assert row[f"{metric}_mean"] == pytest.approx(mean, abs=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(std, abs=1e-12)


def test_summarise_can_use_the_val_split(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc"], split="val")
    row = summary[(summary.dataset == "german") & (summary.model == "lr")].iloc[0]
    assert row["auc_mean"] == pytest.approx(expected("german", "lr", "auc")[0] + 0.01)


def test_summarise_sorts_by_dataset_then_first_metric_best_first(multirun: Path) -> None:
    runs = collect_runs(multirun)

    by_auc = summarise(runs, ["auc", "brier"])
    assert list(zip(by_auc.dataset, by_auc.model, strict=True)) == [
        ("german", "dnn"),
        ("german", "lr"),
        ("taiwan", "lr"),
        ("taiwan", "dnn"),
    ]
    # Brier is a loss: lowest first, which is the same winner as highest AUC here.
    by_brier = summarise(runs, ["brier"])
    assert list(by_brier.model) == ["dnn", "lr", "lr", "dnn"]


def test_one_seed_gives_nan_std_and_the_mean_alone(tmp_path: Path) -> None:
    write_run(tmp_path / "0", metrics_json("german", "lr", 0))

    summary = summarise(collect_runs(tmp_path), ["auc"])

    assert summary.loc[0, "n_seeds"] == 1
    assert np.isnan(summary.loc[0, "auc_std"])
    table = format_markdown(summary, ["auc"])
    assert "| german | lr | 1 | 0.7800 |" in table
    assert "±" not in table
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NaN error bar is simply not drawn
        plot_bars(summary, ["auc"], tmp_path / "one.png")


def test_unknown_metric_lists_the_available_names(multirun: Path) -> None:
    runs = collect_runs(multirun)
    with pytest.raises(ValueError, match=r"'aucc'.*available: accuracy, auc, brier, ece, f1, f1_macro"):
        summarise(runs, ["aucc"])


def test_unknown_split_lists_the_available_splits(multirun: Path) -> None:
    with pytest.raises(ZooError, match=r"unknown split 'tset'; available: val, test"):
        summarise(collect_runs(multirun), ["auc"], split="tset")


def test_markdown_has_mean_std_cells_and_paper_columns(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc", "f1"])
    reference: dict[str, dict[str, float | None]] = {
        "lr": {"auc": 0.791, "f1": None},
        "dnn": {"auc": 0.8},
    }

    table = format_markdown(summary, ["auc", "f1"], reference)
    lines = table.strip().splitlines()

    assert lines[0] == "| dataset | model | seeds | auc | paper auc | f1 | paper f1 |"
    assert len(lines) == 2 + 4
    auc_mean, auc_std = expected("german", "lr", "auc")
    f1_mean, f1_std = expected("german", "lr", "f1")
    german_lr = next(line for line in lines if line.startswith("| german | lr |"))
    assert german_lr == (
        f"| german | lr | 3 | {auc_mean:.4f} ± {auc_std:.4f} | 0.7910 | {f1_mean:.4f} ± {f1_std:.4f} |  |"
    )
    german_dnn = next(line for line in lines if line.startswith("| german | dnn |"))
    assert german_dnn.split(" | ")[4] == "0.8000"  # paper auc; dnn has no f1 figure
    assert german_dnn.endswith(" |  |")


def test_markdown_without_reference_has_no_paper_columns(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc"])
    assert "paper" not in format_markdown(summary, ["auc"])


def test_markdown_rejects_a_reference_that_is_not_numbers(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc"])
    with pytest.raises(ZooError, match=r"reference\['lr'\]\['auc'\], got 'high'"):
        format_markdown(summary, ["auc"], {"lr": {"auc": "high"}})  # type: ignore[dict-item]


def test_write_leaderboard_writes_md_csv_png(multirun: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    board = write_leaderboard(multirun, ["auc", "ks"], out_dir=out)

    assert set(board.paths) == {"md", "csv", "png"}
    assert board.paths["md"].read_text(encoding="utf-8") == board.markdown
    assert "| german | dnn | 3 |" in board.markdown
    assert board.paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.iterdir()) == [
        "leaderboard.csv",
        "leaderboard.md",
        "leaderboard.png",
    ]
    pd.testing.assert_frame_equal(
        pd.read_csv(board.paths["csv"], dtype={"variant": str}).fillna({"variant": ""}),
        board.summary,
        check_dtype=False,
        rtol=1e-12,
    )


def test_write_leaderboard_defaults_to_the_runs_dir_and_default_metrics(multirun: Path) -> None:
    board = write_leaderboard(multirun)

    assert board.paths["md"] == multirun / "leaderboard.md"
    header = board.markdown.splitlines()[2]
    assert header == "| dataset | model | seeds | auc | ks | f1 | brier |"
    assert "paper" not in board.markdown


def test_write_leaderboard_takes_metrics_and_reference_from_the_experiment(tmp_path: Path) -> None:
    extra = {
        "experiment": "paper_table2",
        "experiment_metrics": ["precision", "recall"],
        "reference": {"lr": {"precision": 0.61, "recall": None}},
    }
    for seed in SEEDS:
        write_run(tmp_path / str(seed), metrics_json("german", "lr", seed, **extra))

    board = write_leaderboard(tmp_path)

    assert "| precision | paper precision | recall | paper recall |" in board.markdown
    assert "| 0.6100 |" in board.markdown
    # An explicit reference wins over the one the runs carry.
    board = write_leaderboard(tmp_path, reference={"lr": {"precision": 0.5}})
    assert "| 0.5000 |" in board.markdown and "0.6100" not in board.markdown


def test_experiment_charts_get_a_png_each(tmp_path: Path) -> None:
    # The AFCC paper's Figures 3 and 4: accuracy and AUC per model, one chart each.
    extra = {"experiment_metrics": ["auc", "ks"], "experiment_charts": ["accuracy", "auc"]}
    for seed in SEEDS:
        write_run(tmp_path / str(seed), metrics_json("german", "lr", seed, **extra))

    board = write_leaderboard(tmp_path, out_dir=tmp_path / "out")

    for metric in ("accuracy", "auc"):
        path = tmp_path / "out" / f"leaderboard_{metric}.png"
        assert board.paths[f"png_{metric}"] == path and path.read_bytes()[:8] == PNG_MAGIC
    assert "accuracy" not in board.markdown  # charted, not tabled
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"leaderboard{end}" for end in (".csv", ".md", ".png", "_accuracy.png", "_auc.png")]


def test_plot_bars_writes_a_png_and_leaves_no_temp_file(multirun: Path, tmp_path: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc", "ks", "f1"])
    out = tmp_path / "bars.png"

    assert plot_bars(summary, ["auc", "ks", "f1"], out) == out
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["bars.png"]


def test_atomic_write_leaves_nothing_when_writing_fails(tmp_path: Path) -> None:
    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        leaderboard._write_atomic(tmp_path / "leaderboard.md", crash)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_metrics_json_is_skipped_with_a_warning(multirun: Path) -> None:
    bad = write_run(multirun / "2026-11-22" / "10-00-00" / "99", '{"model": "lr", "data')
    no_model = write_run(multirun / "2026-11-22" / "10-00-00" / "98", json.dumps({"seed": 0}))

    with pytest.warns(RuntimeWarning) as caught:
        runs = collect_runs(multirun)

    assert len(runs) == 12
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"skipping unreadable {bad}") for m in messages)
    assert any(str(no_model) in m and "'model'" in m for m in messages)


def test_no_readable_metrics_json_is_an_error(tmp_path: Path) -> None:
    write_run(tmp_path / "0", "not json")
    with pytest.warns(RuntimeWarning), pytest.raises(ZooError, match="none of the 1 metrics.json"):
        collect_runs(tmp_path)


def test_empty_and_missing_dirs_are_errors_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=re.escape(f"no metrics.json found under {tmp_path}")):
        collect_runs(tmp_path)
    missing = tmp_path / "nope"
    with pytest.raises(ZooError, match=re.escape(f"runs directory not found: {missing}")):
        collect_runs(missing)


def test_cli_prints_the_table_and_paths(multirun: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"

    code = main([str(multirun), "--metrics", "auc, precision,recall,f1", "--out", str(out)])

    stdout = capsys.readouterr().out
    assert code == 0
    assert "| dataset | model | seeds | auc | precision | recall | f1 |" in stdout
    assert f"wrote {out / 'leaderboard.png'}" in stdout
    assert (out / "leaderboard.csv").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{root}/missing"], "runs directory not found: {root}/missing"),
        (["{root}", "--metrics", "auc,nope"], "unknown metric 'nope'"),
        (["{root}", "--split", "tset"], "unknown split 'tset'"),
        ([], "the following arguments are required: root"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(multirun: Path, capsys, args, message) -> None:
    code = main([a.format(root=multirun) for a in args])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message.format(root=multirun) in lines[0]


def test_cli_reports_skipped_runs_as_warning_lines(multirun: Path, capsys) -> None:
    bad = write_run(multirun / "crashed", "{")

    assert main([str(multirun)]) == 0

    err = capsys.readouterr().err
    assert err.startswith(f"warning: skipping unreadable {bad}")


def _config_run(root: Path, name: str, model: str, seed: int, auc: float, **config) -> None:
    run_dir = root / name
    payload = metrics_json("german", model, seed)
    payload["test"] = split_metrics(auc)
    write_run(run_dir, payload)
    base = {"seed": seed, "model": {"name": model, "learning_rate": 0.01}, "data": {"batch_size": 256}}
    for key, value in config.items():
        section, _, leaf = key.partition("__")
        base[section][leaf] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(base))


def test_runs_of_one_model_with_different_settings_are_separate_rows(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    for seed in (0, 1):
        _config_run(root, f"a{seed}", "lr", seed, 0.70 + seed / 100, model__use_crosses=False)
        _config_run(root, f"b{seed}", "lr", seed, 0.80 + seed / 100, model__use_crosses=True)
        _config_run(root, f"c{seed}", "dnn", seed, 0.75, data__batch_size=256)
    summary = summarise(collect_runs(root), ["auc"])
    rows = {(r["model"], r["variant"]): r for r in summary.to_dict("records")}
    assert set(rows) == {("lr", "use_crosses=true"), ("lr", "use_crosses=false"), ("dnn", "")}
    assert rows[("lr", "use_crosses=true")]["auc_mean"] == pytest.approx(0.805)
    assert rows[("lr", "use_crosses=false")]["auc_mean"] == pytest.approx(0.705)
    assert all(r["n_seeds"] == 2 for r in rows.values())
    board = write_leaderboard(root, ["auc"])
    assert "| german | lr [use_crosses=true] | 2 |" in board.markdown
    assert "| german | dnn | 2 |" in board.markdown


def test_folds_are_repeats_not_variants(tmp_path: Path) -> None:
    root = tmp_path / "cv"
    for fold in range(3):
        run_dir = root / str(fold)
        write_run(run_dir, metrics_json("german", "lr", 0, fold=fold))
        config = {"seed": 0, "model": {"name": "lr"}, "data": {"n_folds": 3, "fold": fold}}
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "repeated (dataset, model, seed)" warning
        summary = summarise(collect_runs(root), ["auc"])
    assert len(summary) == 1 and summary["n_seeds"].iloc[0] == 3 and summary["variant"].iloc[0] == ""


def test_experiment_tradeoff_plots_one_line_per_model_through_its_variants(tmp_path: Path) -> None:
    # AUC against rule count as a sweep varies the rule budget: one point per (model, budget).
    root = tmp_path / "sweep"
    for budget in (5, 20):
        for seed in (0, 1):
            run_dir = root / f"b{budget}_{seed}"
            payload = metrics_json("german", "lr", seed, experiment_tradeoff=["n_rules", "auc"])
            payload["test"] = {**split_metrics(0.7 + budget / 1000), "n_rules": float(budget - seed)}
            write_run(run_dir, payload)
            config = {"seed": seed, "model": {"name": "lr", "max_rules": budget}}
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    board = write_leaderboard(root, ["auc", "n_rules"])
    path = root / "leaderboard_auc_vs_n_rules.png"
    assert board.paths["png_auc_vs_n_rules"] == path and path.read_bytes()[:8] == PNG_MAGIC
    rows = {r["variant"]: r for r in board.summary.to_dict("records")}
    assert rows["max_rules=5"]["n_rules_mean"] == pytest.approx(4.5)
    assert rows["max_rules=20"]["auc_mean"] == pytest.approx(0.72)


def test_experiment_tradeoff_needs_two_metrics(tmp_path: Path) -> None:
    write_run(tmp_path / "a", metrics_json("german", "lr", 0, experiment_tradeoff=["auc"]))
    with pytest.raises(ZooError, match=r"names 1 metrics, expected \[x, y\]"):
        write_leaderboard(tmp_path, ["auc"])


def test_runs_pruned_by_an_optuna_study_are_left_out(tmp_path: Path) -> None:
    for seed in SEEDS:
        write_run(tmp_path / f"done{seed}", metrics_json("german", "lr", seed))
    write_run(tmp_path / "pruned", metrics_json("german", "lr", SEEDS[0], pruned_at_epoch=10))
    with pytest.warns(RuntimeWarning, match="skipping 1 runs pruned"):
        frame = collect_runs(tmp_path)
    assert sorted(frame["seed"]) == sorted(SEEDS)  # the pruned repeat of the first seed is gone
