"""A built wheel, installed outside the repository, gives working commands.

The Hydra configs and the data files (canonical face, AU basis, expert tables) ship inside the
wheel as package data; nothing may be read from the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """``pip wheel`` the project, ``pip install --no-deps`` it into a fresh target folder."""
    base = tmp_path_factory.mktemp("wheel")
    wheels, target = base / "wheels", base / "target"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in {"MESYNTH_CONFIG_DIR", "PYTHONPATH"}}
    env["PYTHONPATH"] = str(target)
    return wheel, {**env, "TARGET": str(target)}


def test_wheel_holds_configs_and_data_files(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (
        "mesynth/configs/train.yaml",
        "mesynth/configs/generate.yaml",
        "mesynth/configs/model/ststnet.yaml",
        "mesynth/configs/hydra/default.yaml",
        "mesynth/face/data/canonical_face68.csv",
        "mesynth/motion/data/au_motion.yaml",
        "mesynth/templates/data/expert/dfme_table4.yaml",
    ):
        assert path in names, f"{path} missing from {wheel.name}"


ENTRY = {"mesynth": "mesynth.cli", "mer": "recognizer.cli"}


def _run(env: dict[str, str], cwd: Path, command: str, *args: str) -> subprocess.CompletedProcess:
    """Run a console script the way its entry point does (``<module>:main``), in ``cwd``."""
    code = f"from {ENTRY[command]} import main; raise SystemExit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=300,
    )  # fmt: skip


def test_installed_commands_run_outside_the_repository(installed, tmp_path):
    _, env = installed
    target = Path(env["TARGET"])
    where = subprocess.run(
        [sys.executable, "-c", "import mesynth, recognizer; print(mesynth.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    ).stdout  # fmt: skip
    assert Path(where.strip()).is_relative_to(target), where
    helped = _run(env, tmp_path, "mesynth", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "generate" in helped.stdout and "config groups" in helped.stdout
    job = _run(env, tmp_path, "mer", "train", "--cfg", "job", "model=ststnet",
               "representation=apex_flow", "data=manifest")  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert "name: ststnet" in job.stdout and "ApexFlow" in job.stdout


def test_config_dir_override_is_honoured_and_named_when_missing(installed, tmp_path):
    _, env = installed
    missing = tmp_path / "no_configs"
    out = _run({**env, "MESYNTH_CONFIG_DIR": str(missing)}, tmp_path, "mesynth", "--help")
    assert out.returncode != 0
    assert str(missing) in out.stderr and "MESYNTH_CONFIG_DIR" in out.stderr
