"""Remedies on a proxy composite: does synthetic fill (calibrated or not) beat real-only?

A proxy for the MEGC2019 composite is rendered once (and reused from ``--root``): the two
built-in portraits, each augmented into ``--copies`` identities with an identity seed the
synthetic remedies never see, are the subjects; the clips follow the composite's class
imbalance (250 : 109 : 83 negative / positive / surprise, scaled to ``--clips``) and are rendered
with a hidden profile (larger motion, head and skin motion, sensor noise, brightness drift:
``bench_calibration.HIDDEN``) that the remedies' recipe does not share. Each clip becomes a
28 × 28 apex-flow PNG (TV-L1 where OpenCV contrib has it), each subject keeps its onset frame as
its face crop, and a manifest lists ``subject, clip, label, path, dataset, aus, face`` as the
composite's does (``aus``: the clip's template AUs, so ``mined`` templates work).

Then every arm is run through the ``mer train`` CLI exactly as a user would on the composite
(``data=manifest representation=apex_flow model=ststnet trainer=ststnet protocol=loso
protocol.val_fraction=0``, Adam ``--lr``, L2 ``--weight-decay``, batch ``--batch``,
``--epochs`` epochs, ``trainer.seeds=[0..n-1]`` trained together), the synthetic arms with
``remedy.synthesis.identities.source=data face_crops=true`` (faces from the rows' ``face``
column, templates mined from ``aus`` plus the expert table). Arms: ``none``, ``oversample``,
``fill``, ``fill+flows``, ``fill+adversarial``, ``fill+utility``. The table gives per arm the
pooled UF1/UAR mean ± sd over seeds and the paired difference to ``none`` with a 95 % interval
(:func:`recognizer.evaluation.compare.compare_arms`: whole test subjects and seeds resampled),
and the wall time of each arm. The subjects are augmented copies of two people, so subjects are not
independent persons here: the intervals are over subjects as LOSO holds them out, not over
people, and every arm trains on other copies of the test person alike.

    PYTHONPATH=. python benchmarks/bench_remedies.py                       # ~1 h on 2 cores
    PYTHONPATH=. python benchmarks/bench_remedies.py --arms none,fill --seeds 2 --epochs 20
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: the MEGC2019 composite's class counts (negative, positive, surprise)
COMPOSITE_COUNTS = {"negative": 250, "positive": 109, "surprise": 83}
SCHEME = "megc3"
CROP = 128
#: what each arm adds to the common ``mer train`` arguments
SYNTHETIC = [
    "remedy=synth_fill",
    "remedy.synthesis.identities.source=data",
    "remedy.synthesis.identities.face_crops=true",
    "remedy.synthesis.device=cpu",
]
ARMS = {
    "none": ["remedy=none"],
    "oversample": ["remedy=oversample"],
    "fill": SYNTHETIC,
    "fill+flows": [*SYNTHETIC, "remedy.calibration.method=flows"],
    "fill+adversarial": [*SYNTHETIC, "remedy.calibration.method=adversarial"],
    "fill+utility": [*SYNTHETIC, "remedy.calibration.method=utility"],
}


def scaled_counts(total: int) -> dict[str, int]:
    """The composite's class proportions scaled to ``total`` clips (rounded, each ≥ 2)."""
    whole = sum(COMPOSITE_COUNTS.values())
    return {k: max(2, round(v * total / whole)) for k, v in COMPOSITE_COUNTS.items()}


def make_proxy(root: Path, clips: int, copies: int, identity_seed: int) -> Path:
    """Render the proxy composite under ``root`` (reused when its manifest exists); returns the
    manifest path."""
    manifest = root / "manifest.csv"
    if manifest.is_file():
        return manifest
    import cv2
    from bench_calibration import hidden_profile

    from mesynth.face.identities import IdentityAugmentation, load_identities
    from mesynth.flow import apex_flow, save_apex_flow
    from mesynth.generation.balance import BalancePlan
    from mesynth.generation.pipeline import generate_from_profile
    from mesynth.generation.store_reader import store_records
    from mesynth.records import apex_of, read_record_frames

    profile = hidden_profile()
    faces = load_identities(
        "builtin",
        size=CROP,
        seed=identity_seed,
        augmentation=IdentityAugmentation(copies=copies),
        cache_dir=root / "landmarks",
    )
    subjects = [f for f in faces.identities if f.person != f.name]  # the copies only
    plan = BalancePlan(scaled_counts(clips), seed=identity_seed + 1000)
    store = root / "store"
    generate_from_profile(
        subjects,
        profile,
        plan,
        store,
        scheme=SCHEME,
        fps=200,
        mode="onset_apex",
        device="cpu",
        progress=False,
    )
    subject_of = {f.name: f"proxy/s{i:02d}" for i, f in enumerate(subjects)}
    (root / "faces").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, record in enumerate(store_records(store)):
        onset, apex = read_record_frames(record, [record.onset, apex_of(record)])
        subject = subject_of[record.identity]
        flow = root / "flows" / f"{i:04d}.png"
        save_apex_flow(flow, apex_flow(onset, apex, 28, "auto"))
        face = root / "faces" / f"{subject.split('/')[1]}.png"
        if not face.is_file():
            cv2.imwrite(str(face), np.ascontiguousarray(onset[:, :, ::-1]))
        lines.append([subject, f"c{i:04d}", record.emotion, f"flows/{flow.name}", "proxy",
                      record.aus, f"faces/{face.name}"])  # fmt: skip
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "clip", "label", "path", "dataset", "aus", "face"])
        writer.writerows(lines)
    return manifest


def run_arm(name: str, manifest: Path, out: Path, args: argparse.Namespace) -> float:
    """Train one arm over all seeds with the ``mer train`` CLI; returns its wall seconds."""
    from recognizer.cli import main as mer_main

    seeds = ",".join(str(s) for s in range(args.seeds))
    argv = [
        "train", "data=manifest", f"data.loader.root={manifest}", "representation=apex_flow",
        "model=ststnet", "trainer=ststnet", "protocol=loso", "protocol.val_fraction=0",
        f"trainer.epochs={args.epochs}", f"trainer.lr={args.lr}",
        f"trainer.weight_decay={args.weight_decay}", f"trainer.batch_size={args.batch}",
        f"trainer.seeds=[{seeds}]", "trainer.device=cpu", "trainer.progress=false",
        "trainer.num_workers=0", *ARMS[name], f"out_dir={out}",
        f"paths.root_dir={args.root}",
    ]  # fmt: skip
    if name.startswith("fill"):
        argv.append(f"remedy.cache_dir={args.root / 'cache'}")
    if name in ("fill+adversarial", "fill+utility"):
        argv += [f"remedy.calibration.trials={args.trials}",
                 f"remedy.calibration.groups={args.groups}"]  # fmt: skip
    start = time.perf_counter()
    code = mer_main(argv)
    if code != 0:
        raise SystemExit(f"arm {name}: mer train exited {code}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("bench_remedies_out"))
    parser.add_argument("--arms", default=",".join(ARMS), help=f"of {list(ARMS)}")
    parser.add_argument("--clips", type=int, default=160, help="proxy clips (composite: 442)")
    parser.add_argument("--copies", type=int, default=6, help="identities per portrait")
    parser.add_argument("--identity-seed", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds 0..n-1")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--trials", type=int, default=8, help="adversarial/utility trials")
    parser.add_argument("--groups", type=int, default=5, help="calibration subject groups")
    parser.add_argument("--fresh", action="store_true", help="rerun arms already run")
    args = parser.parse_args(argv)
    arms = args.arms.split(",")
    if unknown := sorted(set(arms) - set(ARMS)):
        parser.error(f"--arms: unknown {unknown}; choose from {list(ARMS)}")
    if "none" not in arms:
        parser.error("--arms must include none (the baseline of the paired differences)")

    from recognizer.evaluation.compare import arms_from_mapping, comparison_section

    print(f"load average before: {os.getloadavg()}", flush=True)
    args.root.mkdir(parents=True, exist_ok=True)
    manifest = make_proxy(args.root, args.clips, args.copies, args.identity_seed)
    with manifest.open() as handle:
        rows = list(csv.DictReader(handle))
    counts = {k: sum(r["label"] == k for r in rows) for k in COMPOSITE_COUNTS}
    print(f"proxy: {len(rows)} clips, {len({r['subject'] for r in rows})} subjects, {counts}")
    seconds = {}
    for name in arms:
        out = args.root / "runs" / name
        if args.fresh and out.exists():
            shutil.rmtree(out)
        if (out / "seeds.json").is_file():
            print(f"[{name}] reused {out}", flush=True)
            continue
        print(f"[{name}] training {args.seeds} seeds ...", flush=True)
        seconds[name] = run_arm(name, manifest, out, args)
        print(f"[{name}] {seconds[name]:.0f} s", flush=True)
    runs = {name: args.root / "runs" / name for name in arms}
    print()
    print(comparison_section(arms_from_mapping(runs), baseline="none"))
    print("| arm | wall s |\n|---|---|")
    for name in arms:
        print(f"| {name} | {seconds.get(name, float('nan')):.0f} |")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
