import cv2
import numpy as np
import pytest

from mesynth.face.canonical import (
    STABLE_INDICES,
    canonical_landmarks,
    inter_ocular_distance,
    mirror_landmarks,
)
from mesynth.face.identities import (
    Identity,
    IdentityAugmentation,
    augment_identity,
    builtin_images,
    load_identities,
    person_of,
)
from mesynth.face.landmarks import detect_landmarks, save_pts

SIZE = 64


@pytest.fixture(scope="module")
def builtin(dlib_detector):
    return load_identities("builtin", size=SIZE, detector=dlib_detector)


def _save_rgb(path, image) -> None:
    cv2.imwrite(str(path), np.ascontiguousarray(image[:, :, ::-1]))


def test_dlib_finds_both_builtin_portraits_and_aligns_them(builtin) -> None:
    assert builtin.names == ["astronaut", "hopper"] and not builtin.skipped
    canonical = canonical_landmarks(SIZE)
    for identity in builtin.identities:
        assert identity.image.shape == (SIZE, SIZE, 3) and identity.image.dtype == np.uint8
        assert identity.landmarks.shape == (68, 2)
        err = np.linalg.norm(identity.landmarks[STABLE_INDICES] - canonical[STABLE_INDICES], axis=1)
        assert err.max() < 0.15 * inter_ocular_distance(canonical)


def test_folder_with_bad_images_skips_each_with_its_reason(tmp_path, dlib_detector) -> None:
    portraits = builtin_images()
    astronaut = portraits["astronaut"]
    _save_rgb(tmp_path / "good.png", astronaut)
    # landmark file beside the image wins over detection (0-based .npy)
    points = detect_landmarks(astronaut, dlib_detector)
    np.save(tmp_path / "good.npy", points - 0.5)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    _save_rgb(tmp_path / "blank.png", np.full((120, 120, 3), 127, np.uint8))
    _save_rgb(tmp_path / "malformed.png", astronaut)
    (tmp_path / "malformed.pts").write_text("version: 1\nn_points: 68\n{\n1 2 3\n}\n")
    _save_rgb(tmp_path / "upside_down.png", astronaut)
    np.save(tmp_path / "upside_down.npy", points[:, ::-1] * [1, 1] - 0.5)  # x and y swapped
    hopper = cv2.resize(portraits["hopper"], (astronaut.shape[1], astronaut.shape[0]))
    _save_rgb(tmp_path / "two_faces.png", np.hstack([astronaut, hopper]))

    result = load_identities(tmp_path, size=SIZE, detector=dlib_detector)
    assert result.names == ["good"]
    reasons = {s.path.split("/")[-1]: s.reason for s in result.skipped}
    assert set(reasons) == {
        "broken.jpg",
        "blank.png",
        "malformed.png",
        "two_faces.png",
        "upside_down.png",
    }
    assert "upside_down.npy" in reasons["upside_down.png"]
    assert "not a readable image" in reasons["broken.jpg"]
    assert "no face" in reasons["blank.png"]
    assert "malformed.pts" in reasons["malformed.png"] and "line 4" in reasons["malformed.png"]
    assert "faces found" in reasons["two_faces.png"]
    summary = result.summary()
    assert "1 identities loaded, 5 images skipped" in summary and "broken.jpg" in summary
    np.testing.assert_allclose(
        result[0].landmarks,
        load_identities([tmp_path / "good.png"], size=SIZE, backend="files")[0].landmarks,
    )


def test_files_backend_without_a_landmark_file_says_what_to_add(tmp_path) -> None:
    _save_rgb(tmp_path / "face.png", builtin_images()["astronaut"])
    with pytest.raises(ValueError) as info:
        load_identities(tmp_path, size=SIZE, backend="files")
    assert "face.pts" in str(info.value) and "detector backend" in str(info.value)


def test_pts_file_is_used_and_one_based(tmp_path, builtin, dlib_detector) -> None:
    image = builtin_images()["hopper"]
    points = detect_landmarks(image, dlib_detector)
    _save_rgb(tmp_path / "hopper.png", image)
    save_pts(tmp_path / "hopper.pts", points)
    (loaded,) = load_identities(tmp_path, size=SIZE, backend="files").identities
    np.testing.assert_allclose(loaded.landmarks, builtin[1].landmarks, atol=1e-3)


def test_missing_source_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_identities(tmp_path / "nowhere", size=SIZE)
    with pytest.raises(ValueError, match="unknown landmark backend"):
        load_identities("builtin", backend="magic")


def test_augmentation_is_seeded_and_keeps_the_face_aligned(builtin) -> None:
    aug = IdentityAugmentation(copies=1, shape_jitter=0.05)
    first = augment_identity(builtin[0], aug, np.random.default_rng(3), "x")
    again = augment_identity(builtin[0], aug, np.random.default_rng(3), "x")
    other = augment_identity(builtin[0], aug, np.random.default_rng(4), "x")
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    canonical = canonical_landmarks(SIZE)
    err = np.linalg.norm(first.landmarks[STABLE_INDICES] - canonical[STABLE_INDICES], axis=1)
    assert err.max() < 0.2 * inter_ocular_distance(canonical)


def test_mirror_only_augmentation_flips_image_and_landmarks(builtin) -> None:
    aug = IdentityAugmentation(copies=1, shape_jitter=0.0, colour_jitter=0.0, gamma_jitter=0.0)
    seed = next(s for s in range(20) if np.random.default_rng(s).random() < 0.5)  # flips
    out = augment_identity(builtin[1], aug, np.random.default_rng(seed), "m")
    flipped = builtin[1].image[:, ::-1]
    # the canonical face is symmetric, so re-alignment after a flip is nearly the identity
    assert np.abs(out.image.astype(int) - flipped).mean() < 12
    np.testing.assert_allclose(
        out.landmarks, mirror_landmarks(builtin[1].landmarks, SIZE), atol=1.0
    )


def test_load_identities_adds_named_augmented_copies(dlib_detector) -> None:
    result = load_identities(
        "builtin",
        size=SIZE,
        detector=dlib_detector,
        augmentation=IdentityAugmentation(copies=2),
        seed=1,
    )
    assert result.names == [
        "astronaut",
        "hopper",
        "astronaut~aug0",
        "astronaut~aug1",
        "hopper~aug0",
        "hopper~aug1",
    ]
    assert [face.person for face in result.identities] == [
        "astronaut", "hopper", "astronaut", "astronaut", "hopper", "hopper",
    ]  # fmt: skip


def test_an_augmented_copy_shows_the_person_of_its_original() -> None:
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    face = Identity("portrait", image, canonical_landmarks(SIZE), "test", person="alice")
    copy = augment_identity(face, IdentityAugmentation(copies=1), np.random.default_rng(0), "x")
    assert copy.name == "x" and copy.person == "alice"
    assert Identity("hopper~aug3", image, face.landmarks, "test").person == "hopper"
    assert person_of("astronaut") == "astronaut"
