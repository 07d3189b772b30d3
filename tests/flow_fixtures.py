"""A fake MEGC2019-composite-style release: synthetic clips with known settings, stored as
apex-flow images in the composite's format (u, v, strain PNGs, each channel min-max scaled per
image) plus one face crop per subject, listed in a manifest CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mesynth.calibration.profile import CalibrationProfile
from mesynth.face.identities import IdentityAugmentation, load_identities
from mesynth.flow import apex_flow, save_apex_flow
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate_from_profile
from mesynth.generation.store_reader import store_records
from mesynth.labels.emotions import scheme_labels
from mesynth.records import apex_of, read_record_frames
from tests.fake_records import FakeRecord

#: rendered crop side and flow-image side (the composite's 28 x 28)
CROP = 64
FLOW = 28


@dataclass(frozen=True)
class FakeComposite:
    """The manifest, its rows, the faces' true landmarks (normalised) and their subjects."""

    manifest: Path
    rows: list[FakeRecord]
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
    plan = equal(per_class, list(scheme_labels("dfme7")), seed=seed)
    store = root / "store"
    generate_from_profile(
        faces, profile, plan, store, mode="onset_apex", device="cpu", progress=False
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
            FakeRecord(
                subject,
                f"c{i:03d}",
                emotion=record.emotion,
                frames=(str(path),),
                frame_numbers=(0,),
                extra={"face": str(face)},
            )
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


#: dataset-qualified subjects of :func:`write_flow_manifest`
MANIFEST_SUBJECTS = ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007", "smic/s1", "smic/s2"]
#: (label, AUs) of each subject's clips: "negative" is the majority class
MANIFEST_CLIPS = [("negative", "4+7"), ("negative", "4"), ("positive", "12"), ("surprise", "1+2")]


def write_flow_manifest(root: Path) -> Path:
    """A MEGC2019-like manifest under ``root``: ``manifest.csv`` (subject, clip, label, path,
    dataset, aus, face) with random 28 x 28 apex-flow PNGs (2-4 clips per subject) and one face
    crop per subject (a built-in portrait or one of its augmentations, 96 px); returns ``root``.
    """
    import pandas as pd

    faces = load_identities(
        "builtin", size=96, augmentation=IdentityAugmentation(copies=2), cache_dir=root / "lm"
    ).identities
    rng = np.random.default_rng(0)
    rows = []
    for s, subject in enumerate(MANIFEST_SUBJECTS):
        dataset, name = subject.split("/")
        face = Path("faces") / f"{dataset}_{name}.png"
        (root / face).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(root / face), faces[s % len(faces)].image[:, :, ::-1])
        for c, (label, aus) in enumerate(MANIFEST_CLIPS[: 2 + s % 3]):
            path = Path("flow") / dataset / f"{name}_{c}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / path), rng.integers(0, 256, (FLOW, FLOW, 3), dtype=np.uint8))
            rows.append({
                "subject": subject, "clip": f"{name}_{c}", "label": label, "path": str(path),
                "dataset": dataset, "aus": "" if dataset == "smic" else aus, "face": str(face),
            })  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def synth_fill_flow_run(manifest: Path, render_size: int, cache_dir: Path) -> list[str]:
    """``mer train`` arguments of a one-epoch LOSO STSTNet run with ``synth_fill`` on an
    apex-flow ``manifest``: synthetic clips animate the manifest's own face crops (no copies),
    rendered at ``render_size`` px on the CPU and cached in ``cache_dir``."""
    return [
        "train", "data=manifest", f"data.loader.root={manifest}",
        "representation=apex_flow", f"representation.render_size={render_size}", "model=ststnet",
        "protocol=loso", "remedy=synth_fill", "protocol.val_fraction=0", "trainer=ststnet",
        "trainer.epochs=1", "trainer.batch_size=8", "trainer.device=cpu",
        "trainer.num_workers=0", "trainer.progress=false",
        "remedy.synthesis.identities.source=data", "remedy.synthesis.identities.face_crops=true",
        "remedy.synthesis.identities.copies=0", "remedy.synthesis.device=cpu",
        "remedy.pool_margin=1.0", f"remedy.cache_dir={cache_dir}",
    ]  # fmt: skip
