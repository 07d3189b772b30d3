"""Studies: end-to-end runs on a synthetic stand-in target that write a report page.

:mod:`.imbalance` is the imbalance study (``make study``: ``python -m
recognizer.studies.imbalance``); :mod:`.demo` is its one-minute version after a balanced-set
showcase (``make demo``: ``python -m recognizer.studies.demo``).

Both modules are run with ``python -m``, which imports this package first; so the names below
are imported on first use (PEP 562) rather than here, or each module would run twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recognizer.studies.demo import generate_balanced_set
    from recognizer.studies.imbalance import StudyConfig, proportional_counts, run_study

_IMBALANCE = frozenset({"StudyConfig", "proportional_counts", "run_study"})
_DEMO = frozenset({"generate_balanced_set"})


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    if name in _IMBALANCE:
        from recognizer.studies import imbalance as module
    elif name in _DEMO:
        from recognizer.studies import demo as module
    else:
        raise AttributeError(f"module 'recognizer.studies' has no attribute {name!r}")
    return getattr(module, name)


__all__ = ["StudyConfig", "generate_balanced_set", "proportional_counts", "run_study"]
