"""Expert AU-emotion tables shipped as YAML under ``mesynth/templates/data/expert/``, turned into
templates.

Three kinds of table (``kind:`` in the file):

``combinations``
    rows ``{emotion, aus, cite}``: each row is one template per reading of its AU string
    (``L/R-AU12`` gives an ``L12`` and an ``R12`` template sharing the row's weight). With
    ``weights_from: <occurrence table>``, a row's weight is the product of the occurrence rates
    of its AUs for that emotion: the share of that emotion's MEs that show at least this
    combination, if AUs occurred independently. Without it every row weighs 1.
``occurrence``
    rows ``{emotion, au, rate, cite}`` (rate in %): one template per emotion whose AUs are all
    optional, each firing with its rate.
``rules``
    rows ``{emotion, au, probability, cite}``: one template per emotion; probability-1 AUs are
    always present, the others fire with their probability.

Within one table and one scheme label, weights are normalised to sum to 1, each source emotion
that maps to the label getting an equal share (megc3 "negative" gathers anger, contempt,
disgust, fear and sadness). Rows whose emotion the scheme excludes are reported, not used.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from mesynth.labels.au import AUCombination, parse_aus
from mesynth.labels.emotions import UnknownLabelError, scheme_labels, to_scheme
from mesynth.templates.types import (
    BankReport,
    OptionalAU,
    SkippedRow,
    Template,
    TemplateAU,
    TemplateError,
)

#: the tables used by :meth:`TemplateBank.expert` when none are named.
DEFAULT_TABLES: dict[str, tuple[str, ...]] = {
    "dfme7": ("dfme_table6", "dfme_table4"),
    "casme2_5": ("casme2_criteria",),
    "megc3": ("megc_objective", "dfme_table6", "casme2_criteria"),
}

_KINDS = {
    "combinations": ("emotion", "aus", "cite"),
    "occurrence": ("emotion", "au", "rate", "cite"),
    "rules": ("emotion", "au", "probability", "cite"),
}


@dataclass(frozen=True)
class ExpertTable:
    """One validated table file."""

    name: str
    kind: str
    citation: str
    rows: tuple[dict, ...]
    path: str
    weights_from: str | None = None

    def row_id(self, index: int) -> str:
        return f"{self.path} row {index + 1}"


def shipped_tables() -> tuple[str, ...]:
    """Names of the tables shipped with the package."""
    folder = resources.files("mesynth.templates").joinpath("data", "expert")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_table(name: str | Path) -> ExpertTable:
    """Load a shipped table by name (``dfme_table6``) or a user table by path, validated.

    Raises:
        TemplateError: unknown name, unreadable file, or a malformed row (file and row named).
    """
    if str(name) in shipped_tables():
        resource = resources.files("mesynth.templates").joinpath("data", "expert", f"{name}.yaml")
        text = resource.read_text(encoding="utf-8")
        path = f"mesynth/templates/data/expert/{name}.yaml"
    elif Path(name).is_file():
        text, path = Path(name).read_text(encoding="utf-8"), str(name)
    else:
        raise TemplateError(
            f"unknown expert table {str(name)!r}; shipped tables: {', '.join(shipped_tables())} "
            "(or give the path of a YAML table)"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TemplateError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise TemplateError(f"{path}: expected a mapping with a 'rows' list")
    kind = data.get("kind")
    if kind not in _KINDS:
        raise TemplateError(f"{path}: kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    table = ExpertTable(
        name=str(data.get("name", Path(path).stem)),
        kind=kind,
        citation=" ".join(str(data.get("citation", "")).split()),
        rows=tuple(data["rows"]),
        path=path,
        weights_from=data.get("weights_from"),
    )
    for index, row in enumerate(table.rows):
        _validate_row(table, index, row)
    return table


def _validate_row(table: ExpertTable, index: int, row: object) -> None:
    where = table.row_id(index)
    if not isinstance(row, dict):
        raise TemplateError(f"{where}: expected a mapping, got {row!r}")
    missing = [key for key in _KINDS[table.kind] if key not in row]
    if missing:
        raise TemplateError(f"{where}: missing {', '.join(missing)} in {row!r}")
    combo = parse_aus(row["aus"] if table.kind == "combinations" else row["au"])
    if combo.is_empty or combo.unknown_tokens:
        raise TemplateError(f"{where}: AU string {combo.canonical()!r} has no AU or unknown tokens")
    value_key = {"occurrence": "rate", "rules": "probability"}.get(table.kind)
    if value_key is not None:
        limit = 100.0 if value_key == "rate" else 1.0
        value = row[value_key]
        if not isinstance(value, (int, float)) or not 0 < value <= limit:
            raise TemplateError(f"{where}: {value_key} must be in (0, {limit:g}], got {value!r}")


def _template_aus(combo: AUCombination) -> tuple[TemplateAU, ...]:
    return tuple(
        TemplateAU(au.code, au.side, au.relative_intensity)
        for au in combo.aus
        if not au.reference_only
    )


def _occurrence_lookup(table: ExpertTable) -> dict[tuple[str, int, bool], float]:
    """(emotion, code, one-sided) -> rate in [0, 1]."""
    rates = {}
    for row in table.rows:
        combo = parse_aus(row["au"])
        one_sided = combo.has_alternatives or any(au.side for au in combo.aus)
        rates[(str(row["emotion"]).lower(), combo.codes[0], one_sided)] = row["rate"] / 100.0
    return rates


def _combination_weight(
    emotion: str, aus: Sequence[TemplateAU], rates: dict[tuple[str, int, bool], float]
) -> float:
    own = [rate for (e, _, _), rate in rates.items() if e == emotion]
    fallback = min(own) / 2.0 if own else 1.0
    weight = 1.0
    for au in aus:
        one_sided = au.side is not None
        weight *= rates.get(
            (emotion, au.code, one_sided), rates.get((emotion, au.code, not one_sided), fallback)
        )
    return weight


def _raw_templates(table: ExpertTable) -> list[tuple[str, tuple[int, ...], Template]]:
    """(source emotion, row indices, template with unnormalised weight) per row/reading."""
    source = f"expert:{table.name}"
    out: list[tuple[str, tuple[int, ...], Template]] = []
    if table.kind == "combinations":
        rates = _occurrence_lookup(load_table(table.weights_from)) if table.weights_from else None
        for index, row in enumerate(table.rows):
            emotion = str(row["emotion"]).lower()
            readings = parse_aus(row["aus"]).readings()
            for reading in readings:
                aus = _template_aus(reading)
                weight = _combination_weight(emotion, aus, rates) if rates else 1.0
                citation = f"{row['cite']}: {row['aus']} ({table.citation})"
                template = Template(emotion, aus, source, weight / len(readings), citation)
                out.append((emotion, (index,), template))
        return out
    by_emotion: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for index, row in enumerate(table.rows):
        by_emotion[str(row["emotion"]).lower()].append((index, row))
    for emotion, rows in by_emotion.items():
        fixed: list[TemplateAU] = []
        optional: list[OptionalAU] = []
        for _, row in rows:
            combo = parse_aus(row["au"])
            choices = tuple(au for reading in combo.readings() for au in _template_aus(reading))
            probability = row["rate"] / 100.0 if table.kind == "occurrence" else row["probability"]
            if probability >= 1.0 and len(choices) == 1:
                fixed.append(choices[0])
            else:
                optional.append(OptionalAU(choices, float(probability)))
        citation = f"{rows[0][1]['cite']} ({table.citation})"
        template = Template(emotion, tuple(fixed), source, 1.0, citation, tuple(optional))
        out.append((emotion, tuple(i for i, _ in rows), template))
    return out


def expert_templates(
    scheme: str, tables: Sequence[str | Path] | None = None
) -> tuple[list[Template], BankReport]:
    """Templates of ``scheme`` from expert tables (default :data:`DEFAULT_TABLES`).

    Each table's templates sum to weight 1 per scheme label (see the module docstring).
    """
    scheme_labels(scheme)
    names = DEFAULT_TABLES[scheme] if tables is None else tuple(tables)
    if not names:
        raise TemplateError("no expert table named; shipped tables: " + ", ".join(shipped_tables()))
    report = BankReport(source=f"expert tables ({', '.join(map(str, names))})")
    templates: list[Template] = []
    for name in names:
        table = load_table(name)
        report.rows_read += len(table.rows)
        per_label: dict[str, dict[str, list[Template]]] = defaultdict(lambda: defaultdict(list))
        used_rows: set[int] = set()
        skipped_rows: set[int] = set()
        for emotion, indices, template in _raw_templates(table):
            try:
                label = to_scheme(emotion, scheme)
            except UnknownLabelError as error:
                raise TemplateError(f"{table.row_id(indices[0])}: {error}") from error
            if label is None:
                report.skipped += [
                    SkippedRow(table.row_id(i), "emotion excluded by scheme", emotion)
                    for i in indices
                    if i not in skipped_rows
                ]
                skipped_rows.update(indices)
                continue
            used_rows.update(indices)
            per_label[label][emotion].append(template)
        report.rows_used += len(used_rows)
        for label, by_emotion in per_label.items():
            for group in by_emotion.values():
                total = sum(t.weight for t in group)
                for t in group:
                    weight = t.weight / total / len(by_emotion)
                    templates.append(
                        Template(label, t.aus, t.source, weight, t.citation, t.optional)
                    )
    return templates, report
