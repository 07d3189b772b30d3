"""Identities: face images + landmarks, aligned to the canonical face and cropped.

Sources are a folder (searched recursively), a list of files, or ``"builtin"``: the public-domain
astronaut portrait of scikit-image (``skimage.data.astronaut()``) and Grace Hopper's portrait
shipped with matplotlib (``grace_hopper.jpg``). Landmarks come from a file beside the image with
the same stem (``.pts``, ``.npy``, ``.json``) when there is one, else from a detector backend of
:mod:`mesynth.face.landmarks` (``auto``, ``dlib``, ``face_alignment``; ``files`` accepts only
landmark
files). Every face is similarity-aligned to :func:`mesynth.face.canonical.canonical_landmarks` and
cropped (``framing="canonical"``, the default); ``framing="own"`` keeps each image's own crop,
resized, and ``framing="profile"`` aligns each face to a target framing measured on the data it
should look like (:mod:`mesynth.face.framing`). Images that cannot be used (unreadable, no
face, several faces, implausible or malformed landmarks) are skipped and listed with the reason;
loading goes on.

Convention:
    Images are ``(H, W, 3)`` uint8 RGB; landmarks ``(68, 2)`` continuous pixels ``(x, y)``
    (:mod:`mesynth.face.canonical`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mesynth.face.canonical import (
    STABLE_INDICES,
    apply_affine,
    canonical_landmarks,
    estimate_similarity,
    mirror_landmarks,
    warp_with_matrix,
)
from mesynth.face.framing import FRAMINGS, FramingError, framing_matrix
from mesynth.face.image_io import IMAGE_SUFFIXES, ImageReadError, read_rgb
from mesynth.face.landmarks import (
    LandmarkCache,
    LandmarkDetector,
    LandmarkError,
    check_plausible,
    create_detector,
    detect_landmarks,
    load_landmark_file,
)

BUILTIN = "builtin"
BUILTIN_NAMES = ("astronaut", "hopper")
#: the name suffix of an augmented copy: ``<person>~aug<j>``
AUGMENTED_MARK = "~aug"
LANDMARK_SUFFIXES = (".pts", ".npy", ".json")
LANDMARK_BACKENDS = ("auto", "dlib", "face_alignment", "files")


@dataclass(frozen=True)
class Identity:
    """One aligned face.

    Attributes:
        name: identity name (file stem, or ``astronaut``/``hopper``; ``~aug<j>`` for copies).
        image: ``(S, S, 3)`` uint8 RGB canonical crop.
        landmarks: ``(68, 2)`` landmarks in crop pixels.
        source: the image it came from.
        person: the person the face shows: the identity it was augmented from (every copy of
            ``hopper`` shows ``hopper``), else its own name. Left empty, it is
            :func:`person_of` the name.
    """

    name: str
    image: np.ndarray
    landmarks: np.ndarray
    source: str
    person: str = ""

    def __post_init__(self) -> None:
        if not self.person:
            object.__setattr__(self, "person", person_of(self.name))


def person_of(name: str) -> str:
    """The person of an identity name: ``person_of("hopper~aug1") == "hopper"``, and a plain
    name is its own person. The one place that reads the ``~aug`` suffix; everything else uses
    :attr:`Identity.person` or the ``person`` a store records."""
    return str(name).split(AUGMENTED_MARK, 1)[0]


@dataclass(frozen=True)
class SkippedImage:
    """An image that was not used, and why."""

    path: str
    reason: str


class IdentityError(ValueError):
    """No face could be loaded from an identity source (the message names it and why)."""


def _why_none(result: IdentitySet) -> str:
    """One line: why ``result`` holds no identity (the first skipped images and their reasons)."""
    if not result.skipped:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        return f"no image file in it ({suffixes})"
    shown = "; ".join(f"{s.path}: {s.reason}" for s in result.skipped[:3])
    more = len(result.skipped) - 3
    return f"{len(result.skipped)} image(s) skipped ({shown}{f'; {more} more' if more > 0 else ''})"


@dataclass
class IdentitySet:
    """The identities that loaded, and the images that were skipped."""

    identities: list[Identity] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.identities)

    def __getitem__(self, index: int) -> Identity:
        return self.identities[index]

    @property
    def names(self) -> list[str]:
        return [identity.name for identity in self.identities]

    def summary(self) -> str:
        lines = [f"{len(self.identities)} identities loaded, {len(self.skipped)} images skipped"]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True)
class IdentityAugmentation:
    """Optional identity augmentation (off by default: ``copies=0``).

    Each identity gets ``copies`` extra variants, each drawn from a generator seeded with
    ``(seed, identity index, copy)``.

    Attributes:
        copies: augmented variants per identity.
        mirror: flip with probability 1/2 (landmarks permuted left-right).
        shape_jitter: standard deviation of a random linear map ``I + E`` about the face centre
            (shear/aspect change); the face is re-aligned afterwards.
        colour_jitter: standard deviation of per-channel gains.
        gamma_jitter: standard deviation of ``log(gamma)``.
    """

    copies: int = 0
    mirror: bool = True
    shape_jitter: float = 0.03
    colour_jitter: float = 0.05
    gamma_jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ValueError(f"IdentityAugmentation.copies must be >= 0, got {self.copies}")
        for name in ("shape_jitter", "colour_jitter", "gamma_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"IdentityAugmentation.{name} must be >= 0")


def builtin_images() -> dict[str, np.ndarray]:
    """The two public-domain portraits that need no download, ``(H, W, 3)`` uint8 RGB."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = np.asarray(Image.open(handle).convert("RGB"))
    return {"astronaut": skimage.data.astronaut(), "hopper": hopper}


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB.

    Raises:
        LandmarkError: the file is missing or cannot be decoded (the message names it).
    """
    try:
        return read_rgb(path)
    except ImageReadError as err:
        raise LandmarkError(str(err)) from err


def landmark_file_beside(path: Path) -> Path | None:
    """``<stem>.pts|.npy|.json`` next to ``path``, the first that exists."""
    for suffix in LANDMARK_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def find_images(source: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """Expand a source to a list of image files and ``builtin`` markers.

    Raises:
        FileNotFoundError: a folder or file that does not exist.
    """
    if isinstance(source, (str, Path)):
        source = [source]
    out: list[str | Path] = []
    for item in source:
        if str(item) == BUILTIN:
            out += [f"{BUILTIN}:{name}" for name in BUILTIN_NAMES]
            continue
        path = Path(item)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists() or path.suffix:
            out.append(path)
        else:
            raise FileNotFoundError(
                f"identity source {item} is neither a folder, a file nor 'builtin'"
            )
    return out


class _LandmarkSource:
    """Landmark files first, else a detector created on first need (with an optional cache)."""

    def __init__(
        self,
        backend: str,
        cache_dir: str | Path | None,
        detector: LandmarkDetector | None,
        whole_image_fallback: bool,
    ) -> None:
        if backend not in LANDMARK_BACKENDS:
            raise ValueError(
                f"unknown landmark backend {backend!r}; use one of {', '.join(LANDMARK_BACKENDS)}"
            )
        self.backend = backend
        self.cache = LandmarkCache(cache_dir) if cache_dir else None
        self._detector = detector
        self.whole_image_fallback = whole_image_fallback

    def __call__(self, image: np.ndarray, path: Path | None, source: str) -> np.ndarray:
        beside = landmark_file_beside(path) if path is not None else None
        if beside is not None:
            return check_plausible(load_landmark_file(beside), image.shape, str(beside))
        if self.backend == "files":
            raise LandmarkError(
                f"{source}: no landmark file beside it (expected {Path(source).stem}.pts, .npy "
                "or .json); add one, or use a detector backend (dlib, face_alignment)"
            )
        if self._detector is None:
            self._detector = create_detector(self.backend)
        options = {"source": source, "whole_image_fallback": self.whole_image_fallback}
        if self.cache is not None:
            return self.cache.get_or_detect(image, self._detector, **options)
        return detect_landmarks(image, self._detector, **options)  # type: ignore[arg-type]


def load_identities(
    source: str | Path | Sequence[str | Path] = BUILTIN,
    *,
    size: int = 224,
    backend: str = "auto",
    cache_dir: str | Path | None = None,
    augmentation: IdentityAugmentation | None = None,
    seed: int = 0,
    detector: LandmarkDetector | None = None,
    whole_image_fallback: bool = False,
    framing: str = "canonical",
    target: np.ndarray | None = None,
) -> IdentitySet:
    """Load, landmark, align and crop identities; unusable images are skipped and listed.

    Args:
        source: a folder, an image file, ``"builtin"``, or a list of those.
        size: output crop size ``S`` (square).
        backend: landmark backend for images without a landmark file beside them.
        cache_dir: optional :class:`~mesynth.face.landmarks.LandmarkCache` folder.
        augmentation: optional :class:`IdentityAugmentation` (seeded by ``seed``).
        seed: global seed of the augmentation.
        detector: a ready detector (overrides ``backend`` for detection).
        whole_image_fallback: when detection finds no face, fit landmarks to the whole image
            (for tight face crops). Off by default, so that images without a face are skipped.
        framing: ``canonical`` (similarity-aligned to the canonical face), ``own`` (the image
            resized to ``size x size``, for tight crops of the target release) or ``profile``
            (aligned to ``target``); see :mod:`mesynth.face.framing`.
        target: normalised target landmarks ``(68, 2)`` or eye/mouth centres ``(3, 2)`` for
            ``framing="profile"``.

    Returns:
        An :class:`IdentitySet`; ``.summary()`` lists what was skipped and why.

    Raises:
        ValueError: no identity could be loaded (the message lists each skipped image).
        FramingError: an unknown ``framing``, or ``profile`` without a ``target``.
    """
    if framing not in FRAMINGS:
        raise FramingError(f"unknown framing {framing!r}; use one of {', '.join(FRAMINGS)}")
    if framing == "profile" and target is None:
        raise FramingError("framing 'profile' needs target landmarks (a profile's framing)")
    landmarks_of = _LandmarkSource(backend, cache_dir, detector, whole_image_fallback)
    result = IdentitySet()
    used: set[str] = set()
    for item in find_images(source):
        is_builtin = isinstance(item, str) and item.startswith(f"{BUILTIN}:")
        label = str(item)
        try:
            if is_builtin:
                name = label.split(":", 1)[1]
                image, path = builtin_images()[name], None
            else:
                path = Path(item)
                name = path.stem
                image = read_image(path)
            points = landmarks_of(image, path, label)
        except LandmarkError as err:
            result.skipped.append(SkippedImage(label, _reason(err, label)))
            continue
        name = _unique(name, used)
        result.identities.append(
            align_identity(name, image, points, size, label, framing=framing, target=target)
        )
    if not result.identities:
        raise IdentityError(f"no usable identity in {source!r}: {_why_none(result)}")
    if augmentation is not None and augmentation.copies:
        originals = list(result.identities)
        for i, identity in enumerate(originals):
            for j in range(augmentation.copies):
                rng = np.random.default_rng([seed, i, j])
                copy = augment_identity(
                    identity,
                    augmentation,
                    rng,
                    f"{identity.name}{AUGMENTED_MARK}{j}",
                    keep_framing=framing != "canonical",
                )
                result.identities.append(copy)
    return result


def _reason(err: Exception, label: str) -> str:
    text = str(err)
    return text[len(label) + 2 :] if text.startswith(f"{label}: ") else text


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}-{k}", k + 1
    used.add(candidate)
    return candidate


def align_identity(
    name: str,
    image: np.ndarray,
    landmarks: np.ndarray,
    size: int,
    source: str,
    *,
    framing: str = "canonical",
    target: np.ndarray | None = None,
) -> Identity:
    """Crop ``image`` (``(H, W, 3)`` uint8) with its ``(68, 2)`` landmarks to ``size x size``:
    similarity-aligned to the canonical face by default (``framing`` and ``target``: see
    :func:`mesynth.face.framing.framing_matrix`)."""
    matrix = framing_matrix(landmarks, image.shape, size, framing, target=target)
    crop = warp_with_matrix(image, matrix, size)
    return Identity(name, crop, apply_affine(landmarks, matrix), source)


def augment_identity(
    identity: Identity,
    augmentation: IdentityAugmentation,
    generator: np.random.Generator,
    name: str,
    *,
    keep_framing: bool = False,
) -> Identity:
    """One augmented copy: mirror, shape jitter (then re-aligned), colour and gamma jitter. The
    copy shows the same person as ``identity`` (:attr:`Identity.person`).

    All draws happen in a fixed order whatever is switched off, so one option never changes
    another's randomness. The jittered face is re-aligned on the stable points to the canonical
    face, or with ``keep_framing`` to where the (mirrored) face sat before the jitter.
    """
    size = identity.image.shape[0]
    flip = generator.random() < 0.5
    jitter = generator.normal(0.0, augmentation.shape_jitter, (2, 2))
    gains = 1.0 + generator.normal(0.0, augmentation.colour_jitter, 3)
    gamma = float(np.exp(generator.normal(0.0, augmentation.gamma_jitter)))
    image, points = identity.image, identity.landmarks
    if augmentation.mirror and flip:
        image = np.ascontiguousarray(image[:, ::-1])
        points = mirror_landmarks(points, size)
    centre = points.mean(0)
    linear = np.eye(2) + jitter
    distort = np.hstack([linear, (centre - linear @ centre)[:, None]])
    moved = apply_affine(points, distort)
    anchor = points if keep_framing else canonical_landmarks(size)
    realign = estimate_similarity(moved, anchor, STABLE_INDICES)
    total = realign @ np.vstack([distort, [0.0, 0.0, 1.0]])
    image = warp_with_matrix(image, total, size)
    points = apply_affine(points, total)
    shaded = 255.0 * (image / 255.0) ** gamma * np.clip(gains, 0.5, 1.5)
    image = np.clip(np.rint(shaded), 0, 255).astype(np.uint8)
    return Identity(name, image, points, identity.source, identity.person)
