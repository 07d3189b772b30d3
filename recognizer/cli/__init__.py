"""The ``mer`` commands: the only part of recognizer that knows Hydra (:mod:`.commands`)."""

from recognizer.cli.commands import (
    CollectResults,
    CommandArgumentError,
    DataConfigError,
    DataSide,
    build_data,
    build_representation,
    main,
)

__all__ = [
    "CollectResults",
    "CommandArgumentError",
    "DataConfigError",
    "DataSide",
    "build_data",
    "build_representation",
    "main",
]
