"""The hidden "real-like" domain that the adversarial-calibration tests search toward, and the
domain accuracy a search is judged by."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mesynth.calibration.adversarial import record_features
from mesynth.evaluation.domain_test import domain_classifier_test
from mesynth.face.identities import IdentityAugmentation, load_identities
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate_from_profile
from mesynth.generation.recipe import GenerationRecipe, ProfileSource, run_recipe
from mesynth.generation.store_reader import store_records
from mesynth.labels.emotions import scheme_labels
from mesynth.templates.bank import TemplateBank
from tests.profile_fixtures import make_profile

#: the hidden real-like domain: larger motion, head and skin motion, noise and drift
HIDDEN = make_profile(0.08, (0.04, 1.5, 0.015), (0.05, 0.3), 8.0, 0.2)


def search_recipe(size: int, frames: dict[str, object], **changes: object) -> GenerationRecipe:
    """The recipe a search starts from: ``size`` px, CPU, 60 fps, three copies per portrait."""
    settings = {
        "size": size,
        "device": "cpu",
        "timing": {"fps": 60},
        "identities": {"copies": 3},
        "frames": frames,
    }
    return GenerationRecipe(**(settings | changes))


def hidden_store(out: Path, size: int, per_class: int, **frames: object) -> list:
    """Render ``per_class`` clips per DFME class of the hidden domain into ``out``; its records.

    ``frames``: the frame options of :func:`mesynth.generation.pipeline.generate` (``mode``,
    ``num_frames``)."""
    faces = load_identities(
        "builtin", size=size, seed=0, augmentation=IdentityAugmentation(copies=3)
    )
    plan = equal(per_class, list(scheme_labels("dfme7")), seed=101)
    generate_from_profile(faces, HIDDEN, plan, out, **frames, device="cpu", progress=False)
    return store_records(out)


def domain_accuracy(real: list, out: Path, recipe: GenerationRecipe, **features: object) -> float:
    """Domain accuracy of ``real`` vs a fresh store made with ``recipe`` in ``out`` (clip seeds
    the search never rendered), on the search's features (``features``: the representation)."""
    run_recipe(recipe, equal(16, list(TemplateBank.expert("dfme7").emotions), seed=7), out)
    synthetic = store_records(out)
    (r, rg), (s, sg) = record_features(real, **features), record_features(synthetic, **features)
    return domain_classifier_test(r, s, rg, sg, n_permutations=0, c=1.0).accuracy


def before_and_after(
    search: dict, recipe: Callable[..., GenerationRecipe], **features: object
) -> tuple[float, float]:
    """Domain accuracy of the search's real clips vs clips of ``recipe()`` (clean) and of
    ``recipe()`` with the searched profile's effects and motion (calibrated)."""
    root, real, result = search["root"], search["real"], search["result"]
    clean = domain_accuracy(real, root / "clean", recipe(), **features)
    calibrated = domain_accuracy(
        real,
        root / "calibrated",
        recipe(effects=ProfileSource(str(result.profile_path)), motion={"apex_iod": "profile"}),
        **features,
    )
    return clean, calibrated
