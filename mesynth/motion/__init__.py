"""Motion: the AU landmark basis (IOD units) and onset -> apex -> offset timing curves."""

from mesynth.motion.au_basis import MotionModel, MotionModelError
from mesynth.motion.timing import Timing, TimingError, TimingSampler

__all__ = ["MotionModel", "MotionModelError", "Timing", "TimingError", "TimingSampler"]
