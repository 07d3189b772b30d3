"""mesynth: class-balanced synthetic micro-expression clips.

Public names are re-exported here as the modules that define them land.
"""

from mesynth.canonical import (
    align_to_canonical,
    canonical_landmarks,
    inter_ocular_distance,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "align_to_canonical",
    "canonical_landmarks",
    "inter_ocular_distance",
]
