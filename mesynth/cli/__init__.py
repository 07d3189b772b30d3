"""The ``mesynth`` commands: the only part of mesynth that knows Hydra."""

from mesynth.cli.main import main

__all__ = ["main"]
