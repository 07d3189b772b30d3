"""mesynth: class-balanced synthetic micro-expression clips.

Public names are re-exported here as the modules that define them land.
"""

from mesynth.au import ActionUnit, AUCombination, parse_aus
from mesynth.balance import BalancePlan
from mesynth.calibration_profile import CalibrationProfile
from mesynth.canonical import (
    align_to_canonical,
    canonical_landmarks,
    inter_ocular_distance,
)
from mesynth.faces import Identity, IdentitySet, load_identities
from mesynth.motion import MotionModel
from mesynth.profile_realism import ProfileRealism
from mesynth.realism_report import ReportResult
from mesynth.store import ClipStore
from mesynth.templates import Template, TemplateAU, TemplateBank, TemplateInstance
from mesynth.timing import Timing, TimingSampler
from mesynth.warp import FaceWarper

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
    "ProfileRealism",
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
