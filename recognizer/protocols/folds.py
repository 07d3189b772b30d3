"""Subject-independent evaluation protocols: LOSO, k-fold, DFME 10-fold, MEGC2019 composite,
and ``all`` (one fold training on every sample, no test set: the final model).

Every :class:`Fold` carries three disjoint subject sets. The test subjects are the protocol's;
the validation subjects are a deterministic, seeded subset of the remaining (training)
subjects, used for model selection (early stopping) only, so nothing is ever chosen on a test
subject. Subjects are dataset-qualified strings (``"casme2/sub01"``), so subjects of two
datasets never collide.

**Persons.** Subject-independent is person-independent only when each person is one subject.
Where several subjects show one person (augmented copies of one portrait, a person recorded
twice), :class:`PersonProtocol` (built with :func:`by_person`) runs any protocol over persons
and holds out every subject of a test person together: LOSO over persons is
leave-one-person-out. For real datasets whose subjects are their own persons it gives the same
folds as the protocol it wraps.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold


@dataclass(frozen=True)
class Fold:
    """One train/validation/test split by subject.

    Attributes:
        index: 0-based fold number.
        train_subjects: subjects whose samples train the model.
        val_subjects: training-side subjects held out for model selection (may be empty).
        test_subjects: subjects evaluated in this fold.
    """

    index: int
    train_subjects: frozenset[str]
    val_subjects: frozenset[str]
    test_subjects: frozenset[str]

    def __post_init__(self) -> None:
        overlap = (
            (self.train_subjects & self.val_subjects)
            | (self.train_subjects & self.test_subjects)
            | (self.val_subjects & self.test_subjects)
        )
        if overlap:
            raise ValueError(f"fold {self.index}: subjects in two sets: {sorted(overlap)}")

    def masks(self, subjects: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boolean ``(N,)`` masks (train, val, test) over per-sample ``subjects``."""
        subj = np.asarray(subjects, dtype=object)
        return (
            np.isin(subj, list(self.train_subjects)),
            np.isin(subj, list(self.val_subjects)),
            np.isin(subj, list(self.test_subjects)),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "train_subjects": sorted(self.train_subjects),
            "val_subjects": sorted(self.val_subjects),
            "test_subjects": sorted(self.test_subjects),
        }


class Protocol:
    """Base class: subclasses choose the test subjects of each fold (``_test_groups``).

    Args:
        val_fraction: share of the training subjects held out for validation (at least one
            subject when > 0 and two or more training subjects exist; 0 disables validation).
        seed: seed of the validation draw (and of shuffled splits).

    Attributes:
        name: registry name.
        per_dataset: results should be broken down by dataset (composites).
        pooled_primary: the pooled metric is the headline number (LOSO) rather than the
            per-fold mean (k-fold reports both).
        has_test: the folds test subjects (false only for :class:`AllProtocol`, the final
            model trained on everything).
    """

    name = "protocol"
    per_dataset = False
    pooled_primary = True
    has_test = True

    def __init__(self, *, val_fraction: float = 0.1, seed: int = 0) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.val_fraction = float(val_fraction)
        self.seed = int(seed)

    def split(
        self,
        subjects: Sequence[str],
        labels: Sequence[int],
        datasets: Sequence[str] | None = None,
    ) -> list[Fold]:
        """Folds over per-sample ``subjects`` (``(N,)``), ``labels`` (``(N,)``) and datasets.

        Raises:
            ValueError: lengths differ, or too few subjects for the protocol.
        """
        subjects = [str(s) for s in subjects]
        labels_arr = np.asarray(labels)
        if len(subjects) != len(labels_arr):
            raise ValueError(f"{len(subjects)} subjects but {len(labels_arr)} labels")
        if datasets is not None and len(datasets) != len(subjects):
            raise ValueError(f"{len(subjects)} subjects but {len(datasets)} datasets")
        unique = sorted(set(subjects))
        if len(unique) < 2:
            raise ValueError(f"protocol {self.name!r} needs at least 2 subjects, got {unique}")
        folds = []
        for index, test in enumerate(self._test_groups(subjects, labels_arr, datasets)):
            rest = [s for s in unique if s not in test]
            train, val = self._carve_validation(rest, index)
            folds.append(Fold(index, frozenset(train), frozenset(val), frozenset(test)))
        return folds

    def _test_groups(
        self, subjects: list[str], labels: np.ndarray, datasets: Sequence[str] | None
    ) -> list[set[str]]:
        raise NotImplementedError

    def _carve_validation(self, subjects: list[str], index: int) -> tuple[list[str], list[str]]:
        if self.val_fraction == 0.0 or len(subjects) < 2:
            return subjects, []
        count = min(max(1, round(self.val_fraction * len(subjects))), len(subjects) - 1)
        rng = np.random.default_rng([self.seed, index])
        chosen = set(rng.choice(len(subjects), size=count, replace=False).tolist())
        train = [s for i, s in enumerate(subjects) if i not in chosen]
        val = [s for i, s in enumerate(subjects) if i in chosen]
        return train, val

    def __repr__(self) -> str:
        return f"{type(self).__name__}(val_fraction={self.val_fraction}, seed={self.seed})"


class LosoProtocol(Protocol):
    """Leave-one-subject-out: one fold per subject (sorted by name); metrics pooled.

    ``val_fraction`` defaults to 0: the LOSO literature (and the MEGC2019 composite) trains on
    every non-test subject for a fixed number of epochs and keeps the last weights
    (``TrainerConfig(selection="last")``), so no subject is held out. Set it (e.g. 0.1) with
    ``selection="best_val"`` to pick the epoch on held-out training subjects instead.
    """

    name = "loso"

    def __init__(self, *, val_fraction: float = 0.0, seed: int = 0) -> None:
        super().__init__(val_fraction=val_fraction, seed=seed)

    def _test_groups(self, subjects, labels, datasets):
        return [{s} for s in sorted(set(subjects))]


class KFoldProtocol(Protocol):
    """Subject-independent k-fold, stratified by label where possible.

    Uses scikit-learn's ``StratifiedGroupKFold`` (shuffled with ``seed``) when every class has
    at least ``n_splits`` samples, else ``GroupKFold`` (with a warning saying why). Metrics are
    reported as the mean ± std over folds and pooled.
    """

    name = "kfold"
    pooled_primary = False

    def __init__(
        self,
        *,
        n_splits: int = 5,
        stratified: bool = True,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(val_fraction=val_fraction, seed=seed)
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.stratified = stratified

    def _test_groups(self, subjects, labels, datasets):
        n_subjects = len(set(subjects))
        if n_subjects < self.n_splits:
            raise ValueError(
                f"{self.name}: {self.n_splits} folds need at least {self.n_splits} subjects, "
                f"got {n_subjects}"
            )
        groups = np.asarray(subjects, dtype=object)
        smallest = min(Counter(labels.tolist()).values())
        if self.stratified and smallest >= self.n_splits:
            splitter = StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=self.seed)
        else:
            if self.stratified:
                warnings.warn(
                    f"{self.name}: the smallest class has {smallest} samples < {self.n_splits} "
                    "folds; splitting by subject without stratification",
                    stacklevel=3,
                )
            splitter = GroupKFold(self.n_splits, shuffle=True, random_state=self.seed)
        return [set(groups[test].tolist()) for _, test in splitter.split(groups, labels, groups)]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_splits={self.n_splits}, stratified={self.stratified}, "
            f"val_fraction={self.val_fraction}, seed={self.seed})"
        )


class Dfme10Protocol(KFoldProtocol):
    """The DFME benchmark's subject-independent 10-fold cross-validation."""

    name = "dfme10"

    def __init__(self, *, val_fraction: float = 0.1, seed: int = 0) -> None:
        super().__init__(n_splits=10, stratified=True, val_fraction=val_fraction, seed=seed)


class AllProtocol(Protocol):
    """Train once on every sample, with no test set: the *final model* to predict with.

    One fold whose training subjects are every subject (minus the validation subjects, when
    ``val_fraction`` > 0 for ``selection="best_val"``) and whose test set is empty, so a run
    has no test score (``results.json`` says so: ``has_test`` is false). The recipe and seeds
    are those of any other protocol; ``mer train protocol=all`` writes ``final.pt``
    (:mod:`recognizer.training.final_model`) for ``mer predict``. One subject is enough.
    """

    name = "all"
    has_test = False

    def __init__(self, *, val_fraction: float = 0.0, seed: int = 0) -> None:
        super().__init__(val_fraction=val_fraction, seed=seed)

    def split(self, subjects, labels, datasets=None):
        subjects = [str(s) for s in subjects]
        if len(subjects) != len(labels):
            raise ValueError(f"{len(subjects)} subjects but {len(labels)} labels")
        if not subjects:
            raise ValueError("protocol 'all' needs at least one sample")
        train, val = self._carve_validation(sorted(set(subjects)), 0)
        return [Fold(0, frozenset(train), frozenset(val), frozenset())]


class Megc2019Protocol(LosoProtocol):
    """MEGC2019 composite (SMIC-HS, CASME II, SAMM; 3 classes): LOSO over all its subjects,
    pooled, with a per-dataset breakdown.

    ``datasets`` may be omitted when subjects are dataset-qualified (``"samm/006"``).
    """

    name = "megc2019"
    per_dataset = True
    EXPECTED = frozenset({"smic", "casme2", "samm"})

    def split(self, subjects, labels, datasets=None):
        if datasets is None:
            datasets = [str(s).split("/", 1)[0] for s in subjects]
        unexpected = sorted(set(datasets) - self.EXPECTED)
        if unexpected:
            warnings.warn(
                f"megc2019: datasets {unexpected} are not part of the composite "
                f"({sorted(self.EXPECTED)})",
                stacklevel=2,
            )
        return super().split(subjects, labels, datasets)


class PersonProtocol(Protocol):
    """``inner`` run over persons instead of subjects: each fold holds out whole persons (every
    subject of a test or validation person), so no fold trains on another subject of a person
    it tests on. Folds still list subjects.

    Args:
        inner: the protocol to run over persons (its validation draw picks persons too).
        persons: ``{subject: person}``; a subject missing from it is its own person.
    """

    def __init__(self, inner: Protocol, persons: Mapping[str, str]) -> None:
        super().__init__(val_fraction=inner.val_fraction, seed=inner.seed)
        self.inner = inner
        self.persons = {str(k): str(v) for k, v in persons.items()}
        self.name = inner.name
        self.per_dataset = inner.per_dataset
        self.pooled_primary = inner.pooled_primary
        self.has_test = inner.has_test

    def split(self, subjects, labels, datasets=None):
        subjects = [str(s) for s in subjects]
        people = [self.persons.get(s, s) for s in subjects]
        members: dict[str, set[str]] = defaultdict(set)
        for subject, person in zip(subjects, people):
            members[person].add(subject)
        if len(members) < 2:
            raise ValueError(
                f"protocol {self.name!r} by person needs at least 2 persons, got {sorted(members)}"
            )

        def expand(group: Iterable[str]) -> frozenset[str]:
            return frozenset(s for person in group for s in members[person])

        return [
            Fold(f.index, expand(f.train_subjects), expand(f.val_subjects),
                 expand(f.test_subjects))
            for f in self.inner.split(people, labels, datasets)
        ]  # fmt: skip

    def person_independent(self, folds: Sequence[Fold]) -> bool:
        """Whether no fold's training or validation subjects share a person with its test
        subjects (true for folds of this protocol; a check for reports)."""
        return folds_person_independent(folds, self.persons)

    def __repr__(self) -> str:
        return f"PersonProtocol({self.inner!r}, persons={len(set(self.persons.values()))})"


def by_person(protocol: Protocol | str, samples: Iterable[object], **kwargs: object) -> Protocol:
    """``protocol`` (or ``create_protocol(protocol, **kwargs)``) holding out whole persons of
    ``samples`` (:func:`recognizer.protocols.leakage.subject_persons`: ``extra["person"]``, else the
    subject). When every subject is its own person, the protocol itself is returned unchanged.

    Raises:
        ValueError: a subject's samples name two persons.
    """
    from recognizer.protocols.leakage import subject_persons

    inner = create_protocol(protocol, **kwargs) if isinstance(protocol, str) else protocol
    persons = subject_persons(samples)
    if all(subject == person for subject, person in persons.items()):
        return inner
    return PersonProtocol(inner, persons)


def folds_person_independent(folds: Sequence[Fold], persons: Mapping[str, str]) -> bool:
    """Whether no fold trains or validates on a person it tests on (``persons``:
    ``{subject: person}``, a subject missing from it being its own person)."""
    for fold in folds:
        tested = {persons.get(s, s) for s in fold.test_subjects}
        seen = {persons.get(s, s) for s in fold.train_subjects | fold.val_subjects}
        if tested & seen:
            return False
    return True


_PROTOCOLS: dict[str, Callable[..., Protocol]] = {
    "all": AllProtocol,
    "loso": LosoProtocol,
    "kfold": KFoldProtocol,
    "dfme10": Dfme10Protocol,
    "megc2019": Megc2019Protocol,
}


class UnknownProtocolError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def list_protocols() -> list[str]:
    return sorted(_PROTOCOLS)


def create_protocol(name: str, **kwargs: object) -> Protocol:
    """Build a protocol by name: ``loso``, ``kfold`` (``n_splits``, ``stratified``), ``dfme10``,
    ``megc2019``, ``all`` (train on everything, no test: the final model); all take
    ``val_fraction`` and ``seed``.

    Raises:
        UnknownProtocolError: unknown ``name`` (the message lists the known ones).
    """
    if name not in _PROTOCOLS:
        raise UnknownProtocolError(
            f"unknown protocol {name!r}; known protocols: {', '.join(list_protocols())}"
        )
    return _PROTOCOLS[name](**kwargs)
