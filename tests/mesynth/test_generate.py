import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf

from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.face.identities import Identity
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import (
    clip_displacements,
    generate,
    render_clips,
    sample_clip_parameters,
)
from mesynth.generation.store import StoreConfigError, read_manifest_rows
from mesynth.labels.au import parse_aus
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.render.effects import EffectsConfig
from mesynth.render.warp import FaceWarper, WarpRequest, to_uint8
from mesynth.templates.bank import TemplateBank

SIZE = 32
CLASSES = ["happiness", "surprise", "disgust"]
REALISM = EffectsConfig(
    head_motion=True, blinks=True, blink_probability=0.5, noise=True, flicker=True, jpeg=True
)


def _face(name: str, seed: int) -> Identity:
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32), (0, 0), 1)
    image = np.clip(texture * 2 - 128, 0, 255).astype(np.uint8)
    return Identity(name, image, canonical_landmarks(SIZE), f"test:{name}")


@pytest.fixture(scope="module")
def parts():
    return {
        "identities": [_face("anna", 1), _face("ben", 2)],
        "bank": TemplateBank.expert("dfme7"),
        "motion": MotionModel.expert(apex_iod=0.05),
        "timing_sampler": TimingSampler(fps=60),
        "plan": equal(2, CLASSES, seed=11),
    }


def _run(parts, out: Path, **kw):
    options = {
        "num_frames": 5,
        "formats": ("frames", "npy"),
        "effects": REALISM,
        "device": "cpu",
        "progress": False,
    } | kw
    return generate(out_dir=out, **parts, **options)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "meta.json" and not p.name.endswith(".done")
    }


@pytest.fixture(scope="module")
def reference(parts, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    summary = _run(parts, out, batch_size=4)
    return out, summary


def test_manifest_rows_describe_the_clips(reference, parts) -> None:
    out, summary = reference
    assert summary.written == 6 and summary.already_done == 0
    rows = read_manifest_rows(out / "manifest.csv")
    assert [r["label"] for r in rows] == CLASSES * 2
    for row in rows:
        assert row["emotion"] == row["label"] and row["identity"] in ("anna", "ben")
        assert int(row["n_frames"]) == int(row["offset"]) + 1 and row["onset"] == "0"
        numbers = [int(n) for n in row["frame_numbers"].split(";")]
        assert len(numbers) == 5 and numbers[0] == 0 and numbers[-1] == int(row["offset"])
        clip = np.load(out / row["npy_path"])
        assert clip.shape == (5, SIZE, SIZE, 3) and clip.dtype == np.uint8
        names = sorted(p.name for p in (out / row["frames_dir"]).iterdir())
        assert names == sorted(f"img{n}.jpg" for n in numbers)
        combo = parse_aus(row["aus"])
        assert not combo.unknown_tokens and combo.codes
        assert row["template_source"].startswith("expert:")


def test_batch_size_does_not_change_a_byte(reference, parts, tmp_path) -> None:
    out, _ = reference
    _run(parts, tmp_path, batch_size=1)
    assert _files(tmp_path) == _files(out)


def test_batch_size_does_not_change_a_byte_without_effects(parts, tmp_path) -> None:
    # no brightness effect: a batch's clips are rounded together, in one pass
    for batch_size in (4, 1):
        _run(parts, tmp_path / str(batch_size), batch_size=batch_size, effects=EffectsConfig())
    assert _files(tmp_path / "1") == _files(tmp_path / "4")


def test_kill_and_resume_equals_an_uninterrupted_run(reference, parts, tmp_path) -> None:
    out, _ = reference
    done = []

    def killed_after_three(params) -> None:
        done.append(params.clip_id)
        if len(done) == 3:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        _run(parts, tmp_path, batch_size=2, on_clip=killed_after_three)
    assert len(read_manifest_rows(tmp_path / "manifest.csv")) == 3
    # a half-written clip as a real kill would leave it
    (tmp_path / "clips/.tmp-000003").mkdir()
    (tmp_path / "clips/.tmp-000003/img0.jpg").write_bytes(b"half")
    summary = _run(parts, tmp_path, batch_size=4)
    assert summary.already_done == 3 and summary.written == 3
    assert _files(tmp_path) == _files(out)


def test_shards_merge_into_the_same_dataset(reference, parts, tmp_path) -> None:
    out, _ = reference
    first = _run(parts, tmp_path, rank=1, world_size=2)
    assert first.planned == 3 and first.manifest is None
    second = _run(parts, tmp_path, rank=0, world_size=2, batch_size=1)
    assert second.manifest == tmp_path / "manifest.csv"
    merged = {k: v for k, v in _files(tmp_path).items() if not k.startswith("manifest.rank")}
    assert merged == _files(out)


def test_another_configuration_is_refused(reference, parts) -> None:
    out, _ = reference
    with pytest.raises(StoreConfigError, match="plan"):
        _run(parts | {"plan": equal(3, CLASSES, seed=11)}, out)
    with pytest.raises(StoreConfigError, match="realism"):
        _run(parts, out, effects=EffectsConfig())


def test_the_refusal_names_only_the_keys_that_differ(reference, parts) -> None:
    out, _ = reference
    with pytest.raises(StoreConfigError) as info:
        _run(parts | {"plan": equal(3, CLASSES, seed=11)}, out)
    assert "differing keys: plan)" in str(info.value)


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ({"num_frames": 1}, "num_frames"),
        ({"sampling": "bogus"}, "sampling"),
        ({"inverse_iterations": -1}, "inverse_iterations"),
        ({"batch_size": 0}, "batch_size"),
        ({"jpeg_quality": 500}, "jpeg_quality"),
        ({"formats": ("gif",)}, "formats"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    parts, tmp_path, option, named
) -> None:
    out = tmp_path / "store"
    with pytest.raises(ValueError, match=named):
        _run(parts, out, **option)
    assert not out.exists()


def test_keyframes_are_the_full_rate_frames_at_their_numbers(parts, tmp_path) -> None:
    realism = EffectsConfig(head_motion=True, noise=True, flicker=True)
    one = parts | {"plan": equal(1, ["surprise"], seed=3)}
    _run(one, tmp_path / "key", effects=realism)
    _run(one, tmp_path / "full", effects=realism, mode="full")
    key = read_manifest_rows(tmp_path / "key/manifest.csv")[0]
    full = read_manifest_rows(tmp_path / "full/manifest.csv")[0]
    assert key["aus"] == full["aus"] and key["n_frames"] == full["n_frames"]
    assert full["frame_numbers"] == ";".join(map(str, range(int(full["n_frames"]))))
    numbers = [int(n) for n in key["frame_numbers"].split(";")]
    key_clip = np.load(tmp_path / "key" / key["npy_path"])
    full_clip = np.load(tmp_path / "full" / full["npy_path"])
    assert np.abs(key_clip.astype(int) - full_clip[numbers]).max() <= 1


def test_onset_frame_is_the_prefiltered_aligned_face_and_apex_moves(parts) -> None:
    identities = {f.name: f for f in parts["identities"]}
    warper = FaceWarper("cpu")
    for face in parts["identities"]:
        warper.add_identity(face.name, face.image, face.landmarks)
    planned = equal(1, ["happiness"], seed=5).clips()[0]
    params = sample_clip_parameters(
        planned,
        bank=parts["bank"],
        identity_names=list(identities),
        timing_sampler=parts["timing_sampler"],
        realism=EffectsConfig(),
        mode="onset_apex",
    )
    face = identities[params.identity]
    disp = clip_displacements(params, parts["motion"], face.landmarks)
    # displacement = IOD * sum_k intensity_k * curve[t, k] * basis_k, computed here by hand
    basis = parts["motion"].au_basis(params.instance.aus)
    curve = params.timing.intensity(params.frame_numbers.astype(float))
    iod = inter_ocular_distance(face.landmarks)
    expected = np.zeros((2, 68, 2))
    for k, au in enumerate(params.instance.aus):
        expected += au.intensity * curve[:, k, None, None] * basis[k] * iod
    np.testing.assert_allclose(disp, expected, atol=1e-12)
    onset, apex = render_clips([params], identities, parts["motion"], warper)[0]
    # every frame samples the pre-filtered face: the onset is that source at the pixel centres
    unmoved = warper.render([WarpRequest.from_displacements(face.name, np.zeros((1, 68, 2)))])
    assert np.array_equal(onset, to_uint8(unmoved[0][0]))
    assert np.abs(onset.astype(int) - face.image).mean() < 8
    assert np.abs(apex.astype(int) - onset).max() > 0


def test_plan_classes_must_exist_in_the_bank(parts, tmp_path) -> None:
    with pytest.raises(ValueError, match="no templates"):
        _run(parts | {"plan": equal(1, ["boredom"])}, tmp_path)


GROUPS = ["mesynth/plan", "recipe/effects"]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mesynth.cli.app import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="generate", overrides=overrides)


def _assert_built_from(obj: object, settings: dict) -> None:
    """``obj`` is what ``settings`` (a resolved config node) asks for, with its values."""
    from hydra.utils import get_object

    target = get_object(settings["_target_"])
    values = {k: v for k, v in settings.items() if not k.startswith("_")}
    if settings.get("_partial_", False):
        assert isinstance(obj, functools.partial) and obj.func == target
        built = obj.keywords
    else:
        assert isinstance(obj, target)
        built = {key: getattr(obj, key) for key in values}
    assert set(built) == set(values)
    for key, value in values.items():
        if isinstance(value, dict) and "_target_" in value:
            _assert_built_from(built[key], value)
        elif isinstance(value, list):
            assert list(built[key]) == value, key
        else:
            assert built[key] == value, key


@pytest.mark.parametrize(
    "override",
    [
        f"{group}={p.stem}"
        for group in GROUPS
        for p in sorted((Path(__file__).parents[2] / "mesynth" / "configs" / group).glob("*.yaml"))
    ],
)
def test_every_generate_group_option_composes_and_instantiates(override) -> None:
    from hydra.utils import instantiate

    cfg = _compose([override, "paths.root_dir=/tmp"])
    node = OmegaConf.select(cfg, override.split("=")[0].replace("/", "."))
    _assert_built_from(
        instantiate(node, _convert_="all"), OmegaConf.to_container(node, resolve=True)
    )


def test_cli_generate_preview_and_stats(tmp_path, capsys) -> None:
    from mesynth.cli.main import main

    store = tmp_path / "store"
    common = [f"paths.root_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run"]
    args = ["recipe.size=48", "recipe.frames.num_frames=4", "mesynth.plan.n_per_class=1"]
    args += ["progress=false", f"out_dir={store}", "format=[frames]", "recipe/effects=full"]
    assert main(["generate", *args, *common]) == 0
    out = capsys.readouterr().out
    assert "2 identities loaded" in out and "7 written" in out
    rows = read_manifest_rows(store / "manifest.csv")
    assert sorted(r["label"] for r in rows) == sorted(TemplateBank.expert("dfme7").emotions)
    # rerun: everything is already there
    assert main(["generate", *args, *common]) == 0
    assert "0 written, 7 already there" in capsys.readouterr().out

    assert main(["preview", f"store={store}", "clips=[000000,000003]", *common]) == 0
    sheet = store / "preview" / "contact_sheet.png"
    image = cv2.imread(str(sheet))
    assert image.shape[0] > 100 and image.std() > 10  # a sheet with content, not a blank
    for figure in ("sharpness.png", "motion_outside_face.png"):
        assert cv2.imread(str(store / "preview" / figure)).std() > 10
    import imageio.v3 as iio

    gif = iio.imread(store / "preview" / f"000003_{rows[3]['label']}.gif", index=None)
    assert gif.shape[0] == 4 and gif.shape[1:3] == (48, 48)

    assert main(["stats", f"store={store}", *common]) == 0
    out = capsys.readouterr().out
    assert "happiness" in out and "duration_ms" in out
    assert "AU frequencies (% of each class's clips)" in out
    happiness = next(
        line for line in out.split("AU frequencies")[1].splitlines() if "happiness" in line
    )
    aus = [set(r["aus"].split("+")) for r in rows if r["label"] == "happiness"]
    assert "100" in happiness.split() and all(any("12" in a for a in au) for au in aus)
    histogram = cv2.imread(str(store / "stats" / "class_histogram.png"))
    assert histogram.shape == (352, 693, 3)  # 7 classes x 0.9 in wide, 3.2 in high, 110 dpi
    tab_blue = np.abs(histogram.astype(int) - [180, 119, 31]).sum(-1) < 10  # BGR bars
    assert tab_blue.sum() > 500
    timing = cv2.imread(str(store / "stats" / "timing_intensity.png"))
    assert timing.shape == (352, 1210, 3)


def test_preview_of_an_unknown_clip_names_it(reference) -> None:
    from mesynth.evaluation.preview import preview_store
    from mesynth.generation.store import StoreError

    out, _ = reference
    with pytest.raises(StoreError, match="no clip 999999"):
        preview_store(out, ["999999"])
