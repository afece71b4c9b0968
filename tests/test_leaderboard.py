"""Leaderboard: collecting run dirs, summarising over seeds and folds, paired DeLong comparisons,
the md/csv/png/html files, failed jobs and runs not sealed, and the CLI."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from zoo.errors import ZooError
from zoo.leaderboard import (
    collect_runs,
    format_markdown,
    main,
    plot_points,
    summarise,
    write_leaderboard,
)
from zoo.manifest import write_manifest

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


def seal(run_dir: Path) -> None:
    """Write the run's manifest, as train() does last: the leaderboard ranks sealed runs only."""
    write_manifest(run_dir, data={}, versions={})


def write_run(run_dir: Path, payload: dict | str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "metrics.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    seal(run_dir)
    return path


def write_config(run_dir: Path, config: dict) -> None:
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    seal(run_dir)


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


def test_summarise_ranks_by_auc_within_each_dataset_and_sorts_by_rank(multirun: Path) -> None:
    runs = collect_runs(multirun)

    by_auc = summarise(runs, ["auc", "brier"])
    assert list(zip(by_auc.dataset, by_auc["rank"], by_auc.model, strict=True)) == [
        ("german", 1, "dnn"),
        ("german", 2, "lr"),
        ("taiwan", 1, "lr"),
        ("taiwan", 2, "dnn"),
    ]
    # The rank is by AUC even when the table shows other metrics; without AUC, by the first metric
    # (Brier, a loss: lowest first).
    assert list(summarise(runs, ["brier"])["rank"]) == [1, 2, 1, 2]
    no_auc = runs.drop(columns=[c for c in runs.columns if c.endswith("/auc")])
    by_brier = summarise(no_auc, ["brier"])
    assert list(by_brier.model) == ["dnn", "lr", "lr", "dnn"]


def test_summary_has_the_t_interval_of_each_metric(multirun: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc"])
    row = summary[(summary.dataset == "taiwan") & (summary.model == "dnn")].iloc[0]
    values = [auc_for("taiwan", "dnn", s) for s in SEEDS]
    half = 4.302653 * np.std(values, ddof=1) / np.sqrt(3)  # t(0.975, df=2)
    assert row["auc_lo"] == pytest.approx(np.mean(values) - half, rel=1e-6)
    assert row["auc_hi"] == pytest.approx(np.mean(values) + half, rel=1e-6)


def test_one_seed_gives_nan_std_and_the_mean_alone(tmp_path: Path) -> None:
    write_run(tmp_path / "0", metrics_json("german", "lr", 0))

    summary = summarise(collect_runs(tmp_path), ["auc"])

    assert summary.loc[0, "n_seeds"] == 1
    assert np.isnan(summary.loc[0, "auc_std"])
    table = format_markdown(summary, ["auc"])
    assert "| german | 1 | lr | 1 | 0.7800 |" in table
    assert "±" not in table
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NaN error bar is simply not drawn
        plot_points(summary, ["auc"], tmp_path / "one.png")


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

    assert lines[0] == "| dataset | rank | model | runs | auc | paper auc | f1 | paper f1 |"
    assert len(lines) == 2 + 4
    auc_mean, auc_std = expected("german", "lr", "auc")
    f1_mean, f1_std = expected("german", "lr", "f1")
    half = 4.302653 / np.sqrt(3)  # t(0.975, 2) / sqrt(n): the 95% t-interval's half width per std
    auc_ci = f"[{auc_mean - half * auc_std:.4f}, {auc_mean + half * auc_std:.4f}]"
    f1_ci = f"[{f1_mean - half * f1_std:.4f}, {f1_mean + half * f1_std:.4f}]"
    german_lr = next(line for line in lines if line.startswith("| german | 2 | lr |"))
    assert german_lr == (
        f"| german | 2 | lr | 3 | {auc_mean:.4f} ± {auc_std:.4f} {auc_ci} | 0.7910 |"
        f" {f1_mean:.4f} ± {f1_std:.4f} {f1_ci} |  |"
    )
    german_dnn = next(line for line in lines if line.startswith("| german | 1 | dnn |"))
    assert german_dnn.split(" | ")[5] == "0.8000"  # paper auc; dnn has no f1 figure
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

    assert set(board.paths) == {"md", "csv", "png", "html"}  # no predictions: no curves, no comparisons
    assert board.paths["md"].read_text(encoding="utf-8") == board.markdown
    assert "| german | 1 | dnn | 3 |" in board.markdown
    assert board.paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in out.iterdir()) == [
        "leaderboard.csv",
        "leaderboard.html",
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
    assert header == "| dataset | rank | model | runs | auc | ks | f1 | brier |"
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
    ends = (".csv", ".html", ".md", ".png", "_accuracy.png", "_auc.png")
    assert names == [f"leaderboard{end}" for end in ends]


def test_plot_points_writes_a_png_and_leaves_no_temp_file(multirun: Path, tmp_path: Path) -> None:
    summary = summarise(collect_runs(multirun), ["auc", "ks", "f1"])
    out = tmp_path / "bars.png"

    assert plot_points(summary, ["auc", "ks", "f1"], out) == out
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["bars.png"]


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
    assert "| dataset | rank | model | runs | auc | precision | recall | f1 |" in stdout
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
    write_config(run_dir, base)


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
    assert "| german | 1 | lr [use_crosses=true] | 2 |" in board.markdown
    assert "| german | 2 | dnn | 2 |" in board.markdown


def test_folds_are_repeats_not_variants(tmp_path: Path) -> None:
    root = tmp_path / "cv"
    for fold in range(3):
        run_dir = root / str(fold)
        write_run(run_dir, metrics_json("german", "lr", 0, fold=fold))
        config = {"seed": 0, "model": {"name": "lr"}, "data": {"n_folds": 3, "fold": fold}}
        write_config(run_dir, config)
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
            write_config(run_dir, config)
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


# --- paired comparisons, curves, the HTML report, folds, failed and incomplete jobs


MODELS3 = ("strong", "twin", "weak")


def write_predictions(run_dir: Path, rows: np.ndarray, labels: np.ndarray, prob: np.ndarray) -> None:
    """predictions.parquet as train() writes it: a few val rows, then the test rows."""
    val = pd.DataFrame({"split": "val", "row": [10_000, 10_001], "label": [0, 1], "prob": [0.9, 0.1]})
    test = pd.DataFrame({"split": "test", "row": rows, "label": labels, "prob": prob})
    frame = pd.concat([val, test], ignore_index=True)
    frame["split"] = frame["split"].astype("category")
    frame.astype({"label": np.int8, "prob": np.float32}).to_parquet(run_dir / "predictions.parquet")
    seal(run_dir)


def scored_sweep(root: Path, *, folds: bool = False) -> dict:
    """german: strong and twin (one signal, each plus its own small noise: equally good), weak (far
    worse); two seeds
    (or three folds of seed 0), 300 test rows each. Returns {(model, key): (rows, labels, prob)}."""
    rng = np.random.default_rng(0)
    keys = [(0, f) for f in range(3)] if folds else [(0, None), (1, None)]
    written = {}
    partition = rng.permutation(5000)  # the folds of one split share no test row; seeds' draws may
    for i, (seed, fold) in enumerate(keys):
        rows = partition[300 * i : 300 * (i + 1)] if folds else rng.choice(5000, size=300, replace=False)
        labels = (rng.random(300) < 0.3).astype(int)
        signal = labels * 1.5 + rng.normal(size=300)
        scores = {
            "strong": signal + 0.3 * rng.normal(size=300),
            "twin": signal + 0.3 * rng.normal(size=300),
            "weak": labels * 0.3 + rng.normal(size=300),
        }
        for model, score in scores.items():
            prob = (1 / (1 + np.exp(-score))).astype(np.float32)
            order = rng.permutation(300)  # each run writes its rows in its own order: the join is on `row`
            name = f"{model}_seed{seed}" + ("" if fold is None else f"_fold{fold}")
            run_dir = root / name
            auc = roc_auc(labels, prob)
            payload = {"model": model, "dataset": "german", "seed": seed, "fold": fold}
            payload |= {"val": split_metrics(auc), "test": split_metrics(auc)}
            write_run(run_dir, payload)
            write_predictions(run_dir, rows[order], labels[order], prob[order])
            written[(model, (seed, fold))] = (rows, labels, prob)
    return written


def roc_auc(labels: np.ndarray, prob: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, prob))


def test_paired_comparisons_match_a_hand_computation(tmp_path: Path) -> None:
    from scipy import stats as scipy_stats

    from zoo.stats import delong_test

    written = scored_sweep(tmp_path)
    board = write_leaderboard(tmp_path, ["auc"])
    comparisons = board.comparisons

    # the reference is the best mean validation AUC (equal to test AUC in this sweep): one of the two
    # equally good scorers
    mean_auc = {m: np.mean([roc_auc(*written[(m, (s, None))][1:]) for s in (0, 1)]) for m in MODELS3}
    best = max(mean_auc, key=mean_auc.__getitem__)
    twin = "twin" if best == "strong" else "strong"
    assert comparisons is not None and comparisons.references == {"german": best}
    per_run = comparisons.per_run.set_index(["model", "seed"])
    assert sorted(per_run.index) == sorted([(twin, 0), (twin, 1), ("weak", 0), ("weak", 1)])
    for model in (twin, "weak"):
        diffs, ses = [], []
        for seed in (0, 1):
            _, labels, prob = written[(model, (seed, None))]
            _, _, ref_prob = written[(best, (seed, None))]
            row = per_run.loc[(model, seed)]
            expected = delong_test(labels, prob, ref_prob)
            assert row["n_rows"] == 300
            assert row["diff"] == pytest.approx(roc_auc(labels, prob) - roc_auc(labels, ref_prob), abs=1e-9)
            assert row["p_value"] == pytest.approx(expected["p_value"], rel=1e-9)
            assert row["diff_lo"] == pytest.approx(expected["diff_lo"], abs=1e-9)
            diffs.append(row["diff"])
            ses.append(row["diff"] / row["z"])
        combined = comparisons.combined.set_index("model").loc[model]
        z = np.mean(diffs) / np.mean(ses)
        assert combined["n_runs"] == 2
        assert combined["diff"] == pytest.approx(np.mean(diffs))
        assert combined["z"] == pytest.approx(z)
        assert combined["p_value"] == pytest.approx(2 * scipy_stats.norm.sf(abs(z)))
        assert combined["diff_lo"] == pytest.approx(np.mean(diffs) - 1.959964 * np.mean(ses), rel=1e-6)

    weak = comparisons.combined.set_index("model").loc["weak"]
    equal = comparisons.combined.set_index("model").loc[twin]
    assert weak["p_value"] < 1e-4 and weak["diff_hi"] < 0
    assert equal["p_value"] > 0.05 and equal["diff_lo"] < 0 < equal["diff_hi"]
    assert f"| german | weak | {best} | 2 |" in board.markdown
    assert f"{best} beats weak (p < 0.05)" in board.markdown
    twin_line = next(
        line for line in board.markdown.splitlines() if line.startswith(f"| german | {twin} | {best} |")
    )
    assert twin_line.endswith("| no significant difference (p ≥ 0.05) |")
    saved = pd.read_csv(board.paths["comparisons_csv"])
    assert len(saved) == 4 + 2 and (saved["seed"].astype(str) == "all").sum() == 2


def set_val_auc(run_dir: Path, auc: float) -> None:
    """Rewrite a run's validation metrics as if its validation AUC were auc (test metrics unchanged)."""
    path = run_dir / "metrics.json"
    payload = json.loads(path.read_text())
    payload["val"] = split_metrics(auc)
    path.write_text(json.dumps(payload))
    seal(run_dir)


def test_the_default_reference_is_the_best_by_validation_auc_not_test_auc(tmp_path: Path) -> None:
    scored_sweep(tmp_path)
    # weak is by far the worst on test, but the best on validation: it must be the reference
    for seed in (0, 1):
        set_val_auc(tmp_path / f"weak_seed{seed}", 0.95)
        set_val_auc(tmp_path / f"strong_seed{seed}", 0.70)
        set_val_auc(tmp_path / f"twin_seed{seed}", 0.71)

    board = write_leaderboard(tmp_path, ["auc"])

    assert board.summary.set_index("model").loc["weak", "rank"] == 3  # the summary still ranks on test
    comparisons = board.comparisons
    assert comparisons is not None and comparisons.references == {"german": "weak"}
    assert comparisons.chosen_by == {"german": "best mean validation AUC"}
    assert set(comparisons.combined["model"]) == {"strong", "twin"}
    assert "reference (german: weak, best mean validation AUC)" in board.markdown
    page = board.paths["html"].read_text(encoding="utf-8")
    assert "german: weak, best mean validation AUC" in page

    # a named model is the reference whatever its validation AUC
    board = write_leaderboard(tmp_path, ["auc"], reference_model="twin")
    assert board.comparisons is not None and board.comparisons.references == {"german": "twin"}
    assert board.comparisons.chosen_by == {"german": "named by the user"}


def test_without_validation_auc_the_reference_is_the_summary_rank_1_and_says_so(tmp_path: Path) -> None:
    scored_sweep(tmp_path)
    for path in tmp_path.glob("*/metrics.json"):
        payload = json.loads(path.read_text())
        del payload["val"]
        path.write_text(json.dumps(payload))
        seal(path.parent)

    board = write_leaderboard(tmp_path, ["auc"])

    best = board.summary["model"].iloc[0]
    assert board.comparisons is not None and board.comparisons.references == {"german": best}
    assert board.comparisons.chosen_by["german"].startswith("rank 1 of the summary")


def test_a_named_reference_model_is_compared_with_the_others(tmp_path: Path, capsys) -> None:
    scored_sweep(tmp_path)

    board = write_leaderboard(tmp_path, ["auc"], reference_model="weak")

    assert board.comparisons is not None and board.comparisons.references == {"german": "weak"}
    assert set(board.comparisons.combined["model"]) == {"strong", "twin"}
    assert "strong beats weak (p < 0.05)" in board.markdown
    assert main([str(tmp_path), "--reference", "catboost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: unknown reference model 'catboost'; models: strong, twin, weak"


def test_curves_are_drawn_per_dataset_from_the_pooled_test_predictions(tmp_path: Path) -> None:
    from zoo.leaderboard import ks_curve

    written = scored_sweep(tmp_path)
    board = write_leaderboard(tmp_path, ["auc"])
    best = board.summary["model"].iloc[0]

    for kind in ("roc", "reliability", "ks"):
        path = board.paths[f"{kind}_german"]
        assert path == tmp_path / f"leaderboard_{kind}_german.png" and path.read_bytes()[:8] == PNG_MAGIC
    # The KS curve's largest gap is the KS statistic of the pooled scores (two-sample KS of bads vs goods).
    labels = np.concatenate([written[(best, (s, None))][1] for s in (0, 1)])
    prob = np.concatenate([written[(best, (s, None))][2] for s in (0, 1)])
    curve = ks_curve(labels, prob)
    from scipy.stats import ks_2samp

    assert curve["gap"].max() == pytest.approx(ks_2samp(prob[labels == 1], prob[labels == 0]).statistic)


def test_html_report_is_self_contained_with_tables_and_images(tmp_path: Path) -> None:
    scored_sweep(tmp_path)
    (tmp_path / "failures").mkdir()
    failure = {
        "job": "3_lr_german_seed0",
        "overrides": ["model=lr"],
        "error": "boom <b>",
        "type": "ValueError",
    }
    (tmp_path / "failures" / "3_lr_german_seed0.json").write_text(json.dumps(failure))

    board = write_leaderboard(tmp_path, ["auc", "ks"])
    page = board.paths["html"].read_text(encoding="utf-8")

    pngs = sorted(p.name for p in tmp_path.glob("leaderboard*.png"))
    assert len(pngs) == 4  # bars, roc, reliability, ks
    assert page.count('<img alt="') == len(pngs)
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []  # nothing fetched from anywhere
    assert "http" not in page and "file:" not in page
    assert page.count("<table>") == 4  # summary, combined and per-run comparisons, failed jobs
    assert "<td>weak</td>" in page and "boom &lt;b&gt;" in page
    assert "beats weak (p &lt; 0.05)" in page


def test_disjoint_folds_combine_as_independent_differences(tmp_path: Path) -> None:
    # The folds of one split: se of the mean difference is sqrt(sum se_i^2) / k. Seeds whose test
    # rows overlap keep the bound mean(se_i).
    scored_sweep(tmp_path / "cv", folds=True)
    scored_sweep(tmp_path / "seeds")
    for root, independent in ((tmp_path / "cv", True), (tmp_path / "seeds", False)):
        comparisons = write_leaderboard(root, ["auc"]).comparisons
        assert comparisons is not None
        for model, group in comparisons.per_run.groupby("model"):
            ses = group["se"].to_numpy()
            expected = np.sqrt(np.sum(ses**2)) / len(ses) if independent else ses.mean()
            row = comparisons.combined.set_index("model").loc[model]
            assert row["combined_as"] == ("independent" if independent else "conservative")
            assert row["z"] == pytest.approx(group["diff"].mean() / expected, rel=1e-9)
            assert row["diff_hi"] - row["diff_lo"] == pytest.approx(2 * 1.959964 * expected, rel=1e-6)


def test_combined_folds_reject_a_true_null_at_the_nominal_rate() -> None:
    # Two equally good scorers on five disjoint folds of 200 rows, 400 times: the independent
    # combination rejects about 5% of the time; the bound mean(se_i) almost never (too wide).
    from zoo.leaderboard.stats import combine_paired
    from zoo.stats import delong_test

    rng = np.random.default_rng(5)
    rejected = {True: 0, False: 0}
    trials = 400
    for _ in range(trials):
        diffs, ses = [], []
        for _ in range(5):
            labels = (rng.random(200) < 0.3).astype(int)
            signal = labels * 1.0 + rng.normal(size=200)
            test = delong_test(labels, signal + rng.normal(size=200), signal + rng.normal(size=200))
            diffs.append(test["diff"])
            ses.append((test["diff_hi"] - test["diff_lo"]) / (2 * 1.959964))
        for independent in (True, False):
            rejected[independent] += combine_paired(diffs, ses, independent=independent)["p_value"] < 0.05
    assert 0.025 <= rejected[True] / trials <= 0.085, rejected
    assert rejected[False] / trials < 0.01, rejected


def test_folds_are_counted_as_folds(tmp_path: Path) -> None:
    from zoo.leaderboard import describe_replicates

    scored_sweep(tmp_path / "cv", folds=True)
    board = write_leaderboard(tmp_path / "cv", ["auc"])
    assert "over 3 folds;" in board.markdown.splitlines()[0]
    assert board.comparisons is not None
    assert sorted(board.comparisons.per_run["fold"].astype(int)) == [0, 0, 1, 1, 2, 2]

    frame = pd.DataFrame(
        {
            "dataset": "german",
            "model": "lr",
            "seed": [0, 0, 0, 1, 1, 1],
            "fold": [0, 1, 2, 0, 1, 2],
        }
    )
    assert describe_replicates(frame) == "2 seeds × 3 folds"
    assert describe_replicates(frame.assign(fold=None)) == "2 seeds"
    uneven = pd.concat([frame, frame.assign(model="dnn").iloc[:2]])
    assert describe_replicates(uneven) == "up to 2 seeds × 3 folds"


def test_multirun_job_dirs_carry_the_fold_only_when_folds_are_used(make_cfg) -> None:
    from hydra import compose, initialize_config_dir

    from zoo.sweeps import fold_tag, register_resolvers
    from zoo.train import config_dir

    assert (
        fold_tag(None, 0, None) == ""
        and fold_tag(5, 3, None) == "_fold3"
        and fold_tag(None, 2, "f") == "_fold2"
    )
    register_resolvers()
    make_cfg()  # registers the plugin configs
    subdirs = []
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        for extra in ([], ["data.n_folds=5", "data.fold=3"]):
            overrides = ["trainer=fast", "logger=none", "dataset=german", "model=lr", "seed=2", *extra]
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
            cfg.hydra.job.num = 7
            subdirs.append(cfg.hydra.sweep.subdir)
    assert subdirs == ["7_lr_german_seed2", "7_lr_german_seed2_fold3"]


def test_failed_and_incomplete_jobs_are_listed_under_the_table(multirun: Path) -> None:
    sweep = multirun / "2026-11-22" / "10-00-00"
    (sweep / "failures").mkdir()
    record = {
        "job": "6_lr_german_seed9",
        "overrides": ["model=lr", "seed=9"],
        "error": "ZooError: unknown column 'agee'",
        "type": "ZooError",
    }
    (sweep / "failures" / "6_lr_german_seed9.json").write_text(json.dumps(record))
    (sweep / "6_lr_german_seed9" / ".hydra").mkdir(parents=True)  # failed: has a record, not "incomplete"
    (sweep / "7_dnn_german_seed9" / ".hydra").mkdir(parents=True)  # killed: no metrics, no record
    (sweep / "0" / ".hydra").mkdir()  # finished: has metrics.json

    board = write_leaderboard(multirun, ["auc"])

    md = board.markdown
    assert md.index("| german | 1 | dnn |") < md.index("## Failed jobs") < md.index("## Runs not ranked")
    assert "| 6_lr_german_seed9 | ZooError | ZooError: unknown column 'agee' | model=lr seed=9 |" in md
    incomplete = md[md.index("## Runs not ranked") :]
    assert "killed, interrupted or still running" in incomplete
    assert "| 2026-11-22/10-00-00/7_dnn_german_seed9 | - | no manifest |" in incomplete
    assert "6_lr_german_seed9" not in incomplete and "| 2026-11-22/10-00-00/0 |" not in incomplete
    page = board.paths["html"].read_text(encoding="utf-8")
    assert "<td>6_lr_german_seed9</td>" in page and "<td>2026-11-22/10-00-00/7_dnn_german_seed9</td>" in page


def test_metric_charts_are_points_with_intervals_on_a_fitted_axis(tmp_path: Path, monkeypatch) -> None:
    """AUCs of 0.78 and 0.80 must be told apart: no bars from 0, an axis around the intervals."""
    from matplotlib.figure import Figure

    summary = pd.DataFrame(
        {
            "dataset": ["german", "german"],
            "model": ["lr", "dnn"],
            "n_seeds": [3, 3],
            "auc_mean": [0.78, 0.80],
            "auc_std": [0.01, 0.005],
        }
    )
    drawn = {}
    savefig = Figure.savefig

    def keep(fig, *args, **kwargs):
        drawn["axes"] = fig.axes
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    plot_points(summary, ["auc"], tmp_path / "auc.png")
    ax = drawn["axes"][0]
    assert not ax.patches  # no bars
    low, high = ax.get_ylim()
    assert 0.7 < low < 0.77 and 0.805 < high < 0.85, (low, high)
