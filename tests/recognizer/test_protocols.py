import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recognizer.protocols import UnknownProtocolError, create_protocol

samples_strategy = st.lists(
    st.tuples(st.integers(0, 11), st.integers(0, 2)), min_size=12, max_size=60
).filter(lambda rows: len({s for s, _ in rows}) >= 5)


def _check_folds(folds, subjects) -> None:
    everyone = set(subjects)
    tested = []
    for fold in folds:
        assert not fold.train_subjects & fold.test_subjects
        assert not fold.val_subjects & fold.test_subjects
        assert not fold.val_subjects & fold.train_subjects
        assert fold.train_subjects | fold.val_subjects | fold.test_subjects == everyone
        assert fold.train_subjects
        train, val, test = fold.masks(subjects)
        assert not (train & test).any() and not (val & test).any()
        tested += sorted(fold.test_subjects)
    assert sorted(tested) == sorted(everyone)  # every subject tested exactly once


@settings(max_examples=40, deadline=None)
@given(rows=samples_strategy, val_fraction=st.sampled_from([0.0, 0.1, 0.3]))
def test_loso_never_shares_a_subject(rows, val_fraction) -> None:
    subjects = [f"casme2/s{s}" for s, _ in rows]
    labels = [y for _, y in rows]
    folds = create_protocol("loso", val_fraction=val_fraction).split(subjects, labels)
    assert len(folds) == len(set(subjects))
    assert all(len(f.test_subjects) == 1 for f in folds)
    _check_folds(folds, subjects)
    if val_fraction > 0:
        assert all(f.val_subjects for f in folds)


@settings(max_examples=40, deadline=None)
@given(rows=samples_strategy, n_splits=st.integers(2, 5), seed=st.integers(0, 3))
def test_kfold_never_shares_a_subject(rows, n_splits, seed) -> None:
    subjects = [f"samm/{s:03d}" for s, _ in rows]
    labels = [y for _, y in rows]
    protocol = create_protocol("kfold", n_splits=n_splits, seed=seed, val_fraction=0.2)
    smallest = min(Counter(labels).values())
    with pytest.warns(UserWarning) if smallest < n_splits else warnings.catch_warnings():
        if smallest >= n_splits:
            warnings.simplefilter("error")
        folds = protocol.split(subjects, labels)
    assert len(folds) == n_splits
    _check_folds(folds, subjects)


def test_validation_is_deterministic_and_seeded() -> None:
    subjects = [f"d/s{i}" for i in range(20)]
    labels = [i % 3 for i in range(20)]
    a = create_protocol("loso", val_fraction=0.2, seed=1).split(subjects, labels)
    b = create_protocol("loso", val_fraction=0.2, seed=1).split(subjects, labels)
    c = create_protocol("loso", val_fraction=0.2, seed=2).split(subjects, labels)
    assert a == b
    assert [f.val_subjects for f in a] != [f.val_subjects for f in c]
    assert all(len(f.val_subjects) == round(0.2 * 19) for f in a)


def test_kfold_stratifies_when_it_can() -> None:
    rng = np.random.default_rng(0)
    subjects = [f"dfme/p{i // 6}" for i in range(600)]
    labels = rng.integers(0, 3, 600).tolist()
    folds = create_protocol("dfme10").split(subjects, labels)
    assert len(folds) == 10
    overall = np.bincount(labels) / len(labels)
    subj = np.asarray(subjects)
    for fold in folds:
        test = np.isin(subj, list(fold.test_subjects))
        share = np.bincount(np.asarray(labels)[test], minlength=3) / test.sum()
        assert np.abs(share - overall).max() < 0.12


def test_megc2019_derives_datasets_and_warns_on_foreign_ones() -> None:
    subjects = ["smic/s1", "smic/s2", "casme2/sub01", "samm/006"]
    protocol = create_protocol("megc2019")
    assert protocol.per_dataset and protocol.pooled_primary
    assert len(protocol.split(subjects, [0, 1, 2, 0])) == 4
    with pytest.warns(UserWarning, match="dfme"):
        protocol.split([*subjects, "dfme/p1"], [0, 1, 2, 0, 1])


def test_bad_input() -> None:
    with pytest.raises(UnknownProtocolError, match="loso") as err:
        create_protocol("holdout")
    assert "dfme10" in str(err.value)
    with pytest.raises(ValueError, match="2 subjects"):
        create_protocol("loso").split(["a/1", "a/1"], [0, 1])
    with pytest.raises(ValueError, match="labels"):
        create_protocol("loso").split(["a/1", "a/2"], [0])
    with pytest.raises(ValueError, match="at least 5 subjects"):
        create_protocol("kfold", n_splits=5).split(["a/1", "a/2", "a/3"], [0, 1, 0])
