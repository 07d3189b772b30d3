"""Sub-command dispatch for Hydra applications (``mesynth generate ...``, ``mer train ...``).

Hydra has no sub-commands, so the first argument picks a primary config in ``mesynth/configs/`` and
the task function; the remaining arguments go to Hydra unchanged (overrides, ``--help``,
``--multirun``, ``--cfg job``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig


@dataclass(frozen=True)
class Command:
    """One sub-command: its primary config (``mesynth/configs/<config_name>.yaml``) and task
    function."""

    config_name: str
    run: Callable[[DictConfig], object]
    summary: str


def config_dir() -> Path:
    """The Hydra config folder: ``$MESYNTH_CONFIG_DIR`` or the package's own ``mesynth/configs/``.

    The configs ship inside the wheel as package data, so a plain ``pip install`` works.
    """
    override = os.environ.get("MESYNTH_CONFIG_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "configs"
    if not path.is_dir():
        origin = "MESYNTH_CONFIG_DIR" if override else "the installed mesynth package"
        raise FileNotFoundError(
            f"config folder {path} (from {origin}) not found; unset MESYNTH_CONFIG_DIR or point "
            "it at a copy of mesynth/configs/, or reinstall mesynth"
        )
    return path


def config_groups() -> list[str]:
    """Names of the config groups (sub-folders of ``mesynth/configs/`` holding YAML files)."""
    root = config_dir()
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml")) and p.name != "hydra"
    )


def usage(prog: str, commands: dict[str, Command]) -> str:
    lines = [f"usage: {prog} COMMAND [hydra overrides...] [--help]", "", "commands:"]
    width = max(len(name) for name in commands)
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in commands.items()]
    lines += ["", "config groups (mesynth/configs/): " + ", ".join(config_groups())]
    lines += [f"'{prog} COMMAND --help' shows that command's config and its groups."]
    return "\n".join(lines)


def run_command(prog: str, commands: dict[str, Command], argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to one Hydra command. Returns an exit code."""
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(prog, commands))
        return 0
    name, rest = args[0], args[1:]
    if name not in commands:
        known = ", ".join(commands)
        print(f"{prog}: unknown command {name!r}; known commands: {known}", file=sys.stderr)
        return 2
    command = commands[name]

    def task(cfg: DictConfig) -> None:
        command.run(cfg)

    task.__name__ = f"{prog}_{name}"
    saved = sys.argv
    sys.argv = [f"{prog} {name}", *rest, f"hydra.job.name={prog}_{name}"]
    try:
        hydra.main(
            version_base=None, config_path=str(config_dir()), config_name=command.config_name
        )(task)()
    finally:
        sys.argv = saved
    return 0
