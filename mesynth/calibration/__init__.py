"""Calibration: measuring real clips, the calibration profile, and render effects drawn from it.

Modules: adversarial, calibrate, clip_features, measure, profile, profile_effects. Import names
from the modules (or from :mod:`mesynth`); this package file imports nothing, so stages stay
acyclic.
"""
