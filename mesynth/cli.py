"""``mesynth``: the generator's command line (Hydra over ``configs/``)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from mesynth.cli_app import Command, run_command
from mesynth.environment import environment_report, format_report


def env_command(cfg: DictConfig) -> None:
    """Print versions, devices and which landmark / optical-flow backends are usable."""
    print(format_report(environment_report()))


COMMANDS: dict[str, Command] = {
    "env": Command("env", env_command, "show versions, devices and available backends"),
}


def main(argv: list[str] | None = None) -> int:
    return run_command("mesynth", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
