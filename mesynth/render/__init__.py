"""Rendering: the TPS operator and batched warper, and per-clip render effects
(head motion, blinks, skin motion, noise, flicker, JPEG)."""

from mesynth.render.effects import EffectParams, EffectsConfig
from mesynth.render.warp import FaceWarper, WarpRequest

__all__ = ["EffectParams", "EffectsConfig", "FaceWarper", "WarpRequest"]
