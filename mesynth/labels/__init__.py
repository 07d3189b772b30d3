"""What a clip means: AU strings parsed into structure, and emotion label schemes."""

from mesynth.labels.au import ActionUnit, AUCombination, parse_aus
from mesynth.labels.emotions import UnknownLabelError, known_schemes, scheme_labels, to_scheme

__all__ = [
    "AUCombination",
    "ActionUnit",
    "UnknownLabelError",
    "known_schemes",
    "parse_aus",
    "scheme_labels",
    "to_scheme",
]
