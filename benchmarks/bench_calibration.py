"""Adversarial calibration on CPU: cost per trial and per calibration, and what it buys a
recognizer.

A hidden "real-like" domain is rendered with settings the search never sees (larger motion,
head and skin motion, sensor noise, brightness drift: :data:`HIDDEN`). Then:

1. cost: :func:`mesynth.calibration.adversarial.adversarial_calibration` against that domain's
   calibration clips; the median seconds of one trial (render the trial clips, apex flow,
   grouped-CV domain classifier) and the wall time of the whole calibration (including reading
   the real clips and building the renderer);
2. recognizer: STSTNet is trained on the apex flows of (a) uncalibrated synthetic clips (the
   recipe's defaults) and (b) the same plan rendered with the calibrated profile, and tested on
   the hidden domain rendered again with other identity augmentations and other clip seeds
   (never seen by the search or the training). UF1 and UAR
   (:mod:`recognizer.evaluation.metrics`), mean and std over training seeds.

    PYTHONPATH=. python benchmarks/bench_calibration.py                 # a few minutes, 2 cores
    PYTHONPATH=. python benchmarks/bench_calibration.py --trials 40 --seeds 5
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # mesynth and torch are imported where used, so --help is instant
    from mesynth.calibration.profile import CalibrationProfile
    from mesynth.generation.recipe import GenerationRecipe
    from mesynth.generation.store_reader import StoreRecord

#: medians of the hidden domain's profile (as tests/mesynth/test_adversarial.py's HIDDEN):
#: apex size (IOD), head translation (IOD), rotation (deg), scale, skin-motion RMS and
#: correlation length (IOD), noise (grey levels), brightness drift (per s)
HIDDEN = {
    "apex_peak_iod": 0.08,
    "head_translation_iod": 0.04,
    "head_rotation_deg": 1.5,
    "head_scale": 0.015,
    "residual_rms_iod": 0.05,
    "residual_correlation_iod": 0.3,
    "noise_sigma": 8.0,
    "brightness_drift_per_s": 0.2,
}
FPS = 60
SCHEME = "dfme7"


def hidden_profile() -> CalibrationProfile:
    """The hidden domain's profile: :data:`HIDDEN` on the quiet profile."""
    from mesynth.calibration.adversarial import profile_from_parameters, quiet_profile

    return profile_from_parameters(quiet_profile(), HIDDEN)


def render_domain(
    out: Path, size: int, per_class: int, identity_seed: int, plan_seed: int
) -> list[StoreRecord]:
    """The hidden domain: ``per_class`` clips per class (onset and apex), returns records."""
    from mesynth.face.identities import IdentityAugmentation, load_identities
    from mesynth.generation.balance import equal
    from mesynth.generation.pipeline import generate_from_profile
    from mesynth.generation.store_reader import store_records
    from mesynth.labels.emotions import scheme_labels

    profile = hidden_profile()
    faces = load_identities(
        "builtin", size=size, seed=identity_seed, augmentation=IdentityAugmentation(copies=3)
    )
    plan = equal(per_class, list(scheme_labels(SCHEME)), seed=plan_seed)
    generate_from_profile(
        faces,
        profile,
        plan,
        out,
        scheme=SCHEME,
        fps=FPS,
        mode="onset_apex",
        device="cpu",
        progress=False,
    )
    return store_records(out)


def recipe(size: int, **changes: object) -> GenerationRecipe:
    """The search's and the training sets' recipe: onset and apex, 60 fps, 3 copies per face."""
    from mesynth.generation.recipe import GenerationRecipe

    settings = {
        "size": size,
        "device": "cpu",
        "scheme": SCHEME,
        "timing": {"fps": FPS},
        "identities": {"copies": 3},
        "frames": {"mode": "onset_apex"},
    }
    return GenerationRecipe(**(settings | changes))


def apex_flows(records: list, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 3, 28, 28)`` float32 apex flow in [0, 1] (as STSTNet sees it) and ``(N,)`` labels."""
    from mesynth.evaluation.features import ApexFlowFeature

    feature = ApexFlowFeature(size=28, method="farneback")
    images = np.stack([feature(r) for r in records]).transpose(0, 3, 1, 2)
    labels = np.array([classes.index(r.emotion) for r in records])
    return images.astype(np.float32), labels


def train_and_test(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    classes: int,
    epochs: int,
    seed: int,
) -> dict[str, float]:
    """STSTNet (Adam, lr 1e-3, batch 32, left-right flips with u negated) trained on ``train``;
    UF1/UAR on ``test``."""
    import torch

    from recognizer.evaluation.metrics import uar, uf1
    from recognizer.models import create_model

    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    model = create_model("ststnet", num_classes=classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    for _ in range(epochs):
        model.train()
        order = torch.from_numpy(generator.permutation(len(x)))
        for start in range(0, len(x), 32):
            index = order[start : start + 32]
            batch = x[index].clone()
            flip = torch.from_numpy(generator.random(len(index)) < 0.5)
            batch[flip] = batch[flip].flip(-1)
            batch[flip, 0] = 1.0 - batch[flip, 0]  # mirrored u, still min-max scaled to [0, 1]
            loss = torch.nn.functional.cross_entropy(model(batch), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(test[0])).argmax(1).numpy()
    return {"UF1": uf1(test[1], predicted), "UAR": uar(test[1], predicted)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32, help="search trials")
    parser.add_argument("--clips", type=int, default=56, help="rendered clips per trial")
    parser.add_argument("--size", type=int, default=48, help="render side (pixels)")
    parser.add_argument("--real", type=int, default=8, help="hidden-domain clips per class seen")
    parser.add_argument("--train", type=int, default=32, help="training clips per class")
    parser.add_argument("--test", type=int, default=16, help="hidden-domain test clips per class")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=5, help="training seeds")
    parser.add_argument("--seed", type=int, default=0, help="search seed (first training seed)")
    args = parser.parse_args()

    import torch

    from mesynth.calibration.adversarial import adversarial_calibration
    from mesynth.generation.balance import equal
    from mesynth.generation.recipe import ProfileSource, run_recipe
    from mesynth.generation.store_reader import store_records
    from mesynth.templates.bank import TemplateBank

    classes = list(TemplateBank.expert(SCHEME).emotions)
    root = Path(tempfile.mkdtemp(prefix="bench_calibration_"))
    try:
        real = render_domain(root / "real", args.size, args.real, identity_seed=0, plan_seed=101)
        start = time.perf_counter()
        result = adversarial_calibration(
            real,
            recipe(args.size),
            trials=args.trials,
            out_dir=root / "search",
            clips=args.clips,
            seed=args.seed,
        )
        whole = time.perf_counter() - start
        seconds = result.history["seconds"].to_numpy()

        plan = equal(args.train, classes, seed=11)
        run_recipe(recipe(args.size), plan, root / "uncalibrated")
        calibrated = recipe(
            args.size,
            effects=ProfileSource(str(result.profile_path)),
            motion={"apex_iod": "profile"},
        )
        run_recipe(calibrated, plan, root / "calibrated")
        test_records = render_domain(
            root / "test", args.size, args.test, identity_seed=1, plan_seed=202
        )
        test = apex_flows(test_records, classes)
        scores: dict[str, list[dict[str, float]]] = {}
        start = time.perf_counter()
        for name in ("uncalibrated", "calibrated"):
            train = apex_flows(store_records(root / name), classes)
            scores[name] = [
                train_and_test(train, test, len(classes), args.epochs, seed)
                for seed in range(args.seed, args.seed + args.seeds)
            ]
        training = (time.perf_counter() - start) / (2 * args.seeds)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads; render {args.size}²,"
        f" {len(real)} hidden-domain clips seen by the search, {args.clips} clips per trial"
    )
    print("\n| calibration cost | value |\n|---|---:|")
    print(f"| trials | {len(seconds)} |")
    print(f"| seconds per trial (median) | {np.median(seconds):.2f} |")
    print(f"| seconds per trial (min-max) | {seconds.min():.2f}-{seconds.max():.2f} |")
    print(f"| seconds per calibration (wall) | {whole:.1f} |")
    print(f"| best trial's balanced accuracy | {result.best_accuracy:.3f} |")
    print(f"| first trial's balanced accuracy | {result.history['accuracy'].iloc[0]:.3f} |")
    print(
        f"\nSTSTNet, {args.epochs} epochs on {args.train} clips per class; tested on "
        f"{len(test[1])} hidden-domain clips (other identities and seeds); "
        f"mean ± std over {args.seeds} seeds ({training:.1f} s per training)"
    )
    print("\n| training set | UF1 | UAR |\n|---|---:|---:|")
    for name, runs in scores.items():
        cells = [
            f"{np.mean([r[m] for r in runs]):.3f} ± {np.std([r[m] for r in runs]):.3f}"
            for m in ("UF1", "UAR")
        ]
        print(f"| {name} synthetic | {cells[0]} | {cells[1]} |")
    print(f"| chance | {1 / len(classes):.3f} | {1 / len(classes):.3f} |")


if __name__ == "__main__":
    main()
