"""``mer predict input=<clips.csv>``: every row of a manifest predicted, resumably.

The manifest is the CSV of ``data=manifest`` (:mod:`recognizer.datasets.manifest`, whose row
parser reads it), with ``label`` optional: columns ``subject, clip, path`` and optionally
``onset, apex, offset, fps, label, dataset``; the other columns (``face``, ``aus``, ...) are
read but do not change a prediction. ``path`` is relative to the CSV's folder (or absolute) and is

- a video file, a frame folder or a ``.npy`` clip ``(T, H, W, 3)``: predicted as
  :func:`~recognizer.inference.prediction.predict_clip` predicts one clip, the
  row's ``onset``, ``apex`` and
  ``offset`` cells (frame numbers) in place of the command's (a blank cell: its default);
- one image (``.png``, ``.jpg``, ... or an ``(H, W, C)`` ``.npy``): a precomputed apex-flow
  image, as ``data=manifest representation=apex_flow`` trains on; an apex-flow run's model
  takes it as is (``apex_rule`` ``precomputed``), a key-frame run refuses the row.

Checked before anything is written, one line naming the file and row: the columns, every
row's cells, that every path exists. A row that fails while predicting (no face, a video OpenCV
cannot read, a window too short) gets its message in the ``error`` column and the others go on.

Output ``out_dir/predictions.csv``, one row per manifest row in its order: ``row`` (the
manifest's row number), ``subject`` (dataset-qualified, as in ``mer train``'s predictions),
``clip``, ``label`` (when the manifest has one), the columns of one clip
(:func:`recognizer.inference.prediction.prediction_row`) and
``error`` (empty when the row was predicted).

Resume, as ``mer train`` resumes its run folder: ``out_dir`` is claimed for one prediction
(``predict.json``: the final model's digest, the manifest and the options, hashed, and a digest
of every row's cells). Rerunning the same command reuses the rows predicted earlier whose cells
have not changed and predicts the others, failed rows included; another model or other options
are refused, naming what differs, unless ``overwrite=true``. ``predictions.csv`` is rewritten
atomically after every clip, so a kill loses at most the clip in progress.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mesynth.face.image_io import IMAGE_SUFFIXES
from mesynth.generation.store import config_hash
from recognizer.data.safe_paths import safe_path_component
from recognizer.datasets.errors import AnnotationError
from recognizer.datasets.manifest import ManifestRow, parse_row
from recognizer.datasets.sheets import read_table
from recognizer.experiments.runner import RunConfigError
from recognizer.inference.clip_input import PredictInputError
from recognizer.inference.prediction import (
    predict_clip,
    predict_image,
    prediction_row,
    write_preview,
)
from recognizer.training.final_model import FinalModel, load_final_model

#: columns a prediction manifest must have (``data=manifest`` also needs ``label``)
REQUIRED = ("subject", "clip", "path")
CLAIM = "predict.json"
PREDICTIONS = "predictions.csv"
#: integer columns, kept integers when a failed row leaves them blank
_INTEGERS = ("row", "onset", "apex", "offset")


class ClipsFailedError(PredictInputError):
    """Some rows of a manifest could not be predicted (their messages are in ``error``)."""


@dataclass(frozen=True)
class ManifestPredictions:
    """What :func:`predict_manifest` did.

    Attributes:
        table: ``predictions.csv``, one row per manifest row.
        path: where it was written.
        reused: rows predicted by an earlier run of the same command.
    """

    table: pd.DataFrame
    path: Path
    reused: int

    @property
    def failed(self) -> pd.DataFrame:
        """The rows with an error."""
        return self.table[self.table["error"] != ""]

    def __str__(self) -> str:
        failed = len(self.failed)
        lines = [
            f"predicted {len(self.table) - failed} of {len(self.table)} clips ({self.reused} "
            f"reused from an earlier run), {failed} failed"
        ]
        lines += [f"  failed row {r.row} {r.subject}/{r.clip}: {r.error}"
                  for r in self.failed.itertuples()]  # fmt: skip
        return "\n".join(lines)


def is_manifest(path: str | Path) -> bool:
    """Whether ``input=`` names a manifest: a ``.csv`` file."""
    return Path(path).suffix.lower() == ".csv"


def read_manifest(path: str | Path) -> tuple[list[ManifestRow], bool]:
    """The rows of a prediction manifest, each checked (see the module).

    Returns:
        The rows in order, and whether the manifest has a ``label`` column.

    Raises:
        ReleaseNotFoundError: no such file. AnnotationError: a required column is missing, or
            a subject or dataset cell is bad. PredictInputError: a frame-number or fps cell is
            no number, a path does not exist, or there is no row (file and row named).
    """
    csv = Path(path)
    table = read_table(csv, required=REQUIRED, what="manifest CSV")
    rows = []
    for number, cells in table.records():
        try:
            row = parse_row(csv, number, cells, "manifest")
        except AnnotationError:
            raise
        except ValueError as err:
            raise PredictInputError(f"{csv}, row {number}: {err}") from err
        if not row.path.exists():
            raise PredictInputError(
                f"{csv}, row {number}: path not found: {row.path} (a path is relative to the "
                "manifest's folder, or absolute)"
            )
        rows.append(row)
    if not rows:
        raise PredictInputError(f"{csv}: no clip rows under its header")
    return rows, "label" in table.columns


def is_image(path: Path) -> bool:
    """Whether a row's path is one image (an image file, or a ``.npy`` of 2 or 3 axes)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix.lower() != ".npy" or not path.is_file():
        return False
    try:
        return np.load(path, mmap_mode="r").ndim in (2, 3)
    except (OSError, ValueError, EOFError):
        return False  # read as a clip, which names the problem


def _predict_row(
    final: FinalModel, row: ManifestRow, out: Path, preview: bool, options: Mapping[str, object]
) -> dict[str, object]:
    """The prediction columns of one row (raises what the clip's reading raises)."""
    if is_image(row.path):
        p = predict_image(final, row.path)
        return {"input": str(row.path), "apex_rule": "precomputed",
                **{f"p_{c}": float(v) for c, v in zip(final.classes, p)},
                "predicted": final.classes[int(np.argmax(p))]}  # fmt: skip
    settings = {**options, "fps": row.fps or options.get("fps")}
    done = predict_clip(final, row.path, onset=row.onset, apex=row.apex, offset=row.offset,
                        **settings)  # type: ignore[arg-type]  # fmt: skip
    if preview:
        name = safe_path_component(f"{row.cells['subject']}_{row.clip}", "preview name")
        write_preview(done, out / "preview" / f"{name}.png")
    return prediction_row(done, final.classes)


def _message(row: ManifestRow, err: Exception) -> str:
    """The error cell of a failed row: one line that names the row's file."""
    text = str(err) if isinstance(err, PredictInputError) else f"{type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text if str(row.path) in text else f"{row.path}: {text}"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _claimed_rows(out: Path, config: dict[str, object], overwrite: bool) -> dict[str, str]:
    """The row digests of an earlier run of ``config`` in ``out`` (empty: nothing to reuse).

    Raises:
        RunConfigError: ``out`` holds predictions of another configuration, or predictions
            without ``predict.json`` (without ``overwrite``).
    """
    path = out / CLAIM
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("hash") == config_hash(config):
            return dict(old.get("rows", {}))
        if not overwrite:
            before = old.get("config", {})
            keys = [k for k in sorted(set(before) | set(config)) if before.get(k) != config.get(k)]
            raise RunConfigError(
                f"{out} holds predictions of another configuration (differs in: "
                f"{', '.join(keys) or 'unknown'}); use another out_dir, or overwrite=true to "
                "discard them"
            )
    elif (out / PREDICTIONS).is_file() and not overwrite:
        raise RunConfigError(
            f"{out} holds a {PREDICTIONS} but no {CLAIM}, so what it predicted is unknown; use "
            "another out_dir, or overwrite=true to replace it"
        )
    return {}


def _earlier(out: Path, digests: Mapping[str, str], columns: Sequence[str]) -> dict[str, dict]:
    """Rows predicted without error by the earlier run, by their cells' digest (none when its
    table is unreadable or has other columns: those rows are predicted again)."""
    path = out / PREDICTIONS
    if not digests or not path.is_file():
        return {}
    try:
        table = _read(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, KeyError):
        return {}
    if list(table.columns) != list(columns):
        return {}
    done = table[table["error"] == ""].to_dict("records")
    return {digests[str(r["row"])]: r for r in done if str(r["row"]) in digests}


def _write(path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> None:
    """Write the table atomically (a temporary name, then rename): never a torn file."""
    table = pd.DataFrame(list(rows), columns=list(columns))
    for key in _INTEGERS:
        table[key] = pd.to_numeric(table[key]).astype("Int64")
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(path)


def _read(path: Path) -> pd.DataFrame:
    """A table :func:`_write` wrote, with its types (integers, text ids, ``""`` for no error)."""
    table = pd.read_csv(path, dtype={"subject": str, "clip": str, "label": str, "error": str})
    for key in _INTEGERS:
        table[key] = table[key].astype("Int64")
    table["error"] = table["error"].fillna("")
    return table


def predict_manifest(
    run_dir: str | Path, manifest: str | Path, out_dir: str | Path, *, preview: bool = False,
    overwrite: bool = False, progress: bool = True, **options: object,
) -> ManifestPredictions:  # fmt: skip
    """Predict every row of ``manifest`` with ``run_dir``'s final model (see the module).

    Args:
        run_dir: a ``mer train protocol=all`` folder (or its ``final.pt``).
        manifest: the CSV.
        out_dir: where ``predictions.csv``, ``predict.json`` and ``preview/`` go.
        preview: write ``preview/<subject>_<clip>.png`` for every clip predicted.
        overwrite: discard the predictions of another configuration in ``out_dir``.
        progress: a progress bar over the rows.
        options: :func:`recognizer.inference.prediction.predict_clip`'s keywords but the
            times (``fps`` is
            the frame rate of rows without an ``fps`` cell).

    Raises:
        FinalModelError, ReleaseNotFoundError, AnnotationError, PredictInputError: a bad run,
            manifest or row cell, before anything is written. RunConfigError: ``out_dir``
            holds other predictions.
    """
    rows, has_label = read_manifest(manifest)
    final = load_final_model(run_dir)
    out = Path(out_dir)
    config = {
        "final_model": _file_digest(final.path),
        "manifest": str(Path(manifest).resolve()),
        **{f"options.{k}": v for k, v in sorted(options.items())},
    }
    head = ["row", "subject", "clip", *(["label"] if has_label else [])]
    columns = [*head, "input", "onset", "apex", "offset", "fps", "apex_rule",
               *[f"p_{c}" for c in final.classes], "predicted", "error"]  # fmt: skip
    digests = [config_hash(dict(r.cells)) for r in rows]
    earlier = _earlier(out, _claimed_rows(out, config, overwrite), columns)
    out.mkdir(parents=True, exist_ok=True)
    claim = {"hash": config_hash(config), "config": config,
             "rows": {str(r.row): d for r, d in zip(rows, digests)}}  # fmt: skip
    (out / f".{CLAIM}.tmp").write_text(json.dumps(claim, indent=2, default=str))
    (out / f".{CLAIM}.tmp").replace(out / CLAIM)
    results: dict[int, dict[str, object]] = {}
    for i, (row, digest) in enumerate(zip(rows, digests)):
        if digest in earlier:
            results[i] = {**earlier[digest], "row": row.row}
    reused = len(results)
    if reused:
        tqdm.write(f"{reused} of {len(rows)} clips predicted earlier in {out}: reusing them")
    path = out / PREDICTIONS
    _write(path, [results[i] for i in sorted(results)], columns)
    todo = [i for i in range(len(rows)) if i not in results]
    for i in tqdm(todo, desc="predict", unit="clip", disable=not progress):
        row = rows[i]
        ids = {"row": row.row, "subject": row.subject, "clip": row.clip,
               "label": row.cells.get("label", "")}  # fmt: skip
        try:
            results[i] = {**ids, **_predict_row(final, row, out, preview, options), "error": ""}
        except Exception as err:  # one bad clip must not stop the others
            results[i] = {**ids, "input": str(row.path), "error": _message(row, err)}
        _write(path, [results[j] for j in sorted(results)], columns)
    return ManifestPredictions(_read(path), path, reused)
