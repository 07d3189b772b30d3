"""One engine for every release that ships an annotation sheet: a :class:`ReleaseSpec` declares
the release, :func:`load_release` turns its rows into checked samples.

A spec says where the sheet is, which column holds each canonical field (:data:`FIELDS`), where
a row's frame folder is (a layout, :mod:`recognizer.datasets.layouts`), the frame rate, and the
few hooks a release truly needs (CAS(ME)^3 numbers repeated videos, CASME II detects its sheet
version). Every row goes through :func:`recognizer.datasets.clips.build_sample`, so every release
gets the same errata (keyed by the spec's ``name``), frame checks and report. A user's column
mapping (DFME) is the same mechanism: :meth:`ReleaseSpec.with_columns`.

Per row, in order: place it in the frame tree, parse the onset/apex/offset cells (text that is no
frame number skips the row), skip it if the layout could not place it, then check it against
its frames. Skips name the spreadsheet row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from recognizer.data.samples import Sample
from recognizer.datasets.checks import drop_duplicates, verify_media
from recognizer.datasets.clips import RowFields, build_sample, parse_frame_cells
from recognizer.datasets.errors import AnnotationError, ReleaseNotFoundError
from recognizer.datasets.frames import find_file, find_tree
from recognizer.datasets.layouts import FolderLayout, Locator, Row, SubjectClipFolders
from recognizer.datasets.report import LoadReport, LoadResult
from recognizer.datasets.sheets import Table, column, read_table

#: canonical fields a column can be mapped to; the engine needs :data:`ESSENTIAL` in every sheet.
FIELDS = ("subject", "clip", "onset", "apex", "offset", "emotion", "aus", "part")
ESSENTIAL = ("subject", "clip", "onset", "offset", "emotion")
MISSING_APEX = ("middle", "skip")
#: the columns most coding sheets share (CASME II, SAMM, MMEW; DFME's default).
COMMON_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame"),
    "apex": ("ApexFrame", "Apex Frame"),
    "offset": ("OffsetFrame", "Offset Frame"),
    "aus": ("Action Units",),
    "emotion": ("Estimated Emotion", "Emotion"),
}


@dataclass(frozen=True)
class ReleaseSpec:
    """Everything the engine needs to know about one release.

    Attributes:
        name: loader name; qualifies subjects (``"samm/006"``) and keys the errata.
        title: the release's name in messages (``"CASME II"``).
        what: what the annotation file is, in messages (``"CASME II coding sheet"``).
        sheet_patterns: glob patterns of the annotation file in the root (or one level down).
        sheet_hint: the file name shown when none is found.
        columns: canonical field -> its column spellings, tried in order (case-insensitive).
        fps: frames per second, or per part (``{"A": 500.0, ...}``; the part is the ``part``
            column, else ``default_part``).
        required: fields whose column must be present (they also find the header row).
        extra_columns: ``Sample.extra`` key -> column spellings, kept when the column exists.
        sheet: the sheet to read (``None``: the first).
        newest_sheet: with several matching files take the last by name (dates in names), not
            the first.
        frame_trees: spellings of the frame tree below the root (none found: the root).
        layout: where a row's frame folder is.
        default_part: the part of rows without a part cell (per-part ``fps`` only).
        prepare_rows: rewrites the rows before they are placed (CAS(ME)^3 repeated videos).
        sheet_version: names the sheet version from its columns; kept in every sample's
            ``extra["version"]`` and noted.
        report_unannotated: note ``<subject>/<clip>`` folders of the tree that no row names.
    """

    name: str
    title: str
    what: str
    sheet_patterns: tuple[str, ...]
    sheet_hint: str
    columns: Mapping[str, tuple[str, ...]]
    fps: float | Mapping[str, float]
    required: tuple[str, ...] = ("subject", "clip", "onset", "apex", "offset", "emotion")
    extra_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sheet: str | None = None
    newest_sheet: bool = False
    frame_trees: tuple[str, ...] = ()
    layout: FolderLayout = field(default_factory=SubjectClipFolders)
    default_part: str = ""
    prepare_rows: Callable[[Sequence[Row]], list[Row]] | None = None
    sheet_version: Callable[[Table], str] | None = None
    report_unannotated: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"{self.name}: unknown fields {unknown}; known: {', '.join(FIELDS)}")
        absent = [f for f in ESSENTIAL if f not in self.required]
        unmapped = [f for f in self.required if not self.columns.get(f)]
        if absent or unmapped:
            raise ValueError(
                f"{self.name}: fields {absent} must be required and fields {unmapped} need "
                "column spellings"
            )
        rates = self.fps.values() if isinstance(self.fps, Mapping) else [self.fps]
        if not rates or any(r <= 0 for r in rates):
            raise ValueError(f"{self.name}: fps must be positive, got {self.fps}")

    def with_columns(self, columns: Mapping[str, str]) -> ReleaseSpec:
        """This spec with some fields read from the given columns (``{"subject": "participant"}``).

        Raises:
            ValueError: a key that is not a mapped field (the message lists the known ones).
        """
        unknown = sorted(set(columns) - set(self.columns))
        if unknown:
            raise ValueError(
                f"unknown column keys {unknown}; known keys: {', '.join(self.columns)}"
            )
        return replace(self, columns={**self.columns, **{k: (v,) for k, v in columns.items()}})


def release_root(spec: ReleaseSpec, root: str | Path) -> Path:
    """``root`` as a path; raises :class:`ReleaseNotFoundError` when it is no folder."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseNotFoundError(f"{spec.title} root not found: {root}")
    return root


def find_annotation(spec: ReleaseSpec, root: Path, annotation: str | Path | None) -> Path:
    """The annotation file: ``annotation`` (relative to the cwd or ``root``) or found by pattern.

    Raises:
        ReleaseNotFoundError: none given and none matches ``spec.sheet_patterns``.
    """
    if annotation is not None:
        path = Path(annotation)
        return path if path.is_absolute() or path.exists() else root / path
    found = find_file(root, spec.sheet_patterns)
    if not found:
        raise ReleaseNotFoundError(
            f"no {spec.what} ({spec.sheet_hint}) in {root}; pass annotation=PATH"
        )
    return sorted(found, key=lambda p: p.name)[-1] if spec.newest_sheet else found[0]


def load_release(
    spec: ReleaseSpec,
    root: str | Path,
    *,
    annotation: str | Path | None = None,
    sheet: str | None = None,
    frames_root: Path | None = None,
    missing_apex: str = "middle",
    extra: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
    verify: bool = False,
) -> LoadResult:
    """Load a release described by ``spec``.

    A row that repeats an earlier row's clip is skipped (``"duplicate of row N"``).

    Args:
        spec: the release.
        root: the release folder.
        annotation: the annotation file (default: found by ``spec.sheet_patterns``).
        sheet: the sheet to read (default ``spec.sheet``).
        frames_root: the frame tree (default: ``spec.frame_trees`` below ``root``, else ``root``).
        missing_apex: ``"middle"`` keeps rows without an apex (middle frame, reported) or
            ``"skip"`` skips them.
        extra: fields added to every sample's ``extra`` (``{"frames": "cropped"}``).
        notes: lines for the report (what the caller chose).
        verify: drop and report the clips whose frame files are empty or unreadable
            (:func:`~recognizer.datasets.checks.verify_media`).

    Raises:
        ReleaseNotFoundError: no root or no annotation file.
        AnnotationError: the sheet lacks a required column, or a row's part has no frame rate.
        ValueError: unknown ``missing_apex``.
    """
    if missing_apex not in MISSING_APEX:
        raise ValueError(f"missing_apex must be one of {MISSING_APEX}; got {missing_apex!r}")
    root = release_root(spec, root)
    path = find_annotation(spec, root, annotation)
    required = [spec.columns[f] for f in spec.required]
    table = read_table(path, required=required, sheet=sheet or spec.sheet, what=spec.what)
    tree = frames_root or find_tree(root, spec.frame_trees) or root
    report = LoadReport(spec.name, table.where(), rows_read=len(table.rows))
    shared = dict(extra or {})
    for line in notes:
        report.note(line)
    if spec.sheet_version is not None:
        shared["version"] = spec.sheet_version(table)
        report.note(f"sheet version {shared['version']} (detected by its columns)")
    locator = spec.layout.open(tree, table.where())
    report.note(f"header on row {table.header_row}; frame folders: {locator.description}")
    mapped = {f: column(table, *names) for f, names in spec.columns.items()}
    if mapped.get("apex") is None:
        report.note("the sheet has no apex column: the middle frame is used for every clip")
    if isinstance(spec.fps, Mapping):
        report.note(f"fps per part: {dict(spec.fps)}")
    rows = [_row(spec, table, number, cells, mapped, shared) for number, cells in table.records()]
    if spec.prepare_rows is not None:
        rows = spec.prepare_rows(rows)
    run = _Run(spec, table, locator, report, missing_apex, has_apex=mapped.get("apex") is not None)
    samples = [sample for sample in map(run.sample, rows) if sample is not None]
    samples = drop_duplicates(samples, report)
    if spec.report_unannotated:
        _note_unannotated(tree, run.placed, report)
    report.kept = len(samples)
    result = LoadResult(samples, report)
    return verify_media(result) if verify else result


def sheet_loader(
    spec: ReleaseSpec, *, what: str, root_doc: str = "the release folder."
) -> Callable[..., LoadResult]:
    """The ``load`` of a release read from one sheet as ``spec`` declares it, with nothing
    to choose but the annotation file, the sheet and the rows without an apex (SAMM, MMEW,
    CAS(ME)^3).

    Args:
        spec: the release.
        what: what ``load`` reads, for its docstring (``"SAMM"``).
        root_doc: what ``root`` is, for its docstring.
    """

    def load(
        root: str | Path,
        *,
        annotation: str | Path | None = None,
        sheet: str | None = spec.sheet,
        missing_apex: str = "middle",
    ) -> LoadResult:
        return load_release(
            spec, root, annotation=annotation, sheet=sheet, missing_apex=missing_apex
        )

    default_sheet = f"``{spec.sheet}``" if spec.sheet else "the first"
    load.__doc__ = f"""Load {what}.

    Args:
        root: {root_doc}
        annotation: the {spec.what}; default ``{spec.sheet_patterns[0]}`` in ``root``.
        sheet: the sheet to read (default {default_sheet}).
        missing_apex: ``"middle"`` or ``"skip"`` for rows without an apex.
    """
    return load


def _row(
    spec: ReleaseSpec,
    table: Table,
    number: int,
    cells: dict[str, str],
    mapped: Mapping[str, str | None],
    shared: Mapping[str, str],
) -> Row:
    values = {f: cells[c] if c else "" for f, c in mapped.items()}
    extra = dict(shared)
    for key, names in spec.extra_columns.items():
        name = column(table, *names)
        if name is not None:
            extra[key] = cells[name]
    if isinstance(spec.fps, Mapping):
        values["part"] = values.get("part") or spec.default_part
        extra["part"] = values["part"]
    return Row(number, cells, values, extra)


@dataclass
class _Run:
    """One load in progress: turns rows into samples and remembers the folders it placed."""

    spec: ReleaseSpec
    table: Table
    locator: Locator
    report: LoadReport
    missing_apex: str
    has_apex: bool
    placed: set[Path] = field(default_factory=set)

    def fps(self, row: Row) -> float:
        rates = self.spec.fps
        if not isinstance(rates, Mapping):
            return float(rates)
        part = row.values["part"]
        if part not in rates:
            raise AnnotationError(
                f"{self.table.where()}, row {row.number}: part {part!r} has no frame rate; give "
                f"fps={{{part!r}: ...}} (known parts: {', '.join(rates)})"
            )
        return float(rates[part])

    def sample(self, row: Row) -> Sample | None:
        located = self.locator.locate(row)
        fps = self.fps(row)
        name = f"{located.subject}/{row.clip}"
        frame_cells = {k: row.values.get(k, "") for k in ("onset", "apex", "offset")}
        parsed = parse_frame_cells(self.report, row.number, name, frame_cells)
        if parsed is None:
            return None
        if located.problem:
            self.report.skip(row.number, name, located.problem)
            return None
        if located.folder is not None:
            self.placed.add(located.folder)
        fields = RowFields(
            row=row.number,
            subject=located.subject,
            clip=row.clip,
            folder=located.folder,
            onset=parsed["onset"],
            apex=parsed["apex"],
            offset=parsed["offset"],
            fps=fps,
            emotion=row.values["emotion"],
            aus=row.values.get("aus", ""),
            sheet_subject=row.subject,
            apex_cell=frame_cells["apex"],
            extra=row.extra,
        )
        return build_sample(
            self.spec.name,
            fields,
            self.report,
            missing_apex=self.missing_apex,
            report_missing_apex=self.has_apex,
        )


def _note_unannotated(tree: Path, placed: set[Path], report: LoadReport) -> None:
    named = {(p.parent.name, p.name) for p in placed}
    orphans = sorted(
        f"{s.name}/{c.name}"
        for s in tree.iterdir()
        if s.is_dir()
        for c in s.iterdir()
        if c.is_dir() and (s.name, c.name) not in named
    )
    if orphans:
        report.note(f"{len(orphans)} frame folders have no sheet row: {', '.join(orphans)}")
