"""Person-independent folds: every subject of a test person is held out together."""

from __future__ import annotations

import pytest

from recognizer.protocols import (
    LosoProtocol,
    PersonProtocol,
    by_person,
    create_protocol,
    folds_person_independent,
)
from recognizer.protocols.leakage import subject_persons
from tests.recognizer.helpers import FakeSample


def _copies() -> list:
    """Two portraits, three augmented copies each (subject = copy, person = portrait)."""
    samples = []
    for person in ("astronaut", "hopper"):
        for j in range(3):
            for c in range(4):
                subject = f"target/{person}~aug{j}"
                samples.append(FakeSample("target", subject, f"c{c}", extra={"person": person}))
    return samples


def test_loso_over_persons_is_leave_one_person_out() -> None:
    samples = _copies()
    protocol = by_person("loso", samples)
    assert isinstance(protocol, PersonProtocol) and protocol.name == "loso"
    folds = protocol.split([s.subject for s in samples], [0] * len(samples))
    assert len(folds) == 2
    persons = subject_persons(samples)
    for fold in folds:
        assert {persons[s] for s in fold.test_subjects} in ({"astronaut"}, {"hopper"})
        assert len(fold.test_subjects) == 3 and len(fold.train_subjects) == 3
    assert folds_person_independent(folds, persons)
    # plain LOSO over the copies trains on a copy of the test person's face
    plain = LosoProtocol().split([s.subject for s in samples], [0] * len(samples))
    assert len(plain) == 6 and not folds_person_independent(plain, persons)


def test_kfold_over_persons_carves_validation_by_person_too() -> None:
    samples = _copies()
    for s in list(samples):
        subject = s.subject.replace("target/", "target/x")
        samples.append(
            FakeSample("target", subject, s.clip, extra={"person": "x" + s.extra["person"]})
        )
    protocol = by_person(create_protocol("kfold", n_splits=2, val_fraction=0.5), samples)
    persons = subject_persons(samples)
    for fold in protocol.split([s.subject for s in samples], [0, 1] * (len(samples) // 2)):
        sides = [
            {persons[s] for s in side}
            for side in (fold.train_subjects, fold.val_subjects, fold.test_subjects)
        ]
        assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2]
                                   or sides[1] & sides[2])  # fmt: skip


def test_real_subjects_are_their_own_persons_and_keep_the_plain_protocol() -> None:
    samples = [FakeSample("casme2", f"casme2/sub0{i}", "c") for i in range(3)]
    protocol = LosoProtocol()
    assert by_person(protocol, samples) is protocol


def test_a_subject_of_two_persons_is_refused() -> None:
    a = FakeSample("t", "t/s1", "c1", extra={"person": "p"})
    b = FakeSample("t", "t/s1", "c2", extra={"person": "q"})
    with pytest.raises(ValueError, match="two persons"):
        by_person("loso", [a, b])
