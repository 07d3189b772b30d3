"""``mer predict input=<manifest.csv>``: every row predicted, failures kept apart, resumable."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import recognizer.inference.manifest_input as predict_manifest
from mesynth.flow import apex_flow
from recognizer.cli import main as mer_main
from recognizer.inference.prediction import predict_clip
from recognizer.training.final_model import load_final_model
from tests.recognizer.test_predict import train_predict_run

CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny final model and video of ``test_predict.py``."""
    return train_predict_run(tmp_path_factory.mktemp("predict_manifest"))


@pytest.fixture(scope="module")
def clips(trained) -> dict[str, Path]:
    """A manifest folder: the fixture's video, the same frames as a PNG folder and as a .npy
    clip, a file that is no video, and their onset-apex flow image."""
    root = trained["root"] / "clips"
    (root / "frames").mkdir(parents=True)
    shutil.copy(trained["video"], root / "clip.mp4")
    capture, frames = cv2.VideoCapture(str(trained["video"])), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[:, :, ::-1])
    capture.release()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(root / "frames" / f"img{i:03d}.png"), frame[:, :, ::-1])
    np.save(root / "clip.npy", np.stack(frames))
    (root / "broken.mp4").write_text("not a video")
    flow = apex_flow(frames[0][32:96, 32:96], frames[trained["apex"]][32:96, 32:96], 28,
                     "farneback")  # fmt: skip
    cv2.imwrite(str(root / "flow.png"), flow[:, :, ::-1])
    return {"root": root, "frames": np.stack(frames)}


def _manifest(folder: Path, lines: list[str], name: str = "clips.csv") -> Path:
    path = folder / name
    path.write_text("subject,clip,path,onset,apex,offset,fps\n" + "\n".join(lines) + "\n")
    return path


def _three(clips, trained, name: str) -> Path:
    """Rows 2-4: the video (apex spotted), the frame folder (apex given), the broken file."""
    return _manifest(clips["root"], [
        "alice,v1,clip.mp4,,,,",
        f"bob,f1,frames,0,{trained['apex']},,30",
        "carol,x1,broken.mp4,,,,",
    ], f"{name}.csv")  # fmt: skip


def _predict(trained, manifest: Path, out: Path, *extra: str) -> int:
    return mer_main(["predict", f"run_dir={trained['run']}", f"input={manifest}",
                     "landmark_backend=dlib", "progress=false", f"out_dir={out}",
                     f"paths.root_dir={trained['root']}", *extra])  # fmt: skip


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The inputs :func:`predict_clip` is called on, in order."""
    calls: list[Path] = []
    real = predict_manifest.predict_clip

    def counting(final, path, **kwargs):
        calls.append(Path(path))
        return real(final, path, **kwargs)

    monkeypatch.setattr(predict_manifest, "predict_clip", counting)
    return calls


def test_every_row_is_predicted_in_order_and_a_failed_row_keeps_its_message(
    trained, clips, tmp_path, capsys
) -> None:
    manifest = _three(clips, trained, tmp_path.name)
    assert _predict(trained, manifest, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mer: error: 1 of 3 clips failed (see {tmp_path / 'out/predictions.csv'})"]
    table = pd.read_csv(tmp_path / "out/predictions.csv", dtype={"error": str})
    assert list(table.columns) == ["row", "subject", "clip", "input", "onset", "apex", "offset",
                                   "fps", "apex_rule", *[f"p_{c}" for c in CLASSES],
                                   "predicted", "error"]  # fmt: skip
    assert table["row"].tolist() == [2, 3, 4]
    assert table["subject"].tolist() == ["manifest/alice", "manifest/bob", "manifest/carol"]
    assert table["apex_rule"].tolist()[:2] == ["spotted", "given"]
    assert table.loc[1, "apex"] == trained["apex"] and table.loc[1, "fps"] == 30
    assert table.loc[:1, "error"].isna().all()
    assert "broken.mp4" in table.loc[2, "error"] and "OpenCV cannot open" in table.loc[2, "error"]
    assert table.loc[2, [f"p_{c}" for c in CLASSES]].isna().all()
    for i in (0, 1):
        assert table.loc[i, [f"p_{c}" for c in CLASSES]].sum() == pytest.approx(1.0, abs=1e-6)
    # a row predicts what the same clip predicts on its own
    alone = predict_clip(load_final_model(trained["run"]), clips["root"] / "clip.mp4",
                         landmark_backend="dlib")  # fmt: skip
    assert table.loc[0, "p_negative"] == pytest.approx(alone.probabilities[0], abs=1e-6)


def test_a_rerun_predicts_only_what_is_not_done(trained, clips, tmp_path, counted) -> None:
    manifest, out = _three(clips, trained, tmp_path.name), tmp_path / "out"
    assert _predict(trained, manifest, out) == 2
    assert [p.name for p in counted] == ["clip.mp4", "frames", "broken.mp4"]
    first = (out / "predictions.csv").read_text().splitlines()

    counted.clear()  # the same command: only the failed row is tried again
    assert _predict(trained, manifest, out) == 2
    assert [p.name for p in counted] == ["broken.mp4"]
    assert (out / "predictions.csv").read_text().splitlines()[:3] == first[:3]

    counted.clear()  # the broken row mended in the manifest, the frame row's apex moved
    text = manifest.read_text().replace("broken.mp4", "clip.npy")
    manifest.write_text(text.replace(f",0,{trained['apex']},", f",0,{trained['apex'] - 1},"))
    assert _predict(trained, manifest, out) == 0
    assert [p.name for p in counted] == ["frames", "clip.npy"]
    table = pd.read_csv(out / "predictions.csv", dtype={"error": str})
    assert table["error"].isna().all() and table["row"].tolist() == [2, 3, 4]
    assert table.loc[1, "apex"] == trained["apex"] - 1
    assert (out / "predictions.csv").read_text().splitlines()[1] == first[1]


def test_an_interrupted_run_resumes_after_the_last_clip_written(
    trained, clips, tmp_path, monkeypatch, capsys
) -> None:
    manifest, out = _three(clips, trained, tmp_path.name), tmp_path / "out"
    real, calls, stop = predict_manifest.predict_clip, [], ["frames"]

    def interrupted(final, path, **kwargs):
        calls.append(Path(path).name)
        if Path(path).name in stop:
            raise KeyboardInterrupt  # Ctrl-C while the second clip is predicted
        return real(final, path, **kwargs)

    monkeypatch.setattr(predict_manifest, "predict_clip", interrupted)
    assert _predict(trained, manifest, out) == 130
    assert "mer: interrupted; rerun the same command to resume" in capsys.readouterr().err
    assert pd.read_csv(out / "predictions.csv")["row"].tolist() == [2]
    calls.clear()
    stop.clear()
    assert _predict(trained, manifest, out) == 2
    assert calls == ["frames", "broken.mp4"]
    assert pd.read_csv(out / "predictions.csv")["row"].tolist() == [2, 3, 4]


def test_other_options_in_the_same_out_dir_are_refused_unless_overwritten(
    trained, clips, tmp_path, capsys
) -> None:
    manifest = clips["root"] / f"{tmp_path.name}.csv"
    manifest.write_text("subject,clip,label,path\nalice,v1,surprise,clip.mp4\n")
    out = tmp_path / "out"
    assert _predict(trained, manifest, out) == 0
    assert "predicted 1 of 1 clips (0 reused from an earlier run), 0 failed" in (
        capsys.readouterr().out
    )
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns[:5]) == ["row", "subject", "clip", "label", "input"]
    assert table.loc[0, "label"] == "surprise"
    assert _predict(trained, manifest, out, "crop_size=96") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs in: options.crop_size" in err[0]
    assert "overwrite=true" in err[0]
    assert _predict(trained, manifest, out, "crop_size=96", "overwrite=true") == 0
    assert "(0 reused" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("lines", "extra", "expected"),
    [
        (None, (), "not a manifest CSV"),
        ("absent", (), "manifest CSV not found"),
        (["alice,v1,missing.mp4,,,,"], (), "row 2: path not found"),
        (["alice,v1,clip.mp4,,,,", "bob,v2,clip.mp4,abc,,,"], (), "row 3: not a frame number"),
        (["../x,v1,clip.mp4,,,,"], (), "row 2: subject cell"),
        ([], (), "no clip rows"),
        (["alice,v1,clip.mp4,,,,"], ("apex=3",), "apex= applies to one clip"),
    ],
)
def test_bad_manifests_are_one_line_errors_before_anything_is_written(
    trained, clips, tmp_path, capsys, lines, extra, expected
) -> None:
    if lines == "absent":
        manifest = tmp_path / "clips.csv"
    elif lines is None:
        manifest = tmp_path / "clips.csv"
        manifest.write_text("subject,clip,video\nalice,v1,clip.mp4\n")
    else:
        manifest = _manifest(tmp_path, lines)
        shutil.copy(clips["root"] / "clip.mp4", tmp_path / "clip.mp4")
    assert _predict(trained, manifest, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mer: error:") and expected in err[0], err
    assert str(manifest) in err[0] or "apex=" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def flow_run(trained) -> Path:
    """A protocol=all STSTNet run on apex flow, on the fixture's store."""
    run = trained["root"] / "flow_run"
    assert mer_main([
        "train", f"data.loader.root={trained['root'] / 'store'}", "data.scheme=megc3",
        "protocol=all", "representation=apex_flow", "representation.method=farneback",
        "model=ststnet", "trainer=debug", "trainer.lr=0.001", "trainer.progress=false",
        f"out_dir={run}", f"paths.root_dir={trained['root']}",
    ]) == 0  # fmt: skip
    return run


def test_a_precomputed_flow_image_is_taken_as_is_by_an_apex_flow_run(
    trained, clips, flow_run, tmp_path
) -> None:
    manifest = _manifest(clips["root"], [
        "alice,flow,flow.png,,,,", "alice,a,clip.mp4,0,3,,", "alice,b,clip.mp4,0,6,,",
    ], "flows.csv")  # fmt: skip
    out = tmp_path / "out"
    assert mer_main(["predict", f"run_dir={flow_run}", f"input={manifest}",
                     "landmark_backend=dlib", "progress=false", f"out_dir={out}",
                     f"paths.root_dir={trained['root']}"]) == 0  # fmt: skip
    table = pd.read_csv(out / "predictions.csv")
    assert table["apex_rule"].tolist() == ["precomputed", "given", "given"]
    assert table.loc[0, ["onset", "apex", "offset", "fps"]].isna().all()
    final = load_final_model(flow_run)
    assert final.representation.input_scale == "unit"
    image = cv2.imread(str(clips["root"] / "flow.png"))[:, :, ::-1].astype(np.float32) / 255
    image = cv2.resize(image, (final.representation.size,) * 2, interpolation=cv2.INTER_AREA)
    mean, std = (np.asarray(v, np.float32) for v in (final.representation.mean,
                                                     final.representation.std))  # fmt: skip
    x = torch.from_numpy(((image - mean) / std).transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        expected = torch.softmax(final.model(x), dim=1)[0].numpy()
    assert table.loc[0, [f"p_{c}" for c in CLASSES]].to_numpy(float) == pytest.approx(
        expected, abs=1e-5
    )
    # one video at two windows: each row gets its own flow, as each window alone would
    for i, apex in ((1, 3), (2, 6)):
        alone = predict_clip(load_final_model(flow_run), clips["root"] / "clip.mp4", onset=0,
                             apex=apex, landmark_backend="dlib")  # fmt: skip
        assert table.loc[i, "p_negative"] == pytest.approx(alone.probabilities[0], abs=1e-6)


def test_a_key_frame_run_refuses_an_image_row_by_name(trained, clips, tmp_path) -> None:
    manifest = _manifest(clips["root"], ["alice,flow,flow.png,,,,"], "image.csv")
    assert _predict(trained, manifest, tmp_path / "out") == 2
    error = pd.read_csv(tmp_path / "out/predictions.csv").loc[0, "error"]
    assert "flow.png is one image" in error and "4 key frames" in error
