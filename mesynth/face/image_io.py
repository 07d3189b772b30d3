"""Reading image files: the one decoder behind identities, clip records and recognizer frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: file suffixes (lower case) read as images; anything else in a frame folder is ignored.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


class ImageReadError(ValueError):
    """An image file is missing or cannot be decoded; the message names the file."""


def decode_rgb(path: str | Path) -> np.ndarray | None:
    """An image file as ``(H, W, 3)`` uint8 RGB, or ``None`` when it is missing or undecodable.

    Grayscale files are expanded to three channels. ``np.fromfile`` + ``cv2.imdecode`` also reads
    non-ASCII paths.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (grayscale files are expanded).

    Raises:
        ImageReadError: the file is missing, or corrupt or not an image (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    image = decode_rgb(path)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or not an image)")
    return image
