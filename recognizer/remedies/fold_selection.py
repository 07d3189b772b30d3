"""Which synthetic clips a fold may use: the leakage rule of the synthetic remedies.

A fold holds out its test and validation subjects and every pool subject outside its training
side, and the persons of those subjects; a synthetic clip whose face or template touches any of
them is left out (:func:`exclude_clips`), and the fold takes what it needs of the rest in store
order (:func:`choose_clips`). A calibration profile measured on a test subject refuses the fold
(:func:`check_profiles`). :func:`recognizer.protocols.leakage.check_fold` verifies the same fields
on the samples actually used.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence

from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import ProfileEffects
from mesynth.generation.recipe import GenerationRecipe, ProfileSource
from mesynth.templates.types import Template
from recognizer.protocols.leakage import LeakageError, SubjectSet, profile_leaks, sample_person
from recognizer.remedies.base import FoldContext


def held_out_subjects(context: FoldContext) -> set[str]:
    """Subjects a fold may not touch: its test and validation subjects and every subject of
    the pool outside its training side."""
    train = {str(s.subject) for s in context.train}
    fold = context.fold
    held = {str(s) for s in getattr(fold, "test_subjects", ())}
    held |= {str(s) for s in getattr(fold, "val_subjects", ())}
    held |= {str(s.subject) for s in context.pool}
    return held - train


def held_out_persons(context: FoldContext, held_out: set[str]) -> SubjectSet:
    """Persons a fold may not show: the persons of its held-out subjects (``held_out``, from
    :func:`held_out_subjects`) in the pool, and those subjects themselves."""
    pool = list(context.pool) or list(context.train)
    return SubjectSet({sample_person(s) for s in pool if str(s.subject) in held_out} | held_out)


def recipe_profiles(recipe: GenerationRecipe) -> list[tuple[str, CalibrationProfile]]:
    """The calibration profiles ``recipe`` renders with, named by their config key: its
    effects' profile and its framing profile."""
    out = []
    effects = recipe.effects
    if isinstance(effects, ProfileSource) and effects.path:
        out.append((f"recipe.effects.path {effects.path}", CalibrationProfile.load(effects.path)))
    elif isinstance(effects, ProfileEffects):
        out.append((f"recipe.effects {effects.path or '(in memory)'}", effects.profile))
    framing = recipe.identities.framing_profile
    if recipe.identities.framing == "profile" and framing:
        label = f"recipe.identities.framing_profile {framing}"
        out.append((label, CalibrationProfile.load(framing)))
    return out


def check_profiles(recipe: GenerationRecipe, context: FoldContext) -> None:
    """Refuse a fold whose test subjects a calibration profile of ``recipe`` was measured on
    (:func:`recognizer.protocols.leakage.profile_leaks`).

    Raises:
        LeakageError: the violations, naming the profile and the subjects.
    """
    tested = [str(s) for s in getattr(context.fold, "test_subjects", ())]
    if not tested:
        return
    found = []
    for label, profile in recipe_profiles(recipe):
        found += profile_leaks(profile, tested, name=label)
    if found:
        raise LeakageError(getattr(context.fold, "index", context.fold), found)


def clip_subjects(sample: object) -> set[str]:
    """Dataset subjects a synthetic clip touches: its face's and its template's."""
    extra = getattr(sample, "extra", None) or {}
    fields = (extra.get("template_subjects", ""), extra.get("identity_subject", ""))
    return {s for value in fields for s in str(value).split(";") if s}


def face_person(sample: object) -> str:
    """The person whose face a synthetic clip animates (provenance, else the store's)."""
    extra = getattr(sample, "extra", None) or {}
    return str(extra.get("identity_person") or extra.get("person") or sample.subject)


def exclude_clips(
    samples: Sequence[object],
    labels: Sequence[int],
    held_out: set[str],
    persons: SubjectSet | None = None,
) -> tuple[list[tuple[object, int]], int, set[str]]:
    """``(kept (sample, label) pairs, number left out, held-out subjects and persons they
    touched)``: a clip is left out when it touches a ``held_out`` subject or animates the face
    of one of ``persons``."""
    persons = persons if persons is not None else SubjectSet(())
    kept, dropped, touched = [], 0, set()
    for sample, label in zip(samples, labels):
        hit = (clip_subjects(sample) & held_out) | persons.matches({face_person(sample)})
        if hit:
            dropped += 1
            touched |= hit
        else:
            kept.append((sample, label))
    return kept, dropped, touched


def choose_clips(
    kept: Sequence[tuple[object, int]], want: Mapping[str, int], class_names: Sequence[str]
) -> tuple[list[tuple[object, int]], dict[str, int]]:
    """The first ``want[class]`` kept clips of each class (store order) and the shortfall
    ``{class: missing}``."""
    taken: Counter[str] = Counter()
    chosen = []
    for sample, label in kept:
        name = class_names[label]
        if taken[name] < want.get(name, 0):
            taken[name] += 1
            chosen.append((sample, label))
    shortfall = {n: want[n] - taken[n] for n in want if taken[n] < want[n]}
    return chosen, shortfall


def template_counts(
    templates: Sequence[Template], held_out: set[str] = frozenset()
) -> dict[str, dict[str, int]]:
    """``{class: {source: templates}}`` of the templates touching no ``held_out`` subject
    (source ``expert:<table>`` counts as ``expert``)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for template in templates:
        if not set(template.subjects) & held_out:
            counts[template.emotion][template.source.split(":", 1)[0]] += 1
    return {emotion: dict(sorted(c.items())) for emotion, c in sorted(counts.items())}
