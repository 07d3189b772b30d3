"""Decoding image files: the one reader behind identities, clip records and recognizer frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def decode_rgb(path: str | Path) -> np.ndarray | None:
    """An image file as ``(H, W, 3)`` uint8 RGB, or ``None`` when it is missing or undecodable.

    Grayscale files are expanded to three channels. Callers raise their own typed error (which
    names the file) on ``None``. ``np.fromfile`` + ``cv2.imdecode`` also reads non-ASCII paths.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
