"""CLI manners: each tool's help shows its own groups, commands that produce nothing leave no
folder behind, and Ctrl-C stops with one line and exit code 130."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesynth.cli.app import Command, with_overrides
from mesynth.cli.main import main as mesynth_main
from recognizer.cli import main as mer_main
from tests.recognizer.helpers import TINY_KFOLD
from tests.recognizer.test_experiment_cli import blob_store

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"mesynth": "mesynth.cli", "mer": "recognizer.cli"}
MESYNTH_ONLY = ("mesynth/plan", "recipe", "recipe/effects")
MER_ONLY = ("model", "protocol", "remedy", "representation", "trainer", "experiment")


def _cli(tool: str) -> list[str]:
    """The command line of ``tool`` run from this checkout (not from an installed copy)."""
    return [sys.executable, "-c", f"import sys; from {TOOLS[tool]} import main; sys.exit(main())"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESYNTH_")}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _groups_line(out: str, tool: str) -> set[str]:
    line = next(x for x in out.splitlines() if x.startswith(f"config groups of {tool}: "))
    return set(line.split(": ", 1)[1].split(", "))


def test_each_tool_lists_its_own_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert mesynth_main(["--help"]) == 0
    mesynth_groups = _groups_line(capsys.readouterr().out, "mesynth")
    assert mer_main(["--help"]) == 0
    mer_groups = _groups_line(capsys.readouterr().out, "mer")
    assert set(MESYNTH_ONLY) <= mesynth_groups and not set(MER_ONLY) & mesynth_groups
    assert set(MER_ONLY) <= mer_groups and not set(MESYNTH_ONLY) & mer_groups
    assert "data" in mesynth_groups and "data" in mer_groups  # calibrate/realism read datasets
    assert "hydra" not in mesynth_groups | mer_groups


def test_command_help_shows_that_commands_groups_and_overrides(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert mesynth_main(["generate", "--help", "recipe/effects=full", "recipe.size=48"]) == 0
    out = capsys.readouterr().out
    assert "recipe/effects: full, none, profile" in out and "mesynth/plan: equal" in out
    assert "size: 48" in out and "head_motion: true" in out  # the overrides are composed
    assert "model:" not in out and "remedy:" not in out and "trainer:" not in out
    assert mer_main(["experiment", "--help"]) == 0
    out = capsys.readouterr().out
    assert "+experiment: casme2_remedies, dfme_remedies" in out
    assert "remedy: " in out and "recipe/effects" not in out
    assert mer_main(["train", "--help", "model=no_such_model"]) == 2
    assert "mer: error: " in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ("mesynth", "env"),
        ("mesynth", "templates", "scheme=megc3"),
        ("mesynth", "--help"),
        ("mesynth", "generate", "--help"),
        ("mer", "env"),
        ("mer", "train", "--help"),
    ],
    ids=lambda a: " ".join(a),
)
def test_commands_that_produce_nothing_leave_no_folder(args: tuple[str, ...], tmp_path) -> None:
    done = subprocess.run(
        [*_cli(args[0]), *args[1:]], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_command_that_fails_leaves_no_run_folder(tmp_path) -> None:
    store = blob_store(tmp_path / "store", identities=2, per_identity=2)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [*_cli("mer"), "report", f"runs=[{store}]"],
        cwd=work,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2  # a store is no run: refused before any folder is made
    assert "mer: error: " in done.stderr and "Traceback" not in done.stderr
    assert list(work.iterdir()) == []


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(cmd: list[str], cwd: Path, ready: str, timeout: float = 120.0):
    """Start ``cmd`` in its own process group, wait for a stdout line containing ``ready``,
    then press Ctrl-C (SIGINT to the whole group, workers included)."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell's background job ignores SIGINT and its children inherit that; a terminal's
        # foreground command does not
        preexec_fn=_default_sigint,
    )
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if ready in line or time.monotonic() > deadline:
                break
        assert any(ready in line for line in seen), "".join(seen)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, "".join(seen) + out, err


def test_ctrl_c_during_generate_is_one_line_and_resumable(tmp_path) -> None:
    cmd = [
        *_cli("mesynth"),
        "generate",
        "mesynth.plan.n_per_class=400",
        "recipe.size=48",
        "progress=false",
        "out_dir=store",
    ]
    code, _, err = _interrupt(cmd, tmp_path, ready="plan:")
    assert code == 130
    assert err.strip() == "mesynth: interrupted; rerun the same command to resume"
    assert "Traceback" not in err


def test_ctrl_c_during_training_names_the_folder_to_resume(tmp_path) -> None:
    store = blob_store(tmp_path / "store", identities=2, per_identity=8)
    cmd = [
        *_cli("mer"),
        "train",
        f"data.loader.root={store}",
        *TINY_KFOLD,
        "trainer.epochs=100000",
        "trainer.progress=false",
    ]
    code, out, err = _interrupt(cmd, tmp_path, ready="results: ")
    assert code == 130, err
    assert "Traceback" not in err
    run_dir = next(line for line in out.splitlines() if line.startswith("results: "))[9:]
    assert err.strip().splitlines()[-1] == (
        f"mer: interrupted; rerun the same command with out_dir={run_dir} to resume"
    )
    assert err.count("interrupted") == 1
    assert (tmp_path / run_dir).is_dir()


def test_ctrl_c_of_a_command_that_cannot_resume_says_only_interrupted(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_main = importlib.import_module("mesynth.cli.main")

    def press_ctrl_c(cfg: object) -> None:
        raise KeyboardInterrupt

    command = cli_main.COMMANDS["stats"]
    interrupted = Command(command.config_name, press_ctrl_c, command.summary, run_dir=False)
    monkeypatch.setitem(cli_main.COMMANDS, "stats", interrupted)
    monkeypatch.chdir(tmp_path)
    assert mesynth_main(["stats"]) == 130
    assert capsys.readouterr().err == "mesynth: interrupted\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["X"]),
        (["a=1", "b=2"], ["a=1", "b=2", "X"]),
        (["--cfg", "job"], ["X", "--cfg", "job"]),
        (["a=1", "--cfg", "job"], ["a=1", "X", "--cfg", "job"]),
        (["--cfg", "job", "a=1"], ["--cfg", "job", "a=1", "X"]),
        (["-cn", "other", "--multirun", "a=1,2"], ["-cn", "other", "--multirun", "a=1,2", "X"]),
    ],
)
def test_added_overrides_join_the_users_own(args: list[str], expected: list[str]) -> None:
    assert with_overrides(args, ["X"]) == expected


def test_cfg_job_prints_the_config_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert mesynth_main(["templates", "--cfg", "job", "scheme=megc3"]) == 0
    assert "scheme: megc3" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
