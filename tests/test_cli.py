import subprocess
import sys

import pytest

from mesynth.cli.main import main as mesynth_main
from recognizer.cli import main as mer_main


@pytest.mark.parametrize("main", [mesynth_main, mer_main])
def test_help_lists_commands_and_groups(main, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "commands:" in out and "env" in out
    assert "config groups" in out and "paths" in out


@pytest.mark.parametrize("main", [mesynth_main, mer_main])
def test_unknown_command_lists_known_ones(main, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert "no-such-command" in err and "known commands" in err


@pytest.mark.parametrize("script", ["mesynth", "mer"])
def test_console_scripts_show_hydra_groups(script: str, tmp_path) -> None:
    exe = f"{sys.prefix}/bin/{script}"
    out = subprocess.run(
        [exe, "env", "--help"], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert "Configuration groups" in out and "paths: default" in out


def test_env_command_reports_backends(tmp_path) -> None:
    out = subprocess.run(
        [f"{sys.prefix}/bin/mesynth", "env", f"paths.root_dir={tmp_path}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "tvl1_optical_flow" in out and "torch" in out
    assert not (tmp_path / "outputs").exists()  # a report only: no run folder


def test_a_bad_value_is_one_line_and_nothing_is_written(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "store"
    base = [f"paths.root_dir={tmp_path}", f"out_dir={out}", "recipe.size=32", "progress=false"]
    assert mesynth_main(["generate", "jpeg_quality=500", *base]) == 2
    assert mesynth_main(["generate", "recipe.frames.num_frames=1", *base]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "mesynth: error: jpeg_quality must be in 0..100, got 500\n" in err
    assert "mesynth: error: recipe.frames.num_frames must be >= 2, got 1\n" in err
    assert not out.exists()


def test_bad_overrides_and_missing_releases_are_one_line(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mer_main(["prepare", "data=no_such_data", f"paths.root_dir={tmp_path}"]) == 2
    root = f"data.loader.root={tmp_path}/nowhere"
    assert mer_main(["prepare", "data=samm", root, f"paths.root_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "mer: error: In 'prepare': Could not find 'data/no_such_data'" in err
    assert f"mer: error: SAMM root not found: {tmp_path}/nowhere\n" in err


def test_missing_command_arguments_are_one_line(tmp_path, capsys) -> None:
    root = f"paths.root_dir={tmp_path}"
    assert mer_main(["evaluate", root]) == 2
    assert mer_main(["report", root]) == 2
    assert mer_main(["evaluate", f"run_dir={tmp_path}/no_run", root]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Error executing job" not in err
    assert "mer: error: mer evaluate needs run_dir=" in err
    assert "mer: error: mer report needs runs=" in err
    assert err.count("mer: error: ") == 3 and len(err.strip().splitlines()) == 3


def test_debug_shows_the_error_itself(tmp_path) -> None:
    from recognizer.datasets import ReleaseNotFoundError

    args = ["prepare", "data=samm", f"data.loader.root={tmp_path}/x", f"paths.root_dir={tmp_path}"]
    with pytest.raises(ReleaseNotFoundError, match="SAMM root not found"):
        mer_main([*args, "--debug"])
