"""A fake MEGC2019-composite-style release: synthetic clips with known settings, stored as
apex-flow images in the composite's format (u, v, strain PNGs, each channel min-max scaled per
image) plus one face crop per subject, listed in a manifest CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import calibrated_motion
from mesynth.face.identities import IdentityAugmentation, load_identities
from mesynth.flow import apex_flow, save_apex_flow
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.generation.store_reader import store_records
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.records import apex_of, read_record_frames
from mesynth.templates.bank import TemplateBank

#: rendered crop side and flow-image side (the composite's 28 x 28)
CROP = 64
FLOW = 28


@dataclass(frozen=True)
class FlowRow:
    """A manifest row holding one apex-flow image (duck-typed like recognizer's Sample)."""

    subject: str
    clip: str
    emotion: str
    frames: tuple[str, ...]
    frame_numbers: tuple[int, ...] = (0,)
    onset: int = 0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FakeComposite:
    """The manifest, its rows, the faces' true landmarks (normalised) and their subjects."""

    manifest: Path
    rows: list[FlowRow]
    landmarks: np.ndarray
    subjects: list[str]


def make_composite(
    root: Path, profile: CalibrationProfile, *, per_class: int = 4, seed: int = 0
) -> FakeComposite:
    """Render ``per_class`` clips per dfme7 emotion on 8 faces (the two portraits and three
    augmented copies each) with ``profile``'s effects, and write them as a composite release:
    ``root/flows/*.png``, ``root/faces/<subject>.png`` (the onset crop) and
    ``root/manifest.csv`` (``subject, clip, label, path, face``). Subjects are ``fake/sNN``."""
    faces = load_identities(
        "builtin", size=CROP, seed=0, augmentation=IdentityAugmentation(copies=3)
    )
    bank = TemplateBank.expert("dfme7")
    store = root / "store"
    generate(
        faces,
        bank,
        calibrated_motion(MotionModel.expert(), profile, bank),
        TimingSampler(fps=60),
        equal(per_class, list(bank.emotions), seed=seed),
        store,
        mode="onset_apex",
        effects=profile,
        device="cpu",
        progress=False,
    )
    subject_of = {name: f"fake/s{i:02d}" for i, name in enumerate(faces.names)}
    (root / "faces").mkdir(parents=True, exist_ok=True)
    rows, lines = [], []
    for i, record in enumerate(store_records(store)):
        onset, apex = read_record_frames(record, [record.onset, apex_of(record)])
        subject = subject_of[record.identity]
        path = save_apex_flow(
            root / "flows" / f"{i:03d}.png", apex_flow(onset, apex, FLOW, "farneback")
        )
        face = root / "faces" / f"{subject.split('/')[1]}.png"
        if not face.is_file():
            cv2.imwrite(str(face), np.ascontiguousarray(onset[:, :, ::-1]))
        rows.append(
            FlowRow(subject, f"c{i:03d}", record.emotion, (str(path),), extra={"face": str(face)})
        )
        lines.append(
            [subject, f"c{i:03d}", record.emotion, f"flows/{i:03d}.png", f"faces/{face.name}"]
        )
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "clip", "label", "path", "face"])
        writer.writerows(lines)
    landmarks = np.stack([f.landmarks / CROP for f in faces.identities])
    return FakeComposite(manifest, rows, landmarks, [subject_of[n] for n in faces.names])
