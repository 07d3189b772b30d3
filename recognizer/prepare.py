"""Apex-flow images on disk, written by ``mer prepare`` and loadable with the manifest loader."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mesynth.flow import save_apex_flow
from recognizer.data.frame_source import FrameSource
from recognizer.data.representations import ApexFlow
from recognizer.data.samples import Sample


def write_apex_flow_images(
    samples: Sequence[Sample],
    labels: Sequence[str],
    out_dir: str | Path,
    source: FrameSource,
    representation: ApexFlow | None = None,
) -> Path:
    """Write one apex-flow PNG per sample plus a ``manifest.csv`` over them.

    Files are ``<out_dir>/<dataset>/<subject>__<clip>.png`` (channels u, v, strain as R, G, B).
    The manifest has the columns of the ``manifest`` loader (``subject, clip, label, path,
    dataset``), so the images load back with ``recognizer.datasets.load("manifest", out_dir)``.

    Returns:
        The manifest path.
    """
    if len(samples) != len(labels):
        raise ValueError(f"{len(samples)} samples but {len(labels)} labels")
    out_dir = Path(out_dir)
    representation = representation or ApexFlow()
    lines = ["subject,clip,label,path,dataset"]
    for sample, label in zip(samples, labels):
        subject = sample.subject.split("/", 1)[1]
        relative = Path(sample.dataset) / f"{subject}__{sample.clip}.png"
        save_apex_flow(out_dir / relative, representation.image(sample, source))
        lines.append(f"{subject},{sample.clip},{label},{relative.as_posix()},{sample.dataset}")
    manifest = out_dir / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
