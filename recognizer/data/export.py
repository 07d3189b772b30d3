"""Apex-flow images on disk, written by ``mer prepare`` and loadable with the manifest loader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mesynth.flow import save_apex_flow
from recognizer.data.frame_source import FrameSource
from recognizer.data.representations import ApexFlow
from recognizer.data.safe_paths import path_inside, safe_path_component
from recognizer.data.samples import Sample


def write_apex_flow_images(
    samples: Sequence[Sample],
    labels: Sequence[str],
    out_dir: str | Path,
    source: FrameSource,
    representation: ApexFlow | None = None,
) -> Path:
    """Write one apex-flow PNG per sample plus a ``manifest.csv`` over them.

    Files are ``<out_dir>/<dataset>/<subject>__<clip>.png`` (channels u, v, strain as R, G, B),
    each name made safe by :func:`~recognizer.data.safe_paths.safe_path_component` and checked to
    stay inside ``out_dir``; every path is checked before the first image is written.
    The manifest has the columns of the ``manifest`` loader (``subject, clip, label, path,
    dataset``), so the images load back with ``recognizer.datasets.load("manifest", out_dir)``.

    Returns:
        The manifest path.

    Raises:
        UnsafePathError: an empty dataset, subject or clip, or a path outside ``out_dir``.
    """
    if len(samples) != len(labels):
        raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
    out_dir = Path(out_dir)
    representation = representation or ApexFlow()
    lines = ["subject,clip,label,path,dataset"]
    relatives = [_image_path(out_dir, sample) for sample in samples]
    for sample, label, relative in zip(samples, labels, relatives):
        subject = sample.subject.split("/", 1)[1]
        save_apex_flow(out_dir / relative, representation.image(sample, source))
        lines.append(f"{subject},{sample.clip},{label},{relative.as_posix()},{sample.dataset}")
    manifest = out_dir / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _image_path(out_dir: Path, sample: Sample) -> Path:
    """``<dataset>/<subject>__<clip>.png`` of ``sample``, relative to ``out_dir``."""
    subject = sample.subject.split("/", 1)[1]
    dataset = safe_path_component(sample.dataset, f"dataset of {sample.uid}")
    name = safe_path_component(f"{subject}__{sample.clip}", f"subject and clip of {sample.uid}")
    relative = Path(dataset) / f"{name}.png"
    path_inside(out_dir, out_dir / relative)
    return relative


def write_annotation_table(samples: Sequence[Sample], path: str | Path) -> tuple[Path, int]:
    """Write the annotation records of ``samples`` that have AUs as a CSV (``subject, clip,
    emotion, aus, dataset``: the emotion and AU strings as the release spells them, subjects
    dataset-qualified) that :func:`mesynth.templates.mining.read_annotation_table` reads and
    ``recipe.templates.annotation_tables`` mines.

    Returns:
        ``(path, rows written)``.

    Raises:
        ValueError: no sample has an AU string (e.g. SMIC, which has no AU annotations).
    """
    import pandas as pd

    rows = [
        {"subject": s.subject, "clip": s.clip, "emotion": s.emotion, "aus": s.aus,
         "dataset": s.dataset}
        for s in samples
        if str(s.aus or "").strip()
    ]  # fmt: skip
    if not rows:
        raise ValueError(
            f"none of the {len(samples)} samples has an AU annotation: nothing to mine "
            "(SMIC has none; CASME II, SAMM, CAS(ME)^3, MMEW and DFME have)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["subject", "clip", "emotion", "aus", "dataset"]).to_csv(
        path, index=False
    )
    return path, len(rows)
