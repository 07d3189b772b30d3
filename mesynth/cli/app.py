"""Sub-command dispatch for Hydra applications (``mesynth generate ...``, ``mer train ...``).

Hydra has no sub-commands, so the first argument picks a primary config in ``mesynth/configs/`` and
the task function; the remaining arguments go to Hydra unchanged (overrides, ``--help``,
``--multirun``, ``--cfg job``). ``COMMAND --help`` is answered here, from the command's own
config: its groups (read from its defaults list) and its composed config, never the other
tool's groups.

Hydra itself writes nothing (:func:`hydra_writes_nothing`): no run folder, no ``.hydra/`` copy
of the config, no log file, so a bad argument leaves the working directory as it was and a
command given an output folder writes only there. A command that writes and is given no
``out_dir`` writes into ``paths.output_dir``, the time-stamped folder under
``paths.output_root`` (``outputs/<job>/<time>/``), made when the first file goes there. A
multirun keeps Hydra's sweep folders (one per job). Ctrl-C prints one line,
``<prog>: interrupted`` (with how to resume for resumable commands) and exits with 130.

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

import yaml
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
    function.

    Attributes:
        config_name: the primary config's file name without ``.yaml``.
        run: the task function, called with the composed config.
        summary: one line for the usage text.
        run_dir: ``False`` for commands that write nothing under ``paths.output_root`` (they
            get no time-stamped ``paths.output_dir``, even as a multirun). No command gets
            Hydra's run folder, ``.hydra/`` copy or log file (:func:`hydra_writes_nothing`).
        resumable: rerunning the command continues an interrupted run (the Ctrl-C message
            says how).
        groups: optional groups the command takes with ``+group=option`` besides those of its
            defaults list (``mer experiment +experiment=dfme_remedies``).
    """

    config_name: str
    run: Callable[[DictConfig], object]
    summary: str
    run_dir: bool = True
    resumable: bool = False
    groups: tuple[str, ...] = ()


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


def _defaults_list(path: Path) -> list[object]:
    """The ``defaults`` list of one config file (empty when it has none)."""
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    return list(data.get("defaults") or []) if isinstance(data, dict) else []


def _groups_in(root: Path, config: Path, parent: str, found: set[str]) -> None:
    """Add to ``found`` the groups named in ``config``'s defaults list, following each chosen
    option's own defaults (relative to its group, as Hydra reads them)."""
    for entry in _defaults_list(config):
        if not isinstance(entry, dict):
            continue
        for key, option in entry.items():
            name = str(key).split()[-1]  # "override recipe/effects", "optional x"
            group = name[1:] if name.startswith("/") else "/".join(filter(None, [parent, name]))
            if group == "hydra" or not (root / group).is_dir() or group in found:
                continue
            found.add(group)
            if isinstance(option, str):
                _groups_in(root, root / group / f"{option}.yaml", group, found)


def command_groups(command: Command) -> list[str]:
    """The config groups one command composes from: those of its primary config's defaults list
    (recursively) plus :attr:`Command.groups`. Hydra's own ``hydra`` node is left out."""
    root = config_dir()
    found: set[str] = set(command.groups)
    _groups_in(root, root / f"{command.config_name}.yaml", "", found)
    return sorted(found)


def config_groups(commands: dict[str, Command]) -> list[str]:
    """The config groups of a set of commands (one tool): the union of :func:`command_groups`."""
    return sorted({g for command in commands.values() for g in command_groups(command)})


def usage(prog: str, commands: dict[str, Command]) -> str:
    """The text of ``<prog> --help``: the commands and the tool's own config groups."""
    lines = [f"usage: {prog} COMMAND [hydra overrides...] [--help]", "", "commands:"]
    width = max(len(name) for name in commands)
    lines += [f"  {name.ljust(width)}  {cmd.summary}" for name, cmd in commands.items()]
    lines += ["", f"config groups of {prog}: " + ", ".join(config_groups(commands))]
    lines += [f"'{prog} COMMAND --help' shows that command's config and its groups."]
    return "\n".join(lines)


def command_help(prog: str, name: str, command: Command, overrides: Sequence[str]) -> str:
    """The text of ``<prog> <name> --help``: the command's groups with their options and its
    config composed with ``overrides`` (interpolations left as written).

    Raises:
        HydraException: an override names an unknown group, option or key.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    root = config_dir()
    with initialize_config_dir(config_dir=str(root), version_base=None, job_name=name):
        cfg = compose(config_name=command.config_name, overrides=list(overrides))
    lines = [f"{prog} {name}: {command.summary}", "", "== Configuration groups =="]
    lines += ["Compose your configuration from those groups (group=option)", ""]
    for group in command_groups(command):
        options = sorted(p.stem for p in (root / group).glob("*.yaml"))
        prefix = "+" if group in command.groups else ""
        lines.append(f"{prefix}{group}: {', '.join(options)}")
    lines += ["", "== Config ==", "Override anything in the config (foo.bar=value)", ""]
    lines += [OmegaConf.to_yaml(cfg).rstrip(), ""]
    lines += ["Docs: docs/ (make docs). Hydra's own options: --hydra-help."]
    return "\n".join(lines)


def resume_hint(cfg: DictConfig) -> str:
    """How to resume the running Hydra job whose config is ``cfg``: the same command, pinned to
    the job's folder when that folder is a new, time-stamped one (``out_dir`` under the run
    folder, or the sweep folder of a multirun)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get()
    given = [str(o) for o in (*hydra_cfg.overrides.task, *hydra_cfg.overrides.hydra)]
    output_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    if hydra_cfg.mode == RunMode.MULTIRUN:
        if any(o.startswith("hydra.sweep.dir=") for o in given):
            return "rerun the same command to resume"
        depth = len(Path(str(hydra_cfg.sweep.subdir)).parts)
        sweep = output_dir.parents[depth - 1] if depth else output_dir
        return f"rerun the same command with hydra.sweep.dir={sweep} to resume"
    out_dir = cfg.get("out_dir")
    if out_dir is not None and not any(o.startswith("out_dir=") for o in given):
        paths = cfg.get("paths")
        if paths is not None and paths.get("output_dir") is not None:
            output_dir = Path(str(paths.output_dir)).resolve()  # the run's time-stamped folder
        resolved = Path(str(out_dir)).resolve()
        if resolved == output_dir or output_dir in resolved.parents:
            return f"rerun the same command with out_dir={out_dir} to resume"
    return "rerun the same command to resume"


#: Hydra writes nothing of its own: no run folder, no ``.hydra/`` copy of the config, no log file.
QUIET = ("hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout")

#: the time-stamped folder of a run whose ``out_dir`` is not given (``paths.output_dir``), made by
#: the command when it writes there, not by Hydra before the command has checked its arguments.
RUN_FOLDER = "paths.output_dir=${paths.output_root}/${hydra:job.name}/${now:%Y-%m-%d_%H-%M-%S}"


def _is_multirun(command: Command, args: Sequence[str]) -> bool:
    """Whether the command runs as a Hydra multirun (``--multirun``/``-m`` or its config's
    ``hydra.mode``): each job then has its own sweep folder, which Hydra makes."""
    if any(a in ("-m", "--multirun") for a in args):
        return True
    path = config_dir() / f"{command.config_name}.yaml"
    data = yaml.safe_load(path.read_text()) if path.is_file() else None
    hydra_node = data.get("hydra") if isinstance(data, dict) else None
    mode = hydra_node.get("mode") if isinstance(hydra_node, dict) else None
    return str(mode).upper() == "MULTIRUN"


def hydra_writes_nothing(command: Command, args: Sequence[str]) -> list[str]:
    """The overrides that keep Hydra from writing before the command runs (:data:`QUIET`).

    A single run writes only into its output folder (``out_dir``, a store, a report folder):
    Hydra's own run folder, ``.hydra/`` copy and log file would appear under
    ``paths.output_root`` in the working directory before a bad argument is refused, and
    even when ``out_dir`` is given. Commands that write have ``paths.output_dir`` point at the
    time-stamped folder Hydra would have made (:data:`RUN_FOLDER`), created only by what
    writes there. A multirun keeps Hydra's sweep folders, and a user who sets
    ``hydra.run.dir`` or ``hydra.output_subdir`` (e.g. one folder for every torchrun rank)
    keeps Hydra's run folder.
    """
    if not command.run_dir:
        return list(QUIET)
    if _is_multirun(command, args):
        return []
    if any(a.startswith(("hydra.run.dir=", "hydra.output_subdir=")) for a in args):
        return []
    given_folder = any(a.startswith("paths.output_dir=") for a in args)
    return [*QUIET] if given_folder else [*QUIET, RUN_FOLDER]


#: Hydra's flags that take a value (the next argument is that value, not an override).
_VALUE_FLAGS = frozenset(
    {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn"}
    | {"--config-dir", "-cd", "--experimental-rerun"}
)


def with_overrides(args: Sequence[str], extra: Sequence[str]) -> list[str]:
    """``args`` with the overrides ``extra`` placed next to the user's own overrides.

    Hydra's parser takes the overrides as one run of positional arguments, so an override
    appended after a flag (``--cfg job hydra.job.name=x``) would be "unrecognized": ``extra``
    goes right after the last override of ``args`` (before the flags when there is none).
    """
    args = list(args)
    last = -1
    i = 0
    while i < len(args):
        if args[i] in _VALUE_FLAGS:
            i += 2
            continue
        if not args[i].startswith("-"):
            last = i
        i += 1
    return [*args[: last + 1], *extra, *args[last + 1 :]]


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
            return one_line(str(text)) or type(item).__name__
    return None


def one_line(message: str) -> str:
    """``message`` on one line: Hydra's "Available options in 'model':" list joined with commas,
    other lines with "; ", and its "Config search path:" section left out."""
    lines = [line.strip() for line in message.strip().splitlines()]
    if "Config search path:" in lines:
        lines = lines[: lines.index("Config search path:")]
    pieces: list[str] = []
    listing = False
    for line in lines:
        if not line:
            listing = False
            continue
        if pieces and listing:
            pieces[-1] += (" " if pieces[-1].endswith(":") else ", ") + line
        else:
            pieces.append(line)
        listing = listing or line.endswith(":")
    return "; ".join(pieces)


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
        0 on success, 2 on a user error (printed as ``<prog>: error: <message>`` on stderr),
        130 when interrupted (Ctrl-C; ``<prog>: interrupted`` and, for resumable commands, how
        to resume, on stderr).
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
    if any(a in ("-h", "--help") for a in rest):
        overrides = [a for a in rest if a not in ("-h", "--help")]
        try:
            print(command_help(prog, name, command, overrides))
        except CONFIG_ERRORS as error:
            if debug:
                raise
            print(f"{prog}: error: {user_error_message(error, ())}", file=sys.stderr)
            return 2
        return 0
    rest = with_overrides(rest, hydra_writes_nothing(command, rest))

    caught: list[str] = []
    interrupted: list[str] = []

    def task(cfg: DictConfig) -> None:
        # a user error is caught here, before Hydra logs its own report of a failed job
        if command.resumable:
            interrupted.append(resume_hint(cfg))
        try:
            command.run(cfg)
        except Exception as error:
            message = None if debug else user_error_message(error, user_errors)
            if message is None:
                raise
            caught.append(message)

    task.__name__ = f"{prog}_{name}"
    saved, saved_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"{prog} {name}", *with_overrides(rest, [f"hydra.job.name={prog}_{name}"])]
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
    except KeyboardInterrupt:
        if debug:
            raise
        hint = f"; {interrupted[-1]}" if interrupted else ""
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130
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
