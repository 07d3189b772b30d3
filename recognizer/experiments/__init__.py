"""Experiments: running a protocol end to end, and the checks before a run writes anything.

:mod:`.runner` runs folds x remedy x model (over seeds) into pooled metrics and re-evaluates
finished runs; :mod:`.run_checks` refuses, in one line each, a configuration that cannot work.
"""

from recognizer.experiments.run_checks import RunInputError, check_run
from recognizer.experiments.runner import (
    ProtocolResult,
    RunConfigError,
    SeedsResult,
    evaluate_run,
    run_protocol,
    run_protocol_seeds,
)

__all__ = [
    "ProtocolResult",
    "RunConfigError",
    "RunInputError",
    "SeedsResult",
    "check_run",
    "evaluate_run",
    "run_protocol",
    "run_protocol_seeds",
]
