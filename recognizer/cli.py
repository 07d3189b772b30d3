"""``mer``: micro-expression recognition from the command line (Hydra over ``configs/``)."""

from __future__ import annotations

import sys

from mesynth.cli import env_command
from mesynth.cli_app import Command, run_command

COMMANDS: dict[str, Command] = {
    "env": Command("env", env_command, "show versions, devices and available backends"),
}


def main(argv: list[str] | None = None) -> int:
    return run_command("mer", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
