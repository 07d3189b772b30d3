"""mesynth: class-balanced synthetic micro-expression clips.

Public names are re-exported here and imported on first use (PEP 562), so ``import mesynth``
and the command line start without loading torch, OpenCV or scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

#: public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AUCombination": "mesynth.labels.au",
    "ActionUnit": "mesynth.labels.au",
    "BalancePlan": "mesynth.generation.balance",
    "CalibrationProfile": "mesynth.calibration.profile",
    "ClipStore": "mesynth.generation.store",
    "FaceWarper": "mesynth.render.warp",
    "Identity": "mesynth.face.identities",
    "IdentitySet": "mesynth.face.identities",
    "MotionModel": "mesynth.motion.au_basis",
    "ProfileEffects": "mesynth.calibration.profile_effects",
    "ReportResult": "mesynth.evaluation.realism_report",
    "Template": "mesynth.templates.bank",
    "TemplateAU": "mesynth.templates.bank",
    "TemplateBank": "mesynth.templates.bank",
    "TemplateInstance": "mesynth.templates.bank",
    "Timing": "mesynth.motion.timing",
    "TimingSampler": "mesynth.motion.timing",
    "align_to_canonical": "mesynth.face.canonical",
    "canonical_landmarks": "mesynth.face.canonical",
    "inter_ocular_distance": "mesynth.face.canonical",
    "load_identities": "mesynth.face.identities",
    "parse_aus": "mesynth.labels.au",
}

if TYPE_CHECKING:
    from mesynth.calibration.profile import CalibrationProfile
    from mesynth.calibration.profile_effects import ProfileEffects
    from mesynth.evaluation.realism_report import ReportResult
    from mesynth.face.canonical import (
        align_to_canonical,
        canonical_landmarks,
        inter_ocular_distance,
    )
    from mesynth.face.identities import Identity, IdentitySet, load_identities
    from mesynth.generation.balance import BalancePlan
    from mesynth.generation.store import ClipStore
    from mesynth.labels.au import ActionUnit, AUCombination, parse_aus
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import Timing, TimingSampler
    from mesynth.render.warp import FaceWarper
    from mesynth.templates.bank import Template, TemplateAU, TemplateBank, TemplateInstance


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mesynth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "AUCombination",
    "ActionUnit",
    "BalancePlan",
    "CalibrationProfile",
    "ClipStore",
    "FaceWarper",
    "Identity",
    "IdentitySet",
    "MotionModel",
    "ProfileEffects",
    "ReportResult",
    "Template",
    "TemplateAU",
    "TemplateBank",
    "TemplateInstance",
    "Timing",
    "TimingSampler",
    "__version__",
    "align_to_canonical",
    "canonical_landmarks",
    "inter_ocular_distance",
    "load_identities",
    "parse_aus",
]
