import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
from PIL import Image

from mesynth.face.canonical import align_to_canonical, canonical_landmarks, inter_ocular_distance
from mesynth.face.landmarks import (
    ImplausibleLandmarksError,
    LandmarkCache,
    LandmarkError,
    NoFaceError,
    check_plausible,
    create_detector,
    detect_landmarks,
    load_landmark_file,
    save_pts,
)


def _portraits() -> dict[str, np.ndarray]:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = np.asarray(Image.open(f).convert("RGB"))
    return {"astronaut": skimage.data.astronaut(), "hopper": hopper}


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_dlib_finds_68_points_on_builtin_portraits(dlib_detector, name: str) -> None:
    image = _portraits()[name]
    points = detect_landmarks(image, dlib_detector, source=name)
    assert points.shape == (68, 2)
    iod = inter_ocular_distance(points)
    assert 30 < iod < 0.6 * image.shape[1]
    # aligned to the canonical face, the stable points land close to the template
    aligned = align_to_canonical(image, points, 224)
    err = np.linalg.norm(aligned.landmarks - canonical_landmarks(224), axis=1)
    assert np.median(err) / inter_ocular_distance(canonical_landmarks(224)) < 0.15


def test_tight_crop_falls_back_to_whole_image(dlib_detector) -> None:
    image = _portraits()["astronaut"]
    full = detect_landmarks(image, dlib_detector)
    left, top = np.floor(full.min(0)).astype(int)
    right, bottom = np.ceil(full.max(0)).astype(int)
    crop = np.ascontiguousarray(image[top:bottom, left:right])
    points = detect_landmarks(crop, dlib_detector, source="crop")
    assert points.shape == (68, 2)


def test_blank_image_without_fallback_has_no_face(dlib_detector) -> None:
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(NoFaceError, match="blank.png"):
        detect_landmarks(blank, dlib_detector, whole_image_fallback=False, source="blank.png")


def test_plausibility_rejects_mirrored_and_tiny_faces() -> None:
    points = canonical_landmarks(224)
    check_plausible(points, (224, 224), "ok")
    flipped = points.copy()
    flipped[:, 0] = 224 - flipped[:, 0]
    with pytest.raises(ImplausibleLandmarksError, match="wrong order"):
        check_plausible(flipped, (224, 224), "flipped")
    with pytest.raises(ImplausibleLandmarksError, match="too small"):
        check_plausible(points * 0.05, (224, 224), "tiny")


def test_landmark_files_round_trip(tmp_path) -> None:
    points = canonical_landmarks(128)
    save_pts(tmp_path / "a.pts", points)
    np.testing.assert_allclose(load_landmark_file(tmp_path / "a.pts"), points, atol=1e-4)
    # .pts is 1-based: its first coordinate is one more than the 0-based index
    first = (tmp_path / "a.pts").read_text().splitlines()[3].split()
    assert float(first[0]) == pytest.approx(points[0, 0] + 0.5, abs=1e-4)
    np.save(tmp_path / "b.npy", points - 0.5)
    np.testing.assert_allclose(load_landmark_file(tmp_path / "b.npy"), points)
    (tmp_path / "c.json").write_text('{"landmarks": ' + str((points - 0.5).tolist()) + "}")
    np.testing.assert_allclose(load_landmark_file(tmp_path / "c.json"), points)


def test_malformed_landmark_files_name_the_file(tmp_path) -> None:
    with pytest.raises(LandmarkError, match="missing.pts: landmark file not found"):
        load_landmark_file(tmp_path / "missing.pts")
    (tmp_path / "bad.pts").write_text("version: 1\nn_points: 2\n{\n1 2\n3\n}\n")
    with pytest.raises(LandmarkError, match="bad.pts, line 5"):
        load_landmark_file(tmp_path / "bad.pts")
    np.save(tmp_path / "short.npy", np.zeros((5, 2)))
    with pytest.raises(LandmarkError, match="short.npy: expected 68"):
        load_landmark_file(tmp_path / "short.npy")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(LandmarkError, match="unknown landmark file type"):
        load_landmark_file(tmp_path / "x.txt")


def test_cache_hits_by_content(tmp_path, dlib_detector) -> None:
    image = _portraits()["astronaut"]
    cache = LandmarkCache(tmp_path)
    first = cache.get_or_detect(image, dlib_detector)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    class Exploding:
        name = "dlib"

        def detect(self, image, box=None):
            raise AssertionError("cache missed")

    np.testing.assert_array_equal(cache.get_or_detect(image.copy(), Exploding()), first)
    edited = image.copy()
    edited[0, 0] ^= 1
    assert cache.key(edited, "dlib") != cache.key(image, "dlib")


def test_unknown_backend_lists_known() -> None:
    with pytest.raises(ValueError, match="known backends: auto, face_alignment, dlib"):
        create_detector("mediapipe")


@pytest.mark.parametrize("level", [0, 127])
def test_constant_images_are_refused_by_the_whole_image_fallback(dlib_detector, level) -> None:
    rng = np.random.default_rng(level)
    blank = np.clip(level + rng.normal(0, 0.8, (120, 120, 3)), 0, 255).astype(np.uint8)
    # the shape model alone does return a face-shaped set of points on it ...
    assert dlib_detector.detect(blank, (0, 0, 119, 119))
    # ... which the fallback must not pass off as a face
    with pytest.raises(NoFaceError, match="black.png.*nearly\\) constant"):
        detect_landmarks(blank, dlib_detector, source="black.png")
