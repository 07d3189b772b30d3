"""Protocols: the folds a run evaluates on, and the leakage checks every fold passes.

:mod:`.folds` builds subject-independent folds (``loso``, ``kfold``, ``dfme10``, ``megc2019``,
``all``; any of them over persons with :func:`by_person`), each with validation subjects drawn
from its training subjects only; :mod:`.leakage` checks the samples a fold actually trains,
validates and tests on.
"""

from recognizer.protocols.folds import (
    AllProtocol,
    Dfme10Protocol,
    Fold,
    KFoldProtocol,
    LosoProtocol,
    Megc2019Protocol,
    PersonProtocol,
    Protocol,
    UnknownProtocolError,
    by_person,
    create_protocol,
    folds_person_independent,
    list_protocols,
)
from recognizer.protocols.leakage import (
    LeakageError,
    SubjectSet,
    Violation,
    check_fold,
    check_profile,
    find_leaks,
    profile_leaks,
    provenance,
    sample_persons,
    subject_persons,
)

__all__ = [
    "AllProtocol",
    "Dfme10Protocol",
    "Fold",
    "KFoldProtocol",
    "LeakageError",
    "LosoProtocol",
    "Megc2019Protocol",
    "PersonProtocol",
    "Protocol",
    "SubjectSet",
    "UnknownProtocolError",
    "Violation",
    "by_person",
    "check_fold",
    "check_profile",
    "create_protocol",
    "find_leaks",
    "folds_person_independent",
    "list_protocols",
    "profile_leaks",
    "provenance",
    "sample_persons",
    "subject_persons",
]
