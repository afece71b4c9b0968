"""`zoo predict RUN_DIR FILE`: score a new file with a finished run's saved preprocessing and
best checkpoint, checked against the run's manifest and its training schema."""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from zoo import registry
from zoo.calibration import calibrator_from_dict
from zoo.data.batches import DeviceBatches
from zoo.data.preprocess import Preprocessor
from zoo.data.sources import csv_header, parquet_columns, reading_error, reading_options
from zoo.data.validate import check_features, check_unique_columns
from zoo.errors import ZooError
from zoo.manifest import load_checkpoint, read_json, read_manifest, read_yaml, verify
from zoo.outputs import CALIBRATION_FILE, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, PREPROCESSING_FILE
from zoo.points import check_additive, read_scaling
from zoo.resume import SIGTERM_EXIT, Terminated
from zoo.run_state import process_alive

CHUNK_ROWS = 200_000
#: `--invalid`: what a row whose probability is not a finite number in [0, 1] does.
INVALID_CHOICES = ("error", "missing")
#: `--reasons-by`: reason codes ordered by logit contribution (any model) or by points lost against
#: each field's best attribute (additive models: zoo/points.py).
REASONS_BY_CHOICES = ("contribution", "points")


@dataclass
class Run:
    """A finished run, loaded for scoring: its config, preprocessing, model and threshold."""

    run_dir: Path
    config: Any
    preprocessor: Preprocessor
    schema: dict[str, Any]
    model: Any
    threshold: float
    calibrator: Any = None


def load_run(run_dir: Path | str, *, device: str = "cpu") -> Run:
    """Load a run directory; every artifact read is first checked against the manifest."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ZooError(f"run directory {str(run_dir)!r} does not exist")
    if (run_dir / "ensemble.json").is_file():  # an ensemble of runs: zoo/ensemble/scoring.py
        from zoo.ensemble.scoring import load_ensemble

        return load_ensemble(run_dir, device=device)
    manifest = read_manifest(run_dir)
    saved = read_json(run_dir, PREPROCESSING_FILE, manifest)
    config = read_yaml(run_dir, CONFIG_FILE, manifest)
    metrics = read_json(run_dir, METRICS_FILE, manifest)
    preprocessor = Preprocessor.from_dict(saved)  # refuses non-finite statistics before the model loads
    checkpoint = verify(run_dir, CHECKPOINT_FILE, manifest)
    cls = registry.get(str(config.model.name))
    model = load_checkpoint(cls, checkpoint, map_location=device)
    model.eval()
    schema = {k: saved.get(k) for k in ("target", "id_column", "ignored")}
    calibrator = None
    if metrics.get("calibration"):
        calibrator = calibrator_from_dict(read_json(run_dir, CALIBRATION_FILE, manifest))
    threshold = float(metrics["threshold"])
    return Run(run_dir, config, preprocessor, schema, model, threshold, calibrator)


@dataclass
class ScoreSummary:
    """What scoring saw: rows, ignored extra columns, unseen categories per field, and rows whose
    probability was not finite (written without a decision, under `--invalid=missing`)."""

    rows: int = 0
    extra_columns: list[str] = field(default_factory=list)
    unseen: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"scored {self.rows} rows", *self.notes]
        if self.invalid:
            out.append(
                f"{self.invalid} rows have no finite probability and were written with prob and "
                "decision missing (--invalid=missing)"
            )
        if self.extra_columns:
            out.append(f"ignored columns not used by the model: {', '.join(self.extra_columns)}")
        unseen = {k: v for k, v in self.unseen.items() if v}
        if unseen:
            out.append("categories unseen in training (scored as 'unseen'), rows per field:")
            out.extend(f"  {name}: {count}" for name, count in sorted(unseen.items(), key=lambda kv: -kv[1]))
        return out


def check_schema(run: Run, columns: list[str]) -> list[str]:
    """The extra columns of a file to score; a column the model needs is an error."""
    needed = run.preprocessor.columns
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ZooError(
            f"column {missing[0]!r} is missing from the file to score; the model needs: {', '.join(needed)}"
        )
    return [c for c in columns if c not in needed]


@torch.no_grad()
def score_frame(
    run: Run,
    frame: pd.DataFrame,
    *,
    batch_size: int = 8192,
    reasons: int = 0,
    reference: dict[str, np.ndarray] | None = None,
    reasons_by: str = "contribution",
) -> tuple[np.ndarray, dict[str, int], pd.DataFrame | None]:
    """Probabilities of default for the rows of `frame`, unseen-category counts per field, and
    explanation columns: `reasons` when the model states its own (the rules a row meets), and with
    `reasons=K` the K reason codes of `zoo.explain` (reason_1..reason_K, reason_method)."""
    if hasattr(run, "score_members"):  # an ensemble: each member scores through this function
        return run.score_members(frame, batch_size=batch_size, reasons=reasons)
    roles = {c: "categorical" for c in run.preprocessor.categorical}
    roles.update({c: "numeric" for c in run.preprocessor.numeric})
    features = check_features(frame, roles, allow_empty=True)
    arrays = run.preprocessor.transform(features, raw=bool(getattr(run.model, "uses_raw_values", False)))
    arrays["y"] = np.zeros(len(frame), dtype=np.float32)
    arrays["row"] = np.arange(len(frame), dtype=np.int64)
    device = next((p.device for p in run.model.parameters()), torch.device("cpu"))
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
    probs = [
        run.model.predict_step(batch, i)["prob"].float().cpu().numpy()
        for i, batch in enumerate(DeviceBatches(tensors, batch_size=batch_size))
    ]
    out = np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)
    if run.calibrator is not None:
        out = run.calibrator.transform(out).astype(np.float32)
    columns = pd.DataFrame(index=frame.index)
    explain = getattr(run.model, "reasons", None)
    if callable(explain):
        columns["reasons"] = explain(arrays)
    if reasons:
        found = reason_columns(run, frame, arrays, reasons, reference, by=reasons_by)
        columns = pd.concat([columns, found], axis=1)
    return out, dict(run.preprocessor.unseen_), columns if len(columns.columns) else None


def reason_columns(
    run: Run,
    frame: pd.DataFrame,
    arrays: dict[str, np.ndarray],
    k: int,
    reference: Any = None,
    *,
    by: str = "contribution",
) -> pd.DataFrame:
    """reason_1..reason_k and reason_method: the fields pushing each row most towards default, or
    (`by="points"`, additive models) the fields losing most points against their best attribute."""
    from zoo.explain import contributions, explain_settings, read_reference, reason_codes
    from zoo.points import points_lost, read_scaling

    settings = explain_settings(run.config)
    reference = read_reference(run.run_dir) if reference is None else reference
    if by == "points":
        found = points_lost(run.model, arrays, reference, read_scaling(run.run_dir)[0])
    else:
        found = contributions(run.model, arrays, reference, n_reference=settings["occlusion_rows"])
    units = dict(run.config.dataset.get("units") or {})
    return reason_codes(found, frame, run.model.feature_spec, k, units=units)


def read_chunks(
    path: Path, chunk_rows: int, options: dict[str, str] | None = None
) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """The file's columns and its rows in chunks (CSV or Parquet), without reading it whole;
    each chunk's index is its rows' positions in the file (data rows, from 0). A file whose column
    names repeat, or that fails to read at any chunk, is a one-line ZooError.
    `options`: the CSV reading options (sep, decimal, encoding, thousands) the run's training file used."""
    import pyarrow as pa

    options = options or {}
    if not path.is_file():
        raise ZooError(f"file to score {str(path)!r} does not exist")
    suffixes = "".join(path.suffixes).lower()
    encoding = str(options.get("encoding", "utf-8"))
    try:
        if suffixes.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            columns = parquet_columns(path)
            check_unique_columns(columns, f"file to score {str(path)!r}")
            handle = pq.ParquetFile(path)
            batches = (b.to_pandas() for b in handle.iter_batches(batch_size=chunk_rows))
            return columns, _numbered(path, batches, encoding)
        if suffixes.endswith((".csv", ".csv.gz", ".csv.zip", ".csv.bz2", ".txt")):
            header = csv_header(path, sep=options.get("sep", ","), encoding=encoding)
            check_unique_columns(header, f"file to score {str(path)!r}")
            columns = list(pd.read_csv(path, nrows=0, **options).columns)
            reader = pd.read_csv(path, chunksize=chunk_rows, low_memory=False, **options)
            return columns, _numbered(path, iter(reader), encoding)
    except ZooError:
        raise
    except pd.errors.EmptyDataError:
        raise ZooError(f"file to score {str(path)!r} is empty, expected a header row and data") from None
    except (OSError, ValueError, LookupError, pa.ArrowException) as err:
        raise ZooError(
            f"file to score {str(path)!r} could not be read: {reading_error(err, encoding)}"
        ) from None
    raise ZooError(
        f"file to score {str(path)!r} has suffix {suffixes or '(none)'!r}, expected .csv or .parquet"
    )


def _numbered(path: Path, chunks: Iterator[pd.DataFrame], encoding: str) -> Iterator[pd.DataFrame]:
    """`chunks` indexed by file position; an error in any chunk (a stray byte, a row with extra
    fields, a damaged Parquet page) is one line naming the rows read before it."""
    import pyarrow as pa

    start = 0
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except (OSError, ValueError, LookupError, pa.ArrowException) as err:
            raise ZooError(
                f"file to score {str(path)!r} could not be read after its first {start} data rows: "
                f"{reading_error(err, encoding)}"
            ) from None
        chunk.index = pd.RangeIndex(start, start + len(chunk))
        start += len(chunk)
        yield chunk


def predict_file(
    run_dir: Path | str,
    file: Path | str,
    out: Path | str,
    *,
    chunk_rows: int = CHUNK_ROWS,
    progress: bool | None = None,
    reasons: int = 0,
    invalid: str = "error",
    reasons_by: str = "contribution",
) -> ScoreSummary:
    """Score `file` chunk by chunk into `out` (Parquet or CSV): row, id, prob, decision (and
    reasons, for models that explain each row).

    `row` is the position in the file, `id` the dataset's id column (when it has one), and
    `decision` 1 where the probability exceeds the run's threshold (as the metrics count).
    `reasons=K` adds the K reason codes per row (docs/explanations.md), `reasons_by="points"` orders
    them by points lost (additive models). `score` is the probability in points, on the run's
    saved scaling (zoo/points.py; the defaults, with a note, for a run without one).
    A probability that is not a finite number in [0, 1] is an error naming its row, or with
    `invalid="missing"` that row's prob and decision are written missing and counted; never 0.
    `out` appears only when every row is scored.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    run = load_run(run_dir)
    scaling, scaling_note = read_scaling(run.run_dir, config=run.config)
    file, out = Path(file), Path(out)
    if out.resolve() == file.resolve():
        raise ZooError(f"--out {str(out)!r} is the file being scored; choose another path")
    out_suffix = out.suffix.lower()
    if out_suffix not in (".parquet", ".csv"):
        raise ZooError(f"--out {str(out)!r} has suffix {out_suffix or '(none)'!r}, expected .parquet or .csv")
    if reasons < 0:
        raise ZooError(f"--reasons={reasons}, expected a positive integer")
    if reasons_by not in REASONS_BY_CHOICES:
        raise ZooError(f"--reasons-by={reasons_by!r}, expected one of: {', '.join(REASONS_BY_CHOICES)}")
    if invalid not in INVALID_CHOICES:
        raise ZooError(f"--invalid={invalid!r}, expected one of: {', '.join(INVALID_CHOICES)}")
    if out.is_dir():
        raise ZooError(f"--out {str(out)!r} is a directory, expected a file path ending in {out_suffix}")
    reference = None
    if reasons and not hasattr(run, "score_members"):  # an ensemble's members read their own
        from zoo.explain import read_reference

        reference = read_reference(run.run_dir)
        if reasons_by == "points":
            check_additive(run.model, reference)
    columns, chunks = read_chunks(file, chunk_rows, reading_options(run.config.dataset))
    summary = ScoreSummary(
        extra_columns=check_schema(run, columns), notes=[scaling_note] if scaling_note else []
    )
    id_column = run.schema.get("id_column")
    show = sys.stderr.isatty() if progress is None else progress
    tmp = _temporary_beside(out)
    writer: Any = None
    try:
        with tqdm(desc="scoring", unit="rows", disable=not show) as bar:
            for chunk in chunks:
                prob, unseen, explained = score_frame(
                    run, chunk, reasons=reasons, reference=reference, reasons_by=reasons_by
                )
                scores = pd.DataFrame({"row": chunk.index.to_numpy(dtype=np.int64)})
                if id_column and id_column in chunk.columns:
                    scores["id"] = chunk[id_column].to_numpy()
                valid = np.isfinite(prob) & (prob >= 0) & (prob <= 1)
                if not valid.all():
                    summary.invalid += _invalid_rows(run, chunk, prob, valid, invalid)
                    prob = np.where(valid, prob, np.nan).astype(np.float32)
                scores["prob"] = prob
                decision = (prob > run.threshold).astype(np.int8)  # as the metrics count: p > t
                if invalid == "missing":  # one column type for every chunk, with or without gaps
                    scores["decision"] = pd.array(decision, dtype="Int8")
                    scores.loc[~valid, "decision"] = pd.NA
                else:
                    scores["decision"] = decision
                scores["score"] = scaling.from_prob(prob)  # points; NaN where prob is missing
                if explained is not None:
                    for name in explained.columns:
                        scores[name] = explained[name].to_numpy()
                for name, count in unseen.items():
                    summary.unseen[name] = summary.unseen.get(name, 0) + count
                summary.rows += len(chunk)
                try:
                    if out_suffix == ".csv":
                        scores.to_csv(tmp, mode="a", header=writer is None, index=False)
                        writer = True
                    else:
                        table = pa.Table.from_pandas(scores, preserve_index=False)
                        if writer is None:
                            writer = pq.ParquetWriter(tmp, table.schema)
                        writer.write_table(table)
                except OSError as err:  # a full disk, a quota, a device gone
                    raise ZooError(f"--out {str(out)!r} could not be written: {err}") from None
                bar.update(len(chunk))
        if not summary.rows:
            raise ZooError(f"file to score {str(file)!r} has no data rows, expected at least one")
        try:
            if writer is not True:
                writer.close()
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, out)
        except OSError as err:
            raise ZooError(f"--out {str(out)!r} could not be written: {err}") from None
    except BaseException:
        if writer not in (None, True):
            with contextlib.suppress(OSError):  # the file goes anyway
                writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return summary


def _temporary_beside(out: Path) -> Path:
    """An empty temporary file beside `out` to write the scores into, named with this process id
    (`.scores.csv.<pid>.XXXX`), after removing those that killed processes left there (SIGKILL)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in out.parent.glob(f".{glob.escape(out.name)}.*.part"):
            pid = stale.name[len(out.name) + 2 :].split(".")[0]
            if pid.isdigit() and not process_alive(int(pid)):
                stale.unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".part", dir=out.parent)
        os.close(fd)
    except OSError as err:  # read-only, no permission, not a directory
        raise ZooError(f"--out {str(out)!r} could not be written: {err}") from None
    return Path(name)


def _invalid_rows(run: Run, chunk: pd.DataFrame, prob: np.ndarray, valid: np.ndarray, invalid: str) -> int:
    """Rows whose probability is not a finite number in [0, 1]: an error naming the first, or
    (`invalid="missing"`) their count, for rows written without a decision."""
    if invalid == "missing":
        return int((~valid).sum())
    first = int(np.flatnonzero(~valid)[0])
    raise ZooError(
        f"row {chunk.index[first]} of the file to score gets probability {float(prob[first])} from model "
        f"{str(run.config.model.name)!r}, expected a finite number in [0, 1]; nothing was written "
        f"({int((~valid).sum())} such rows in this chunk); check the row's values, or pass "
        "--invalid=missing to write such rows with prob and decision missing"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoo predict", description="Score a file with a finished run.")
    parser.add_argument("run_dir", type=Path, help="a run directory written by zoo-train")
    parser.add_argument("file", type=Path, help="CSV or Parquet file with the training columns")
    parser.add_argument("--out", type=Path, default=Path("scores.parquet"), help="output .parquet or .csv")
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows scored at a time")
    parser.add_argument(
        "--reasons",
        type=int,
        nargs="?",
        const=-1,
        default=None,
        metavar="K",
        help="add reason_1..reason_K (default K: the run's explain.reasons) and reason_method",
    )
    parser.add_argument(
        "--reasons-by",
        choices=REASONS_BY_CHOICES,
        default="contribution",
        help="order reason codes by contribution to the default logit (default, any model) or by "
        "points lost against each field's best attribute (additive models: lr, lr_cross, "
        "attention_rules); points implies --reasons",
    )
    parser.add_argument(
        "--invalid",
        choices=INVALID_CHOICES,
        default="error",
        help="a row whose probability is not finite: stop with an error (default), or write it with "
        "prob and decision missing and count it",
    )
    parser.add_argument(
        "--groups",
        action="append",
        metavar="COLUMN",
        help="fair-lending metrics of the scored rows by this column of FILE (repeatable; docs/fairness.md)",
    )
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        print(f"error: --chunk-rows={args.chunk_rows}, expected a positive integer", file=sys.stderr)
        return 2
    if args.reasons is not None and args.reasons != -1 and args.reasons < 1:
        print(f"error: --reasons={args.reasons}, expected a positive integer", file=sys.stderr)
        return 2
    in_main = threading.current_thread() is threading.main_thread()  # only it may take signals
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main else None
    try:
        if args.reasons_by == "points" and args.reasons is None:
            args.reasons = -1
        reasons = _default_reasons(args.run_dir) if args.reasons == -1 else args.reasons or 0
        groups = _check_groups(args) if args.groups else None  # --groups: checked before scoring
        summary = predict_file(
            args.run_dir,
            args.file,
            args.out,
            chunk_rows=args.chunk_rows,
            reasons=reasons,
            invalid=args.invalid,
            reasons_by=args.reasons_by,
        )
        group_lines = groups.report(args.out) if groups else []
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated as err:
        print(f"error: {err}", file=sys.stderr)
        return SIGTERM_EXIT  # a kill is never a success, as for zoo-train
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    for line in summary.lines():
        print(line)
    print(f"scores: {args.out}")
    for line in group_lines:
        print(line)
    return 0


def _check_groups(args: argparse.Namespace) -> Any:
    """`--groups`: each column in FILE, before any scoring (zoo/fairness/scored.py)."""
    from zoo.fairness.scored import check_groups

    return check_groups(load_run(args.run_dir), args.file, args.groups, chunk_rows=args.chunk_rows)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM while scoring: unwind (the temporary output is removed) and say so in one line."""
    raise Terminated("terminated by SIGTERM while scoring; nothing was written to --out")


def _default_reasons(run_dir: Path) -> int:
    """The run's explain.reasons: how many reason codes a bare `--reasons` asks for."""
    from zoo.explain import explain_settings

    return explain_settings(read_yaml(run_dir, CONFIG_FILE))["reasons"] or 1
