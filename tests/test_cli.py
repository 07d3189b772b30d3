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
    assert (tmp_path / "outputs" / "mesynth_env").is_dir()
