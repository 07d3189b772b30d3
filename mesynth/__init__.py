"""mesynth: class-balanced synthetic micro-expression clips.

Public names are re-exported here as the modules that define them land.
"""

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

__version__ = "0.1.0.dev0"

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
