"""Numbers at the edges and damaged scoring files (issue 23): a value beyond float32, a probability
that is not finite or a file that breaks past its first chunk is one `error:` line, never a
decision, in training and scoring alike."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.overrides import loans_csv
from zoo import predict
from zoo.errors import ZooError
from zoo.manifest import sha256_file
from zoo.predict import main as predict_main
from zoo.predict import predict_file
from zoo.resume import SIGTERM_EXIT
from zoo.train import train


def _loans(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "grade": rng.choice(list("ABC"), n),
            "income": rng.normal(50, 10, n).round(2),
            "share": rng.normal(0, 0.3, n).round(3),  # a standard deviation below 1
            "status": np.where(rng.random(n) < 0.3, "bad", "good"),
        }
    )


def _train(make_cfg, path: Path, run_dir: Path, *overrides: str) -> dict:
    cfg = make_cfg(
        *loans_csv(path),
        "dataset.numeric_encoding=standard",  # unbounded: extreme inputs reach the model
        *overrides,
    )
    return train(cfg, run_dir)


@pytest.fixture(scope="module")
def run_dir(make_cfg, tmp_path_factory) -> Path:
    """One finished `lr` run on standard-encoded numerics, shared read-only by the scoring tests."""
    where = tmp_path_factory.mktemp("edges")
    path = where / "loans.csv"
    _loans().to_csv(path, index=False)
    _train(make_cfg, path, where / "run")
    return where / "run"


def _applicants(n: int = 6, **values) -> pd.DataFrame:
    frame = _loans(n, seed=1).drop(columns=["status"])
    for name, value in values.items():
        frame[name] = frame[name].astype(object if isinstance(value, bool) else float)
        frame.loc[1, name] = value
    return frame


def _score(run_dir: Path, frame: pd.DataFrame, tmp_path: Path, capsys, *args: str) -> tuple[int, str, Path]:
    source = tmp_path / "applicants.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "scores.csv"
    capsys.readouterr()
    code = predict_main([str(run_dir), str(source), "--out", str(out), *args])
    return code, capsys.readouterr().err, out


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- values beyond float32, in scoring and training ---------------------------------------------


@pytest.mark.parametrize("value", [1e308, 1e39, -1e308, np.inf])
def test_a_value_beyond_float32_in_a_file_to_score_is_an_error_naming_it(run_dir, tmp_path, capsys, value):
    code, err, out = _score(run_dir, _applicants(income=value), tmp_path, capsys)
    assert code == 2
    line = _error_line(err)
    assert "numeric column 'income' holds 1 " in line and "at row 1" in line
    assert f"{value:g}" in line
    assert not out.exists() and _hidden(tmp_path) == []


def test_a_value_whose_encoding_overflows_float32_is_an_error_naming_the_row(run_dir, tmp_path, capsys):
    # 3e38 fits float32, but standardised by a spread below 1 it does not: never an inf input
    code, err, out = _score(run_dir, _applicants(share=3e38), tmp_path, capsys)
    assert code == 2
    line = _error_line(err)
    assert "'share' holds 3e+38 at row 1" in line and "standard encoding" in line and "inf" in line
    assert not out.exists()


def test_a_value_beyond_float32_in_training_is_an_error_not_a_dropped_field(make_cfg, tmp_path):
    frame = _loans()
    frame["income"] = frame["income"].astype(float)
    frame.loc[7, "income"] = 1e308
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(
        ZooError, match=r"'income' holds 1 value beyond float32 range \(first: 1e\+308 at row 7\)"
    ):
        _train(make_cfg, path, tmp_path / "run")
    assert not (tmp_path / "run" / "preprocessing.json").exists()


def test_an_old_run_saved_with_a_null_std_refuses_to_score_in_one_line(run_dir, tmp_path, capsys):
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    saved = json.loads((old / "preprocessing.json").read_text())
    income = next(f for f in saved["numeric"] if f["name"] == "income")
    income["std"] = None  # as runs saved before non-finite statistics were refused
    (old / "preprocessing.json").write_text(json.dumps(saved))
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["artifacts"]["preprocessing.json"] = sha256_file(old / "preprocessing.json")  # re-seal
    (old / "manifest.json").write_text(json.dumps(manifest))
    code, err, out = _score(old, _applicants(), tmp_path, capsys)
    assert code == 2
    assert "numeric field 'income' has std=None, expected a finite number" in _error_line(err)
    assert not out.exists()


# --- probabilities that are not finite -----------------------------------------------------------


@pytest.fixture
def nan_for_row_2(monkeypatch):
    """The run's model gives NaN for the third row of each chunk (as a network overflowing inside
    does)."""
    load_run = predict.load_run

    def loading(*args, **kwargs):
        run = load_run(*args, **kwargs)
        step = run.model.predict_step

        def broken(batch, i):
            out = step(batch, i)
            out["prob"] = out["prob"].clone()
            out["prob"][batch["row"] == 2] = float("nan")
            return out

        run.model.predict_step = broken
        return run

    monkeypatch.setattr(predict, "load_run", loading)


def test_a_probability_that_is_not_finite_stops_scoring_naming_the_row(
    run_dir, tmp_path, capsys, nan_for_row_2
):
    code, err, out = _score(run_dir, _applicants(), tmp_path, capsys)
    assert code == 2
    line = _error_line(err)
    assert (
        line.startswith("error: row 2 of the file to score gets probability nan")
        and "--invalid=missing" in line
    )
    assert not out.exists() and _hidden(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_invalid_missing_writes_the_row_without_a_decision_and_counts_it(
    run_dir, tmp_path, nan_for_row_2, suffix
):
    source = tmp_path / "applicants.csv"
    _applicants(7).to_csv(source, index=False)
    out = tmp_path / f"scores{suffix}"
    summary = predict_file(run_dir, source, out, chunk_rows=3, invalid="missing")  # rows 2 and 5
    assert summary.invalid == 2 and summary.rows == 7
    assert any("2 rows have no finite probability" in line for line in summary.lines())
    scores = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert scores["decision"].isna().tolist() == [False, False, True, False, False, True, False]
    assert scores["prob"].isna().tolist() == scores["decision"].isna().tolist()
    assert scores["decision"].dropna().isin([0, 1]).all()


# --- files that break past their first chunk -----------------------------------------------------


def test_a_latin1_byte_past_the_first_chunk_is_one_line(run_dir, tmp_path, capsys):
    frame = _applicants(20_000)
    frame["grade"] = frame["grade"].astype(object)
    frame.loc[19_990, "grade"] = "Ä"
    source = tmp_path / "applicants.csv"
    source.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    capsys.readouterr()
    code = predict_main([str(run_dir), str(source), "--out", str(tmp_path / "s.csv"), "--chunk-rows", "1000"])
    assert code == 2
    line = _error_line(capsys.readouterr().err)
    assert "could not be read after its first" in line and "dataset.encoding=latin-1" in line
    assert _hidden(tmp_path) == [] and not (tmp_path / "s.csv").exists()


def test_a_row_with_extra_fields_past_the_first_chunk_is_one_line(run_dir, tmp_path, capsys):
    source = tmp_path / "applicants.csv"
    lines = _applicants(10).to_csv(index=False).splitlines()
    lines[8] += ",surplus"
    source.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code = predict_main([str(run_dir), str(source), "--out", str(tmp_path / "s.csv"), "--chunk-rows", "3"])
    assert code == 2
    line = _error_line(capsys.readouterr().err)
    assert "could not be read after its first 6 data rows" in line and "Expected 3 fields" in line


# --- duplicate column names ----------------------------------------------------------------------


def _duplicate_csv(frame: pd.DataFrame, path: Path, name: str) -> Path:
    text = frame.assign(zz_copy=frame[name]).to_csv(index=False)
    path.write_text(text.replace("zz_copy", name, 1))
    return path


def test_duplicate_columns_in_a_file_to_score_are_an_error(run_dir, tmp_path, capsys):
    source = _duplicate_csv(_applicants(), tmp_path / "dup.csv", "income")
    capsys.readouterr()
    assert predict_main([str(run_dir), str(source), "--out", str(tmp_path / "s.csv")]) == 2
    assert _error_line(capsys.readouterr().err).endswith(
        "has column 'income' twice, expected unique column names"
    )
    table = pa.Table.from_pandas(_applicants(), preserve_index=False)
    table = table.rename_columns(["grade", "income", "income"])
    pq.write_table(table, tmp_path / "dup.parquet")
    assert predict_main([str(run_dir), str(tmp_path / "dup.parquet"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "has column 'income' twice" in _error_line(capsys.readouterr().err)


@pytest.mark.parametrize("name", ["income", "status"])
def test_duplicate_columns_in_training_data_are_an_error(make_cfg, tmp_path, name):
    path = _duplicate_csv(_loans(), tmp_path / "loans.csv", name)
    with pytest.raises(ZooError, match=f"has column '{name}' twice, expected unique column names"):
        _train(make_cfg, path, tmp_path / "run")
    table = pa.Table.from_pandas(_loans(), preserve_index=False)
    pq.write_table(table.rename_columns(["grade", "income", "income", "status"]), tmp_path / "dup.parquet")
    with pytest.raises(ZooError, match="has column 'income' twice"):
        _train(make_cfg, tmp_path / "dup.parquet", tmp_path / "run2")


# --- --out, empty files, interrupted scoring -----------------------------------------------------


def test_out_at_a_directory_or_an_unwritable_place_is_one_line(run_dir, tmp_path, capsys, monkeypatch):
    source = tmp_path / "applicants.csv"
    _applicants().to_csv(source, index=False)
    (tmp_path / "taken.csv").mkdir()
    for out, message in (
        (tmp_path / "taken.csv", "is a directory"),
        (source / "scores.csv", "could not be written"),  # below a file
    ):
        assert predict_main([str(run_dir), str(source), "--out", str(out)]) == 2
        assert message in _error_line(capsys.readouterr().err)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(predict.tempfile, "mkstemp", read_only)
    assert predict_main([str(run_dir), str(source), "--out", str(tmp_path / "s.csv")]) == 2
    assert "could not be written: [Errno 13] Permission denied" in _error_line(capsys.readouterr().err)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(run_dir, tmp_path, capsys, monkeypatch, suffix):
    source = tmp_path / "applicants.csv"
    _applicants(9).to_csv(source, index=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    write_table = pq.ParquetWriter.write_table
    to_csv = pd.DataFrame.to_csv
    calls = {"n": 0}

    def full(write):
        def writing(self, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:  # the second chunk
                raise OSError(errno.ENOSPC, "No space left on device")
            return write(self, *args, **kwargs)

        return writing

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full(write_table))
    monkeypatch.setattr(pd.DataFrame, "to_csv", full(to_csv))
    code = predict_main(
        [str(run_dir), str(source), "--out", str(out_dir / f"s{suffix}"), "--chunk-rows", "3"]
    )
    assert code == 2
    assert "could not be written: [Errno 28] No space left on device" in _error_line(capsys.readouterr().err)
    assert list(out_dir.iterdir()) == []


def test_a_header_only_file_to_score_is_an_error(run_dir, tmp_path, capsys):
    code, err, out = _score(run_dir, _applicants().head(0), tmp_path, capsys)
    assert code == 2
    assert "has no data rows, expected at least one" in _error_line(err)
    assert not out.exists() and _hidden(tmp_path) == []


def test_sigterm_while_scoring_is_one_line_exit_143_and_no_temporary_file(
    run_dir, tmp_path, capsys, monkeypatch
):
    score_frame = predict.score_frame
    chunks = {"n": 0}

    def scoring(*args, **kwargs):
        chunks["n"] += 1
        if chunks["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's pre-emption mid-file
        return score_frame(*args, **kwargs)

    monkeypatch.setattr(predict, "score_frame", scoring)
    before = signal.getsignal(signal.SIGTERM)
    code, err, out = _score(run_dir, _applicants(9), tmp_path, capsys, "--chunk-rows", "3")
    assert code == SIGTERM_EXIT
    assert _error_line(err) == "error: terminated by SIGTERM while scoring; nothing was written to --out"
    assert not out.exists() and _hidden(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the caller's again


def test_a_temporary_file_of_a_killed_scoring_is_removed_by_the_next(run_dir, tmp_path, capsys):
    pid_max = (
        int(Path("/proc/sys/kernel/pid_max").read_text())
        if Path("/proc/sys/kernel/pid_max").exists()
        else 2**22
    )
    stale = tmp_path / f".scores.csv.{pid_max + 1}.k1ll.part"  # a pid no process has
    stale.write_text("row,prob\n0,0.5\n")
    mine = tmp_path / f".scores.csv.{os.getpid()}.live.part"  # a live process's: kept
    mine.write_text("")
    code, _, out = _score(run_dir, _applicants(), tmp_path, capsys)
    assert code == 0 and out.exists()
    assert not stale.exists() and mine.exists()


# --- booleans and numbers with separators ---------------------------------------------------------


def test_booleans_for_a_numeric_field_are_an_error(run_dir, tmp_path, capsys, make_cfg):
    frame = _applicants()
    frame["share"] = [True, False] * 3
    code, err, _ = _score(run_dir, frame, tmp_path, capsys)
    assert code == 2
    assert "numeric column 'share' holds booleans (e.g. True), expected numbers" in _error_line(err)
    loans = _loans().assign(flag=lambda f: f["income"] > 50)
    loans.to_csv(tmp_path / "loans.csv", index=False)
    with pytest.raises(ZooError, match="numeric column 'flag' holds booleans"):
        _train(make_cfg, tmp_path / "loans.csv", tmp_path / "run", "dataset.roles.numeric=[flag]")


def test_numbers_with_thousands_separators_get_the_reading_hint(make_cfg, tmp_path):
    frame = _loans()
    frame["amount"] = [f"{int(v):,}" for v in np.random.default_rng(3).integers(100, 90_000, len(frame))]
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ZooError) as info:
        _train(make_cfg, path, tmp_path / "run")
    message = str(info.value)
    assert "column 'amount' holds numbers written with ','" in message and "dates" not in message
    assert """"++dataset.thousands=','\"""" in message and "dataset.decimal" in message
    _train(make_cfg, path, tmp_path / "run2", "++dataset.thousands=','")
    saved = json.loads((tmp_path / "run2" / "preprocessing.json").read_text())
    assert "amount" in [f["name"] for f in saved["numeric"]]
