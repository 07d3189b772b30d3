"""Every bad input is one line, ``<prog>: error: ...`` naming the file, row or key, exit status
2, before anything is written: the working directory (a fresh folder per case) and the inputs
are left exactly as they were, and the output folder a case names is never made.

The cases run in process (``mesynth.cli.main`` / ``recognizer.cli.main``) on tiny inputs made
once per module, so the whole table takes about a minute on a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mesynth.cli.main import main as mesynth_main
from recognizer.cli import main as mer_main
from tests.recognizer.test_experiment_cli import STORE_HEADER

TOOLS: dict[str, Callable[[list[str]], int]] = {"mesynth": mesynth_main, "mer": mer_main}
LABELS = ("positive", "negative", "surprise")  # the megc3 scheme of data=manifest


def _manifest(folder: Path, rows: list[str], header: str = "subject,clip,label,path") -> None:
    folder.mkdir(parents=True)
    for s in range(3):
        for c in range(3):
            clip = np.full((8, 16, 16, 3), 40 * (s + c), np.uint8)
            np.save(folder / f"s{s}_{c}.npy", clip)
    (folder / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")


def _good_rows(subjects: int = 3) -> list[str]:
    return [
        f"s{s},c{c},{LABELS[c]},s{s}_{c}.npy" for s in range(subjects) for c in range(len(LABELS))
    ]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The malformed inputs of the table (and one good manifest the config cases use)."""
    root = tmp_path_factory.mktemp("inputs")
    _manifest(root / "good", _good_rows())
    _manifest(root / "one_subject", _good_rows(1))
    _manifest(root / "header_only", [])
    onset = "subject,clip,label,path,onset,offset"
    _manifest(root / "all_skipped", [f"{r},5,2" for r in _good_rows()], header=onset)
    _manifest(root / "blank_subject", [",c0,positive,s0_0.npy", *_good_rows()[1:]])
    _manifest(root / "traversal", ["../../../tmp/x,c0,positive,s0_0.npy", *_good_rows()[1:]])
    dataset = "subject,clip,label,path,dataset"
    _manifest(root / "dot_dataset", [f"{r},.." for r in _good_rows()], header=dataset)
    _manifest(root / "no_path_column", ["s0,c0,positive"], header="subject,clip,label")
    _manifest(root / "other_qualifier", ["samm/006,c0,positive,s0_0.npy,casme2"], header=dataset)
    _manifest(root / "corrupt_image", [*_good_rows(), "s0,c9,positive,broken.png"])
    (root / "corrupt_image" / "broken.png").write_bytes(b"not a png at all")
    (root / "a_file").write_text("I am a file, not a folder\n")
    (root / "faces_empty").mkdir()
    (root / "faces_corrupt").mkdir()
    (root / "faces_corrupt" / "face.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "faces_none").mkdir()
    cv2.imwrite(str(root / "faces_none" / "grey.png"), np.full((64, 64, 3), 128, np.uint8))
    (root / "store_empty").mkdir()
    (root / "store_empty" / "manifest.csv").write_text(STORE_HEADER + "\n")
    (root / "no_results").mkdir()
    (root / "annotations.csv").write_text("subject,emotion\ns1,happiness\n")  # no `aus` column
    return root


TRAIN = [
    "train",
    "data=manifest",
    "data.loader.root={inp}/good",
    "trainer=debug",
    "trainer.progress=false",
    "representation.size=16",
    "representation.num_frames=4",
    "+model.widths=[4,4,4,4]",
    "out_dir={out}",
]
GENERATE = [
    "generate",
    "out_dir={out}",
    "recipe.size=32",
    "recipe.device=cpu",
    "mesynth.plan.n_per_class=1",
    "progress=false",
]
ROOT = "data.loader.root={inp}"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")


def _dlib() -> bool:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False
    return True


NEEDS_DLIB = pytest.mark.skipif(not _dlib(), reason="needs the dlib landmark backend")

# (id, tool, arguments, what the message must name); {inp}: the inputs, {out}: an output folder
# that must not appear
CASES = [
    # -- manifests (mer train)
    ("manifest header only", "mer", [*TRAIN, f"{ROOT}/header_only"], "csv: it has no data row"),
    (
        "every row skipped",
        "mer",
        [*TRAIN, f"{ROOT}/all_skipped"],
        "all_skipped/manifest.csv: all 9 rows were skipped (onset 5..offset 2",
    ),
    ("blank subject", "mer", [*TRAIN, f"{ROOT}/blank_subject"], "row 2: subject cell blank"),
    ("subject ../", "mer", [*TRAIN, f"{ROOT}/traversal"], "row 2: subject cell '../../../tmp/x'"),
    ("dataset cell ..", "mer", [*TRAIN, f"{ROOT}/dot_dataset"], "row 2: dataset cell '..'"),
    ("no path column", "mer", [*TRAIN, f"{ROOT}/no_path_column"], "path"),
    ("other qualifier", "mer", [*TRAIN, f"{ROOT}/other_qualifier"], "row 2: subject 'samm/006'"),
    ("manifest missing", "mer", [*TRAIN, f"{ROOT}/nowhere/manifest.csv"], "nowhere"),
    # -- stores
    ("store missing", "mer", [*TRAIN, "data=mesynth", f"{ROOT}/no_store"], "no_store"),
    ("store without clips", "mer", [*TRAIN, "data=mesynth", f"{ROOT}/store_empty"], "no usable"),
    ("stats: store missing", "mesynth", ["stats", "store={inp}/no_store"], "no_store"),
    ("stats: no clips", "mesynth", ["stats", "store={inp}/store_empty"], "lists no clips"),
    ("preview: store missing", "mesynth", ["preview", "store={inp}/no_store"], "no_store"),
    # -- protocols
    ("kfold, one subject", "mer", [*TRAIN, f"{ROOT}/one_subject", "protocol=kfold"], "kfold"),
    ("loso, one subject", "mer", [*TRAIN, f"{ROOT}/one_subject"], "protocol=loso"),
    ("n_splits > subjects", "mer", [*TRAIN, "protocol=kfold", "protocol.n_splits=50"], "50 folds"),
    ("unknown protocol", "mer", [*TRAIN, "protocol=nosuch"], "protocol/nosuch"),
    # -- trainer settings
    ("lr not a number", "mer", [*TRAIN, "trainer.lr=abc"], "trainer.lr must be a number"),
    ("lr negative", "mer", [*TRAIN, "trainer.lr=-1"], "trainer.lr must be > 0"),
    ("lr zero", "mer", [*TRAIN, "trainer.lr=0"], "trainer.lr must be > 0"),
    ("lr nan", "mer", [*TRAIN, "trainer.lr=nan"], "trainer.lr must be a finite number"),
    (
        "ststnet without lr",
        "mer",
        [*TRAIN[:5], "model=ststnet", "representation=apex_flow", "out_dir={out}"],
        "trainer.lr=",
    ),
    ("momentum < 0", "mer", [*TRAIN, "trainer.momentum=-0.5"], "trainer.momentum"),
    ("epochs 0", "mer", [*TRAIN, "trainer.epochs=0"], "epochs must be >= 1"),
    ("batch size 0", "mer", [*TRAIN, "trainer.batch_size=0"], "batch_size must be >= 1"),
    ("unknown optimizer", "mer", [*TRAIN, "trainer.optimizer=rmsprop"], "rmsprop"),
    ("unknown scheduler", "mer", [*TRAIN, "trainer.scheduler=bogus"], "bogus"),
    ("patience without best_val", "mer", [*TRAIN, "trainer.patience=3"], "patience=3"),
    ("unknown data path", "mer", [*TRAIN, "trainer.data_path=disk"], "data_path"),
    pytest.param(
        "cuda without CUDA",
        "mer",
        [*TRAIN, "trainer.device=cuda"],
        "trainer.device=cuda",
        marks=NO_CUDA,
    ),
    ("no such device", "mer", [*TRAIN, "trainer.device=tpu9"], "trainer.device=tpu9"),
    ("lr abc, default out_dir", "mer", [*TRAIN[:-1], "trainer.lr=abc"], "trainer.lr"),
    # -- models, representations, remedies, configs
    ("cb beta 2", "mer", [*TRAIN, "remedy=cb", "remedy.beta=2"], "remedy=cb: beta"),
    ("focal gamma < 0", "mer", [*TRAIN, "remedy=focal", "remedy.gamma=-1"], "remedy=focal: gamma"),
    ("focal gamma abc", "mer", [*TRAIN, "remedy=focal", "remedy.gamma=abc"], "'gamma': 'abc'"),
    ("remedy key unknown", "mer", [*TRAIN, "remedy=resample", "+remedy.sampler=x"], "sampler"),
    ("dropout 2", "mer", [*TRAIN, "+model.dropout=2"], "model=r3d18: dropout"),
    ("num_frames 0", "mer", [*TRAIN, "representation.num_frames=0"], "num_frames"),
    ("size abc", "mer", [*TRAIN, "representation.size=abc"], "'size': 'abc'"),
    ("unknown model", "mer", [*TRAIN, "model=nosuch"], "model/nosuch"),
    ("unknown remedy", "mer", [*TRAIN, "remedy=nosuch"], "remedy/nosuch"),
    ("unknown key", "mer", [*TRAIN, "trainer.no_such_key=1"], "no_such_key"),
    ("unknown data", "mer", ["prepare", "data=nosuch"], "data/nosuch"),
    ("release missing", "mer", ["prepare", "data=samm", f"{ROOT}/no_samm"], "no_samm"),
    # -- media read up front
    (
        "corrupt image, memory path",
        "mer",
        [*TRAIN, f"{ROOT}/corrupt_image", "trainer.data_path=memory"],
        "broken.png",
    ),
    # -- output folders
    ("out_dir is a file", "mer", [*TRAIN[:-1], "out_dir={inp}/a_file"], "a_file"),
    ("out_dir under a file", "mer", [*TRAIN[:-1], "out_dir={inp}/a_file/run"], "a_file"),
    # an unwritable out_dir: test_an_out_dir_that_cannot_be_written_is_named (below; faked,
    # as root may write anywhere)
    # -- other mer commands
    ("report of no run", "mer", ["report", "runs=[{inp}/no_results]", "out_dir={out}"], "results"),
    ("report without runs", "mer", ["report", "out_dir={out}"], "runs="),
    ("evaluate without run_dir", "mer", ["evaluate", "out_dir={out}"], "run_dir="),
    # -- generation: plans, classes, faces, recipes
    ("plan of 0 clips", "mesynth", [*GENERATE, "mesynth.plan.n_per_class=0"], "0 clips"),
    ("plan of -1 clips", "mesynth", [*GENERATE, "mesynth.plan.n_per_class=-1"], "n_per_class"),
    ("class without templates", "mesynth", [*GENERATE, "mesynth.plan.classes=[joyful]"], "joyful"),
    ("no classes", "mesynth", [*GENERATE, "mesynth.plan.classes=[]"], "classes"),
    (
        "faces: empty folder",
        "mesynth",
        [*GENERATE, "recipe.identities.source={inp}/faces_empty"],
        "faces_empty': no image file",
    ),
    (
        "faces: corrupt jpeg",
        "mesynth",
        [*GENERATE, "recipe.identities.source={inp}/faces_corrupt"],
        "face.jpg",
    ),
    pytest.param(
        "faces: no face",
        "mesynth",
        [
            *GENERATE,
            "recipe.identities.source={inp}/faces_none",
            "recipe.identities.landmark_backend=dlib",
        ],
        "grey.png",
        marks=NEEDS_DLIB,
    ),
    (
        "faces: missing folder",
        "mesynth",
        [*GENERATE, "recipe.identities.source={inp}/no_faces"],
        "no_faces",
    ),
    ("jpeg quality 500", "mesynth", [*GENERATE, "jpeg_quality=500"], "jpeg_quality"),
    ("one frame", "mesynth", [*GENERATE, "recipe.frames.num_frames=1"], "num_frames"),
    ("unknown format", "mesynth", [*GENERATE, "format=[gif]"], "gif"),
    ("unknown scheme", "mesynth", [*GENERATE, "recipe.scheme=nosuch"], "nosuch"),
    ("unknown effects", "mesynth", [*GENERATE, "recipe/effects=nosuch"], "recipe/effects/nosuch"),
    # -- templates
    ("templates: unknown scheme", "mesynth", ["templates", "scheme=nosuch"], "nosuch"),
    ("templates: unknown table", "mesynth", ["templates", "sources=[no_table]"], "no_table"),
    (
        "templates: table missing",
        "mesynth",
        ["templates", "mined.table={inp}/no_table.csv"],
        "no_table.csv",
    ),
    (
        "templates: table lacks aus",
        "mesynth",
        ["templates", "mined.table={inp}/annotations.csv"],
        "aus",
    ),
]


def _tree(*roots: Path) -> dict[str, float]:
    """Every path under ``roots`` with its modification time (folders included)."""
    return {str(p): p.stat().st_mtime for root in roots for p in sorted(root.rglob("*"))}


def _param(case: object) -> object:
    """A case as a pytest parameter whose id is its name."""
    if hasattr(case, "marks"):  # already a pytest.param (a NamedTuple too)
        return pytest.param(*case.values[1:], id=case.values[0], marks=case.marks)
    return pytest.param(*case[1:], id=case[0])


@pytest.mark.parametrize(("tool", "args", "culprit"), [_param(c) for c in CASES])
def test_a_bad_input_is_one_line_before_anything_is_written(
    tool: str,
    args: list[str],
    culprit: str,
    inputs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work, cache, out = tmp_path / "work", tmp_path / "cache", tmp_path / "out"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in ("MESYNTH_ROOT", "MESYNTH_DATA", "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MESYNTH_CACHE", str(cache))
    before = _tree(tmp_path, inputs)
    argv = [a.format(inp=inputs, out=out) for a in args]
    assert TOOLS[tool](argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert [line for line in lines if "error" in line.lower()] == [lines[-1]], err
    assert lines[-1].startswith(f"{tool}: error: ")
    assert culprit in lines[-1]
    assert _tree(tmp_path, inputs) == before  # nothing written, not even the output folder


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40


def test_generate_given_out_dir_writes_only_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No ``outputs/`` (Hydra's run folder) and no ``.cache/`` where the command starts; face
    landmarks go to the user's cache (``$XDG_CACHE_HOME/mesynth``)."""
    work, store, xdg = tmp_path / "work", tmp_path / "store", tmp_path / "xdg"
    work.mkdir()
    monkeypatch.chdir(work)
    for key in ("MESYNTH_ROOT", "MESYNTH_CACHE", "MESYNTH_DATA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    argv = [a.format(out=store) for a in GENERATE]
    assert mesynth_main([*argv, "recipe.frames.num_frames=2"]) == 0
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "work", "xdg"]
    assert (store / "manifest.csv").is_file()
    assert set(xdg.iterdir()) <= {xdg / "mesynth"}


def test_train_without_out_dir_makes_its_folder_only_when_it_writes(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A run given no ``out_dir`` writes into ``outputs/mer_train/<time>/``, and only there (no
    ``.hydra/`` copy or log file of Hydra's)."""
    monkeypatch.chdir(tmp_path)
    for key in ("MESYNTH_ROOT", "MESYNTH_CACHE", "MESYNTH_DATA"):
        monkeypatch.delenv(key, raising=False)
    argv = [a.format(inp=inputs) for a in TRAIN[:-1]]
    assert mer_main(argv) == 0
    runs = list((tmp_path / "outputs" / "mer_train").iterdir())
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"] and len(runs) == 1
    assert (runs[0] / "results.json").is_file() and not (runs[0] / ".hydra").exists()
    out = capsys.readouterr().out  # the folder that resumes the run is named
    assert f"out_dir=./{runs[0].relative_to(tmp_path)} resumes it" in out


def test_demo_help_is_whole_sentences(capsys: pytest.CaptureFixture[str]) -> None:
    from recognizer.studies.demo import main as demo_main

    with pytest.raises(SystemExit) as done:
        demo_main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    description = " ".join(out.split("\n\n")[1].split())
    assert description.endswith("``demo_out/report.md``.")


def test_an_out_dir_that_cannot_be_written_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(The table's case is skipped for root, who may write anywhere.)"""
    from recognizer.experiments import run_checks as validation

    monkeypatch.setattr(validation.os, "access", lambda path, mode: False)
    with pytest.raises(validation.RunInputError, match=f"folder {tmp_path} is not writable"):
        validation.check_out_dir(tmp_path / "run")
