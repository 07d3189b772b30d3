"""``mer predict``: a tiny final model on an MP4 written from a rendered synthetic clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mesynth.cli import main as mesynth_main
from recognizer.cli import main as mer_main
from recognizer.inference.prediction import spot_apex


def train_predict_run(root: Path) -> dict[str, Path]:
    """A rendered store (megc3, 30 fps, full rate, 64 px), its first clip as an MP4 (face
    padded into a 128 px frame, 2 still frames first) and a protocol=all run on the store,
    under ``root``."""
    store = root / "store"
    assert mesynth_main([
        "generate", "mesynth.plan.n_per_class=2", "recipe.size=64", "recipe.scheme=megc3",
        "recipe.frames.mode=full", "recipe.timing.fps=30", "recipe.motion.apex_iod=0.1",
        "recipe.device=cpu", "progress=false", f"out_dir={store}", f"paths.root_dir={root}",
    ]) == 0  # fmt: skip
    row = pd.read_csv(store / "manifest.csv", dtype=str).iloc[0]
    clip = np.load(store / row["npy_path"])
    frames = np.concatenate([clip[:1], clip[:1], clip])
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (128, 128))
    for frame in frames:
        canvas = np.full((128, 128, 3), 120, np.uint8)
        canvas[32:96, 32:96] = frame
        writer.write(canvas[:, :, ::-1])
    writer.release()
    run = root / "run"
    assert mer_main([
        "train", f"data.loader.root={store}", "data.scheme=megc3", "protocol=all",
        "representation.num_frames=4", "representation.size=16", "+model.widths=[4,4,4,4]",
        "trainer=debug", "trainer.progress=false", "trainer.lr=0.05", "trainer.epochs=1",
        f"out_dir={run}", f"paths.root_dir={root}",
    ]) == 0  # fmt: skip
    return {"root": root, "video": video, "run": run, "frames": len(frames),
            "apex": int(row["apex"]) + 2}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """:func:`train_predict_run` once for the module."""
    return train_predict_run(tmp_path_factory.mktemp("predict"))


def _predict(trained, out: Path, *extra: str) -> int:
    return mer_main(["predict", f"run_dir={trained['run']}", f"input={trained['video']}",
                     "landmark_backend=dlib", f"out_dir={out}",
                     f"paths.root_dir={trained['root']}", *extra])  # fmt: skip


def test_mer_predict_writes_one_row_of_class_probabilities(trained, tmp_path) -> None:
    assert _predict(trained, tmp_path / "out", "preview=true") == 0
    table = pd.read_csv(tmp_path / "out/predictions.csv")
    classes = ["negative", "positive", "surprise"]
    assert list(table.columns) == ["input", "onset", "apex", "offset", "fps", "apex_rule",
                                   *[f"p_{c}" for c in classes], "predicted"]  # fmt: skip
    row = table.iloc[0]
    assert row[[f"p_{c}" for c in classes]].sum() == pytest.approx(1.0, abs=1e-6)
    assert row["predicted"] in classes and row["apex_rule"] == "spotted"
    assert 0 == row["onset"] < row["apex"] <= row["offset"] < trained["frames"]
    preview = cv2.imread(str(tmp_path / "out/preview/clip.png"))
    assert preview is not None and preview.shape[1] == 4 * preview.shape[0]


def test_given_apex_in_seconds_is_the_same_frame_as_in_frames(trained, tmp_path) -> None:
    assert _predict(trained, tmp_path / "f", "apex=4") == 0
    assert _predict(trained, tmp_path / "s", "apex=0.1333s", "onset=0s") == 0
    frames, seconds = (pd.read_csv(tmp_path / d / "predictions.csv").iloc[0] for d in "fs")
    assert frames["apex"] == seconds["apex"] == 4 and frames["apex_rule"] == "given"
    assert frames["p_negative"] == pytest.approx(seconds["p_negative"])


def test_apex_in_seconds_counts_from_the_first_frame_of_a_frame_folder(trained, tmp_path) -> None:
    # the video's frames as img010.png, img011.png, ...; onset at frame 11, so seconds counted
    # from the onset (the old reading) would land one frame later than from the first frame
    folder = tmp_path / "frames"
    folder.mkdir()
    capture = cv2.VideoCapture(str(trained["video"]))
    number = 10
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"img{number:03d}.png"), frame)
        number += 1
    capture.release()
    args = ("onset=11", "fps=30", f"input={folder}")
    assert _predict(trained, tmp_path / "s", *args, "apex=0.1333s") == 0
    assert _predict(trained, tmp_path / "f", *args, "apex=14") == 0
    seconds, frames = (pd.read_csv(tmp_path / d / "predictions.csv").iloc[0] for d in "sf")
    assert seconds["onset"] == 11 and seconds["apex"] == frames["apex"] == 14
    assert seconds["p_negative"] == pytest.approx(frames["p_negative"])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not_a_video", "OpenCV cannot open"),
        ("blank", "no face"),
        ("short", "needs 4"),
        ("no_final", "final.pt not found"),
    ],
)
def test_bad_inputs_are_one_line_errors(trained, tmp_path, capsys, case, expected) -> None:
    args = []
    if case == "not_a_video":
        bad = tmp_path / "clip.mp4"
        bad.write_text("not a video")
        args = [f"input={bad}"]
    elif case == "blank":
        bad = tmp_path / "blank.mp4"
        writer = cv2.VideoWriter(str(bad), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 64))
        for _ in range(8):
            writer.write(np.full((64, 64, 3), 90, np.uint8))
        writer.release()
        args = [f"input={bad}"]
    elif case == "short":
        args = ["offset=2"]
    else:
        args = [f"run_dir={tmp_path}"]
    assert _predict(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mer: error:") and expected in err[0]


def test_spotting_finds_the_frame_of_largest_motion() -> None:
    yy, xx = np.mgrid[0:64, 0:64]
    shifts = [0, 1, 3, 5, 3, 1]  # a blob moving right and back: the peak is frame 13
    frames = np.stack([
        np.repeat((np.exp(-((xx - 32 - s) ** 2 + (yy - 32) ** 2) / 40.0) * 255)
                  .astype(np.uint8)[..., None], 3, axis=2) for s in shifts
    ])  # fmt: skip
    apex, magnitude = spot_apex(frames, range(10, 16))
    assert apex == 13 and magnitude[0] == 0 and magnitude[3] == magnitude.max()
