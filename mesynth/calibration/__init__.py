"""Calibration: measuring real data, the calibration profile, and render effects drawn from it.

One entry point per method: :func:`~mesynth.calibration.calibrate.calibrate` (real clips,
``mesynth calibrate``), :func:`~mesynth.calibration.flow_images.calibrate_from_flows` (apex-flow
images and face crops, ``flows``), :func:`~mesynth.calibration.adversarial.adversarial_calibration`
(a search against a domain classifier, ``adversarial``); ``utility`` is
:func:`recognizer.remedies.utility.calibrate_utility`. None of the in-protocol methods has been
told apart from plain synthetic fill on real data (docs/mesynth/calibration.md, "Which
calibration to use").

Modules: adversarial, calibrate, clip_features (the adversarial search's key-frame view),
flow_images, framing_search (framing as searched parameters), measure (per-clip measurements),
profile, profile_effects, trials (the resumable trial loop both searches run on). Import names
from the modules (or from :mod:`mesynth`); this package file imports nothing, so stages stay
acyclic.
"""
