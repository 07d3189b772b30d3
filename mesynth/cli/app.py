"""Sub-command dispatch for Hydra applications (``mesynth generate ...``, ``mer train ...``).

Hydra has no sub-commands, so the first argument picks a primary config in ``mesynth/configs/`` and
the task function; the remaining arguments go to Hydra unchanged (overrides, ``--help``,
``--multirun``, ``--cfg job``).

A user error (a bad override or config value, a missing file, a release or store that cannot be
read: :data:`CONFIG_ERRORS` plus the types each command line passes) prints one line,
``<prog>: error: <message>``, and exits with status 2; ``--debug`` (or ``HYDRA_FULL_ERROR=1``)
shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra.errors import HydraException, InstantiationException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

#: errors of every command that are the user's to fix: Hydra's and OmegaConf's (bad overrides,
#: unknown groups or keys, missing values) and files that are not there.
CONFIG_ERRORS: tuple[type[BaseException], ...] = (
    HydraException,
    OmegaConfBaseException,
    FileNotFoundError,
)


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


def user_error_message(
    error: BaseException, user_errors: tuple[type[BaseException], ...]
) -> str | None:
    """The message to print for ``error``, or ``None`` when it is no user error (a bug).

    The chain of causes is searched for the first error of ``user_errors`` or
    :data:`CONFIG_ERRORS`; Hydra's instantiation wrapper gives way to the error it wraps, so
    ``recipe.frames.num_frames must be >= 2, got 1`` is shown, not Hydra's three lines.
    """
    known = (*CONFIG_ERRORS, *user_errors)
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    for item in chain:
        wraps_known = isinstance(item, InstantiationException) and any(
            isinstance(inner, known) for inner in chain[chain.index(item) + 1 :]
        )
        if isinstance(item, known) and not wraps_known:
            text = item.args[0] if isinstance(item, KeyError) and item.args else str(item)
            return str(text).strip() or type(item).__name__
    return None


def run_command(
    prog: str,
    commands: dict[str, Command],
    argv: Sequence[str] | None = None,
    *,
    user_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to one Hydra command. Returns an exit code.

    Args:
        prog: the program name in messages (``mesynth``, ``mer``).
        commands: sub-command name -> :class:`Command`.
        argv: the arguments; ``--debug`` anywhere shows tracebacks of user errors.
        user_errors: the caller's error types reported as one line (besides
            :data:`CONFIG_ERRORS`); anything else keeps its traceback.

    Returns:
        0 on success, 2 on a user error (printed as ``<prog>: error: <message>`` on stderr).
    """
    import hydra

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("HYDRA_FULL_ERROR") == "1"
    args = [a for a in args if a != "--debug"]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(prog, commands))
        return 0
    name, rest = args[0], args[1:]
    if name not in commands:
        known = ", ".join(commands)
        print(f"{prog}: unknown command {name!r}; known commands: {known}", file=sys.stderr)
        return 2
    command = commands[name]

    caught: list[str] = []

    def task(cfg: DictConfig) -> None:
        # a user error is caught here, before Hydra logs its own report of a failed job
        try:
            command.run(cfg)
        except Exception as error:
            message = None if debug else user_error_message(error, user_errors)
            if message is None:
                raise
            caught.append(message)

    task.__name__ = f"{prog}_{name}"
    saved, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"{prog} {name}", *rest, f"hydra.job.name={prog}_{name}"]
    # Hydra prints its own report and exits 1 unless HYDRA_FULL_ERROR is set; with it set the
    # error reaches this function, which decides how to show it.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra.main(
            version_base=None, config_path=str(config_dir()), config_name=command.config_name
        )(task)()
        if caught:
            print(f"{prog}: error: {caught[0]}", file=sys.stderr)
            return 2
    except Exception as error:
        message = None if debug else user_error_message(error, user_errors)
        if message is None:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
        if saved_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_full_error
    return 0
