"""Framing: measured on crops of real portraits placed with known similarities; identities
rendered in their own crop or in a profile's framing; the canonical default unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from mesynth.calibration.profile import CalibrationProfile, Framing, ProfileError
from mesynth.face.canonical import (
    STABLE_INDICES,
    apply_affine,
    canonical_landmarks,
    estimate_similarity,
    warp_with_matrix,
)
from mesynth.face.framing import (
    FramingError,
    adjust_target,
    framing_matrix,
    key_points,
    measure_crop_framing,
    normalise,
)
from mesynth.face.identities import (
    IdentityAugmentation,
    align_identity,
    builtin_images,
    load_identities,
)
from mesynth.face.landmarks import detect_landmarks
from mesynth.generation.recipe import GenerationRecipe, RecipeError
from tests.profile_fixtures import EXAMPLE_PROFILE

SIZE = 64
CROP = 128


@pytest.fixture(scope="module")
def portraits(dlib_detector):
    """``{name: (image, landmarks)}`` of the two public-domain portraits (dlib landmarks)."""
    return {
        name: (image, detect_landmarks(image, dlib_detector))
        for name, image in builtin_images().items()
    }


def _tight_crop(image, landmarks, top, scale):
    """A tight ``CROP x CROP`` crop: eyes at height ``top`` (fraction), IOD ``scale`` x CROP,
    plus the landmarks it puts the face's points at (the known answer)."""
    target = np.array([[0.5 - scale / 2, top], [0.5 + scale / 2, top]]) * CROP
    eyes = key_points(landmarks)[:2]
    matrix = estimate_similarity(eyes, target)
    return warp_with_matrix(image, matrix, CROP), apply_affine(landmarks, matrix)


def test_framing_measured_on_crops_matches_the_known_landmark_positions(portraits, dlib_detector):
    crops, known = [], []
    for top, scale in ((0.28, 0.42), (0.24, 0.46), (0.30, 0.40)):
        for image, landmarks in portraits.values():
            crop, points = _tight_crop(image, landmarks, top, scale)
            crops.append(crop)
            known.append(normalise(points, crop.shape))
    measured = measure_crop_framing(crops, dlib_detector)
    assert measured.per_crop.shape == (6, 68, 2) and not measured.skipped
    error_px = np.linalg.norm(measured.mean - np.mean(known, axis=0), axis=1) * CROP
    # dlib re-detected on the crop vs the similarity-mapped original landmarks
    assert np.median(error_px) < 2.0
    assert error_px[STABLE_INDICES].max() < 3.0
    eyes = key_points(measured.mean)[:2]
    assert eyes[:, 1] == pytest.approx([0.2733, 0.2733], abs=0.02)  # mean of 0.28, 0.24, 0.30


def test_framing_measurement_skips_blank_crops_and_names_them(portraits, dlib_detector):
    crop, _ = _tight_crop(*portraits["astronaut"], 0.3, 0.4)
    blank = np.full((CROP, CROP, 3), 128, np.uint8)
    measured = measure_crop_framing([crop, blank], dlib_detector, names=["a.png", "blank.png"])
    assert measured.sources == ("a.png",) and measured.skipped[0][0] == "blank.png"
    with pytest.raises(FramingError, match="blank.png"):
        measure_crop_framing([blank], dlib_detector, names=["blank.png"])


def test_own_framing_keeps_each_crop_only_resized(portraits):
    crop, points = _tight_crop(*portraits["hopper"], 0.3, 0.4)
    crop = crop[:, : CROP - 28]  # not square: each axis scaled on its own
    face = align_identity("h", crop, points, SIZE, "h.png", framing="own")
    expected = points * [SIZE / crop.shape[1], SIZE / crop.shape[0]]
    np.testing.assert_allclose(face.landmarks, expected, atol=1e-9)
    assert face.image.shape == (SIZE, SIZE, 3)


def test_canonical_stays_the_default_and_unchanged(portraits, dlib_detector):
    image, points = portraits["astronaut"]
    default = align_identity("a", image, points, SIZE, "a")
    matrix = estimate_similarity(points, canonical_landmarks(SIZE), STABLE_INDICES)
    np.testing.assert_array_equal(default.image, warp_with_matrix(image, matrix, SIZE))
    loaded = load_identities("builtin", size=SIZE, detector=dlib_detector)
    explicit = load_identities("builtin", size=SIZE, detector=dlib_detector, framing="canonical")
    for a, b in zip(loaded.identities, explicit.identities):
        np.testing.assert_array_equal(a.image, b.image)


def test_profile_framing_puts_the_face_on_the_target_and_follows_offsets(portraits, dlib_detector):
    crop, points = _tight_crop(*portraits["astronaut"], 0.3, 0.4)
    target = normalise(points, crop.shape)
    face = align_identity("a", crop, points, SIZE, "a", framing="profile", target=target)
    # the same face's landmarks: the similarity fit is exact
    np.testing.assert_allclose(face.landmarks, target * SIZE, atol=1e-6)
    moved = adjust_target(target, offset=(0.05, -0.03), scale=1.1)
    shifted = align_identity("a", crop, points, SIZE, "a", framing="profile", target=moved)
    centre = target.mean(0)
    expected = (centre + 1.1 * (target - centre) + [0.05, -0.03]) * SIZE
    np.testing.assert_allclose(shifted.landmarks, expected, atol=1e-6)
    # another face: its stable points land on the target's within a few pixels
    hopper = load_identities("builtin", size=SIZE, detector=dlib_detector, framing="profile",
                             target=target)[1]  # fmt: skip
    error = np.linalg.norm(hopper.landmarks[STABLE_INDICES] - target[STABLE_INDICES] * SIZE, 1)
    assert error.max() < 0.1 * SIZE
    # a (3, 2) eye/mouth target (a profile measured from videos) fits those three points
    three = key_points(target)
    by_three = align_identity("a", crop, points, SIZE, "a", framing="profile", target=three)
    np.testing.assert_allclose(key_points(by_three.landmarks), three * SIZE, atol=1e-6)


def test_augmented_copies_keep_a_non_canonical_framing(portraits, dlib_detector):
    crop, points = _tight_crop(*portraits["astronaut"], 0.22, 0.5)
    target = normalise(points, crop.shape)
    faces = load_identities(
        "builtin",
        size=SIZE,
        detector=dlib_detector,
        framing="profile",
        target=target,
        augmentation=IdentityAugmentation(copies=2, mirror=False),
    )
    original = faces.identities[0]
    for copy in faces.identities[2:4]:  # astronaut~aug0, ~aug1
        assert copy.name.startswith("astronaut~aug")
        drift = np.linalg.norm(
            copy.landmarks[STABLE_INDICES] - original.landmarks[STABLE_INDICES], 1
        )
        assert drift.max() < 0.05 * SIZE
    canonical_eyes = key_points(canonical_landmarks(SIZE))[:2]
    assert np.abs(key_points(original.landmarks)[:2] - canonical_eyes).max() > 0.05 * SIZE


def test_bad_framing_arguments_are_named():
    with pytest.raises(FramingError, match="unknown framing 'tight'"):
        load_identities("builtin", size=SIZE, framing="tight")
    with pytest.raises(FramingError, match="needs target landmarks"):
        load_identities("builtin", size=SIZE, framing="profile")
    with pytest.raises(FramingError, match="scale must be > 0"):
        adjust_target(canonical_landmarks(SIZE) / SIZE, scale=0.0)
    with pytest.raises(FramingError, match=r"\(68, 2\) or \(3, 2\)"):
        framing_matrix(canonical_landmarks(SIZE), (SIZE, SIZE), SIZE, "profile", target=np.ones(4))
    with pytest.raises(RecipeError, match="recipe.identities.framing"):
        GenerationRecipe(identities={"framing": "tight"})


def test_profile_framing_with_landmarks_round_trips_and_drives_the_recipe(
    tmp_path, portraits, dlib_detector
):
    crop, points = _tight_crop(*portraits["hopper"], 0.26, 0.44)
    target = normalise(points, crop.shape)
    framing = Framing.of_landmarks(target)
    assert framing.right_eye == pytest.approx(tuple(key_points(target)[0]))
    profile = CalibrationProfile(**{**EXAMPLE_PROFILE.__dict__, "framing": framing})
    path = profile.save(tmp_path / "profile.yaml")
    loaded = CalibrationProfile.load(path)
    np.testing.assert_allclose(loaded.framing.target(), target, atol=1e-6)
    recipe = GenerationRecipe(
        size=SIZE,
        identities={"framing": "profile", "landmark_backend": "dlib"},
        effects=str(path),
    )
    faces = recipe.build_identities()
    error = np.linalg.norm(faces[1].landmarks[STABLE_INDICES] - target[STABLE_INDICES] * SIZE, 1)
    assert error.max() < 1e-3 * SIZE  # hopper on hopper's own framing
    # without a landmark list the profile's eye and mouth centres are the target
    assert EXAMPLE_PROFILE.framing.target().shape == (3, 2)
    with pytest.raises(RecipeError, match="framing_profile"):
        GenerationRecipe(size=SIZE, identities={"framing": "profile"}).build_identities()
    data = yaml.safe_load(path.read_text())
    data["framing"]["landmarks"] = data["framing"]["landmarks"][:10]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match=r"bad.yaml: key 'framing.landmarks'"):
        CalibrationProfile.load(bad)


def test_recipe_own_framing_renders_tight_crops_as_they_are(tmp_path, portraits):
    import cv2

    crop, points = _tight_crop(*portraits["astronaut"], 0.3, 0.45)
    cv2.imwrite(str(tmp_path / "s01.png"), np.ascontiguousarray(crop[:, :, ::-1]))
    np.save(tmp_path / "s01.npy", points - 0.5)  # landmark file beside it, 0-based
    recipe = GenerationRecipe(size=SIZE, identities={"source": str(tmp_path), "framing": "own"})
    face = recipe.build_identities()[0]
    np.testing.assert_allclose(face.landmarks, points * SIZE / CROP, atol=1e-6)
    resized = cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    assert np.abs(face.image.astype(int) - resized.astype(int)).mean() < 3.0
