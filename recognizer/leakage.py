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

Provenance is carried in ``Sample.extra`` (strings, so it survives CSV manifests):

- ``template_subjects``: ";"-separated dataset-qualified subjects whose annotations the
  templates were mined from ("" when only expert or macro-onset sources were used);
- ``identity_subject``: the dataset-qualified subject whose face was animated ("" for faces that
  belong to no dataset subject, such as the built-in portraits);
- ``split_key``: :func:`split_key` of the training subjects the clip was synthesised for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from recognizer.data.samples import Sample

LEAK_KINDS = ("subject", "duplicate", "template", "identity", "split")


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
    train_subjects: Iterable[str] | None = None,
) -> dict[str, str]:
    """The ``Sample.extra`` entries a synthetic clip needs for :func:`check_fold`."""
    extra = {
        "template_subjects": ";".join(sorted(set(template_subjects))),
        "identity_subject": identity_subject or "",
    }
    if train_subjects is not None:
        extra["split_key"] = split_key(train_subjects)
    return extra


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


def find_leaks(
    train: Sequence[Sample],
    test: Sequence[Sample],
    val: Sequence[Sample] = (),
    *,
    test_subjects: Collection[str] | None = None,
) -> list[Violation]:
    """Every violation of the rules in the module docstring (empty list: no leak).

    Args:
        train: samples the model is trained on (real and synthetic, after any resampling);
            any records with ``subject`` (and optionally ``clip``, ``source``, ``extra``)
            attributes work.
        test: samples the fold is evaluated on.
        val: samples used for model selection.
        test_subjects: the fold's test subjects; defaults to the subjects of ``test``.
    """
    held_out = set(test_subjects) if test_subjects is not None else {s.subject for s in test}
    real_train_subjects = {s.subject for s in train if _source(s) == "real"}
    real_val_subjects = {s.subject for s in val if _source(s) == "real"}
    expected_key = split_key(real_train_subjects | real_val_subjects)
    expected_train_only_key = split_key(real_train_subjects)
    test_uids = {_uid(s) for s in test}
    found: list[Violation] = []
    for role, samples in (("training", train), ("validation", val)):
        for sample in samples:
            uid = _uid(sample)
            if sample.subject in held_out:
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
            if _source(sample) != "synthetic":
                continue
            mined = _subjects_field(sample, "template_subjects") & held_out
            if mined:
                found.append(
                    Violation(
                        "template",
                        f"{role} clip {uid} uses templates mined from test subject(s) "
                        f"{sorted(mined)}",
                    )
                )
            face = _subjects_field(sample, "identity_subject") & held_out
            if face:
                found.append(
                    Violation(
                        "identity",
                        f"{role} clip {uid} animates the face of test subject(s) {sorted(face)}",
                    )
                )
    return found


def check_fold(
    fold: object,
    train: Sequence[Sample],
    test: Sequence[Sample],
    val: Sequence[Sample] = (),
    *,
    test_subjects: Collection[str] | None = None,
) -> None:
    """Raise :class:`LeakageError` when :func:`find_leaks` finds anything."""
    violations = find_leaks(train, test, val, test_subjects=test_subjects)
    if violations:
        raise LeakageError(fold, violations)
