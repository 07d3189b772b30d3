"""Faces: landmark backends, the canonical 68-point face, identities and image decoding."""

from mesynth.face.canonical import align_to_canonical, canonical_landmarks, inter_ocular_distance
from mesynth.face.identities import Identity, IdentitySet, load_identities
from mesynth.face.image_io import decode_rgb
from mesynth.face.landmarks import LandmarkError, NoFaceError, create_detector, detect_landmarks

__all__ = [
    "Identity",
    "IdentitySet",
    "LandmarkError",
    "NoFaceError",
    "align_to_canonical",
    "canonical_landmarks",
    "create_detector",
    "decode_rgb",
    "detect_landmarks",
    "inter_ocular_distance",
    "load_identities",
]
