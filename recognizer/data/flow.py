"""Apex flow for the recognizer: the generic flow code lives in :mod:`mesynth.flow`.

Real and synthetic clips go through the very same functions; this module re-exports them under
their historical recognizer names.
"""

from __future__ import annotations

from mesynth.flow import (
    METHODS,
    apex_flow,
    flip_apex_flow,
    minmax_uint8,
    optical_flow,
    optical_strain,
    save_apex_flow,
    tvl1_available,
)

__all__ = [
    "METHODS",
    "apex_flow",
    "flip_apex_flow",
    "minmax_uint8",
    "optical_flow",
    "optical_strain",
    "save_apex_flow",
    "tvl1_available",
]
