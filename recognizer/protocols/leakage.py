"""Leakage checks run before every fold.

A fold leaks when anything derived from its test subjects reaches training. The checker looks
at the samples that will actually be used and at the provenance that synthetic samples carry,
and fails loudly (:class:`LeakageError`) listing every violation it finds:

1. ``subject``: a test subject appears among the training or validation samples.
2. ``duplicate``: a clip of the test set also appears in training or validation (the trace of
   resampling or augmenting before splitting).
3. ``template``: a synthetic training clip was made from AU templates mined from a test subject.
4. ``identity``: a synthetic training clip animates the face of a test subject.
5. ``split``: a synthetic training clip (or a resampled set) was made for a different split than
   this fold's training subjects, i.e. synthesis or resampling happened before the split.
6. ``provenance``: a synthetic training clip carries no provenance record (e.g. a store made by
   ``mesynth generate`` and passed in as is) while the fold holds out real subjects: what it
   was made from is unknown, and unknown is not clean.
7. ``person``: a training or validation clip, real or synthetic, shows a person who appears
   among the test clips: another subject made from the same face (an augmented copy of a test
   portrait, one person recorded under two subject ids), or a synthetic clip animating that
   person's face. A clip of a test subject is reported as ``subject`` (or ``identity``) only.
8. ``profile``: the calibration profile synthetic clips are rendered with was measured on a
   test subject (its ``source.real_subjects``, written by ``mesynth calibrate``,
   ``calibrate-adversarial`` and ``calibrate-flows``; :func:`check_profile`). A profile
   that records no subjects (written by hand) is not refused: it holds no data.
8. ``search``: a search inside the fold (a utility-calibration trial: its inner training and
   held-out real subjects, the faces and templates of its synthetic clips, its profile's
   subjects) used a test subject (``searched`` of :func:`find_leaks`).

Subjects are compared in one canonical spelling (:func:`canonical_subject`): case and zero
padding are ignored (``casme2/sub2`` is ``casme2/sub02``), and a provenance subject written
without its dataset (``sub02``) matches a held-out subject of any dataset with that name.
Provenance fields are checked on every sample that carries them, whatever its ``source``.

**Persons.** A subject is a label; a person is whom a face belongs to (:func:`sample_persons`).
A clip's person is ``extra["person"]`` where its loader records one (a clip store records the
person of each face: every ``hopper~aug<j>`` shows ``hopper``), else its subject: for real
data the person is the subject unless a dataset says otherwise. Persons are compared in the
same canonical spelling as subjects. :func:`recognizer.protocols.by_person` makes folds that
hold out whole persons.

Provenance is carried in ``Sample.extra`` (strings, so it survives CSV manifests):

- ``template_subjects``: ";"-separated dataset-qualified subjects whose annotations the
  templates were mined from ("" when only expert or macro-onset sources were used);
- ``identity_subject``: the dataset-qualified subject whose face was animated ("" for faces that
  belong to no dataset subject, such as the built-in portraits);
- ``identity_person``: the person whose face was animated (the owning subject's person for a
  dataset face; the face's own person, e.g. ``hopper``, for a portrait or a copy of one);
- ``split_key``: :func:`split_key` of the training subjects the clip was synthesised for.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesynth.calibration.profile import CalibrationProfile
from recognizer.data.samples import Sample

LEAK_KINDS = (
    "subject", "duplicate", "template", "identity", "split", "provenance", "person", "profile",
    "search",
)  # fmt: skip
#: the ``source`` key of a calibration profile that lists the real subjects it was measured on
PROFILE_SUBJECTS_KEY = "real_subjects"
#: the ``extra`` keys a provenance record consists of
PROVENANCE_KEYS = ("template_subjects", "identity_subject")
#: the ``extra`` key of the person a clip shows (absent: its subject)
PERSON_KEY = "person"
#: the dataset name of synthetic clips (their subjects are ``mesynth/<identity>``)
SYNTHETIC_DATASET = "mesynth"


class LeakageError(RuntimeError):
    """A fold would train on information from its test subjects; ``violations`` lists why."""

    def __init__(self, fold: object, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        lines = [f"fold {fold}: {len(violations)} leak(s) between training and test data"]
        lines += [f"  - [{v.kind}] {v.detail}" for v in violations[:20]]
        if len(violations) > 20:
            lines.append(f"  ... and {len(violations) - 20} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Violation:
    """One leak: its kind (one of :data:`LEAK_KINDS`) and a sentence naming the clip."""

    kind: str
    detail: str


def split_key(train_subjects: Iterable[str]) -> str:
    """A short stable key for a set of training subjects (order and duplicates ignored)."""
    joined = "\n".join(sorted(set(train_subjects)))
    return hashlib.sha1(joined.encode()).hexdigest()[:16]


def provenance(
    *,
    template_subjects: Iterable[str] = (),
    identity_subject: str | None = None,
    identity_person: str | None = None,
    train_subjects: Iterable[str] | None = None,
) -> dict[str, str]:
    """The ``Sample.extra`` entries a synthetic clip needs for :func:`check_fold`."""
    extra = {
        "template_subjects": ";".join(sorted(set(template_subjects))),
        "identity_subject": identity_subject or "",
        "identity_person": identity_person or "",
    }
    if train_subjects is not None:
        extra["split_key"] = split_key(train_subjects)
    return extra


def canonical_subject(subject: str) -> tuple[str, str]:
    """``(dataset, name)`` of a subject id in one spelling: lower case, digit runs without
    leading zeros; ``dataset`` is ``""`` when the id is not dataset-qualified.

    ``canonical_subject("CASME2/sub02") == canonical_subject("casme2/sub2") == ("casme2", "sub2")``
    """
    dataset, slash, name = str(subject).strip().rpartition("/")
    return dataset.lower() if slash else "", re.sub(r"\d+", lambda m: str(int(m.group())),
                                                     name.lower())  # fmt: skip


class SubjectSet:
    """Held-out subjects, matched in canonical spelling; an unqualified id matches by name."""

    def __init__(self, subjects: Iterable[str]) -> None:
        self.subjects = {str(s) for s in subjects}
        self._full = {canonical_subject(s): s for s in self.subjects}
        self._by_name: dict[str, set[str]] = {}
        for (_, name), original in self._full.items():
            self._by_name.setdefault(name, set()).add(original)

    def matches(self, subjects: Iterable[str]) -> set[str]:
        """The held-out subjects that any of ``subjects`` names (in any spelling)."""
        found: set[str] = set()
        for subject in subjects:
            dataset, name = canonical_subject(subject)
            if dataset:
                if (dataset, name) in self._full:
                    found.add(self._full[(dataset, name)])
            else:
                found |= self._by_name.get(name, set())
        return found

    def __contains__(self, subject: object) -> bool:
        return bool(self.matches([str(subject)]))

    def any_real(self) -> bool:
        return any(canonical_subject(s)[0] != SYNTHETIC_DATASET for s in self.subjects)


def _extra(sample: Sample) -> Mapping[str, str]:
    return getattr(sample, "extra", None) or {}


def _uid(sample: Sample) -> str:
    """``Sample.uid``, or ``"<subject>/<clip>"`` for other records with those attributes."""
    uid = getattr(sample, "uid", None)
    return str(uid) if uid is not None else f"{sample.subject}/{getattr(sample, 'clip', '')}"


def _source(sample: Sample) -> str:
    return str(getattr(sample, "source", "real"))


def _subjects_field(sample: Sample, key: str) -> set[str]:
    value = _extra(sample).get(key, "")
    return {s for s in str(value).split(";") if s}


def sample_person(sample: Sample) -> str:
    """The person a clip's own subject is: ``extra["person"]`` when its loader records one,
    else its subject (real data: one person per subject unless a dataset says otherwise)."""
    return str(_extra(sample).get(PERSON_KEY) or sample.subject)


def sample_persons(sample: Sample) -> set[str]:
    """Every person a clip shows: :func:`sample_person` and, for a synthetic clip, the person
    whose face it animates (provenance ``identity_person``)."""
    animated = str(_extra(sample).get("identity_person") or "")
    return {sample_person(sample), *([animated] if animated else [])}


def subject_persons(samples: Iterable[Sample]) -> dict[str, str]:
    """``{subject: person}`` of ``samples`` (:func:`sample_person`).

    Raises:
        ValueError: a subject's clips name two persons (the message names them).
    """
    persons: dict[str, str] = {}
    for sample in samples:
        subject, person = str(sample.subject), sample_person(sample)
        if persons.setdefault(subject, person) != person:
            raise ValueError(
                f"subject {subject} has clips of two persons ({persons[subject]!r} and "
                f"{person!r}, e.g. clip {_uid(sample)}); a subject is one person"
            )
    return persons


def find_leaks(
    train: Sequence[Sample],
    test: Sequence[Sample],
    val: Sequence[Sample] = (),
    *,
    test_subjects: Collection[str] | None = None,
    searched: Mapping[str, Collection[str]] | None = None,
) -> list[Violation]:
    """Every violation of the rules in the module docstring (empty list: no leak).

    Args:
        train: samples the model is trained on (real and synthetic, after any resampling);
            any records with ``subject`` (and optionally ``clip``, ``source``, ``extra``)
            attributes work.
        test: samples the fold is evaluated on.
        val: samples used for model selection.
        test_subjects: the fold's test subjects; defaults to the subjects of ``test``.
        searched: ``{search step: subjects it used}`` of searches run inside the fold
            (:attr:`recognizer.remedies.base.FoldData.searched_subjects`).
    """
    held_out = SubjectSet(test_subjects if test_subjects is not None else {s.subject for s in test})
    # the persons of the held-out subjects' test clips, and those subjects themselves
    held_persons = SubjectSet(
        {p for s in test if s.subject in held_out for p in sample_persons(s)} | held_out.subjects
    )
    real_train_subjects = {s.subject for s in train if _source(s) == "real"}
    real_val_subjects = {s.subject for s in val if _source(s) == "real"}
    expected_key = split_key(real_train_subjects | real_val_subjects)
    expected_train_only_key = split_key(real_train_subjects)
    test_uids = {_uid(s) for s in test}
    holds_out_real = held_out.any_real()
    found: list[Violation] = []
    for role, samples in (("training", train), ("validation", val)):
        for sample in samples:
            uid = _uid(sample)
            own = sample.subject in held_out
            if own:
                found.append(Violation("subject", f"{role} clip {uid} is from test subject"))
            if uid in test_uids:
                found.append(Violation("duplicate", f"{role} clip {uid} is also a test clip"))
            key = _extra(sample).get("split_key")
            if key is not None and key not in (expected_key, expected_train_only_key):
                found.append(
                    Violation(
                        "split",
                        f"{role} clip {uid} was made for another split "
                        f"(key {key}, this fold's training subjects give {expected_key})",
                    )
                )
            leaks = _provenance_leaks(sample, role, uid, held_out, holds_out_real)
            found += leaks
            people = held_persons.matches(sample_persons(sample))
            if people and not own and not any(v.kind == "identity" for v in leaks):
                found.append(
                    Violation(
                        "person",
                        f"{role} clip {uid} (subject {sample.subject}) shows test person(s) "
                        f"{sorted(people)}; hold out whole persons "
                        "(recognizer.protocols.by_person) and keep their faces out of synthesis",
                    )
                )
    for step, used in (searched or {}).items():
        hit = held_out.matches(str(s) for s in used)
        if hit:
            found.append(Violation("search", f"{step} used test subject(s) {sorted(hit)}"))
    return found


def _provenance_leaks(
    sample: Sample, role: str, uid: str, held_out: SubjectSet, holds_out_real: bool
) -> list[Violation]:
    """The template/identity/provenance violations of one sample (any source)."""
    extra = _extra(sample)
    if not any(key in extra for key in PROVENANCE_KEYS):
        if _source(sample) == "synthetic" and holds_out_real:
            return [
                Violation(
                    "provenance",
                    f"{role} clip {uid} is synthetic but has no provenance record, so it may "
                    "come from a test subject's face or annotations; build it with a synthetic "
                    "remedy (which records provenance) or give its store a provenance.json",
                )
            ]
        return []
    found = []
    for kind, key, what in (
        ("template", "template_subjects", "uses templates mined from"),
        ("identity", "identity_subject", "animates the face of"),
    ):
        hit = held_out.matches(_subjects_field(sample, key))
        if hit:
            found.append(Violation(kind, f"{role} clip {uid} {what} test subject(s) {sorted(hit)}"))
    return found


def check_fold(
    fold: object,
    train: Sequence[Sample],
    test: Sequence[Sample],
    val: Sequence[Sample] = (),
    *,
    test_subjects: Collection[str] | None = None,
    searched: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Raise :class:`LeakageError` when :func:`find_leaks` finds anything."""
    violations = find_leaks(train, test, val, test_subjects=test_subjects, searched=searched)
    if violations:
        raise LeakageError(fold, violations)


def profile_leaks(
    profile: CalibrationProfile | str | Path,
    test_subjects: Collection[str],
    *,
    name: str | None = None,
) -> list[Violation]:
    """``profile`` violations: test subjects among the subjects a calibration profile was
    measured on (``source.real_subjects``; :class:`mesynth.calibration.profile.CalibrationProfile`
    or its YAML path).

    Raises:
        mesynth.calibration.profile.ProfileError: the path is not a readable, valid profile.
    """
    if not isinstance(profile, CalibrationProfile):
        name = name or str(profile)
        profile = CalibrationProfile.load(profile)
    name = name or "calibration profile"
    recorded = profile.source.get(PROFILE_SUBJECTS_KEY) or ()
    if isinstance(recorded, str):
        recorded = [recorded]
    hit = SubjectSet(test_subjects).matches(str(s) for s in recorded)
    if not hit:
        return []
    return [
        Violation(
            "profile",
            f"{name} was calibrated on test subject(s) {sorted(hit)}; calibrate it on the "
            "fold's training subjects only (subjects= / exclude=)",
        )
    ]


def check_profile(
    fold: object, profile: CalibrationProfile | str | Path, test_subjects: Collection[str]
) -> None:
    """Raise :class:`LeakageError` when :func:`profile_leaks` finds anything."""
    violations = profile_leaks(profile, test_subjects)
    if violations:
        raise LeakageError(fold, violations)
