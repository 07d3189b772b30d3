"""What this installation can do: versions, devices and optional backends."""

from __future__ import annotations

import importlib.util
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def dlib_model_path() -> Path | None:
    """Path of the 68-point dlib model inside the ``face_recognition_models`` wheel, if installed.

    The package's own ``__init__`` imports ``pkg_resources`` (gone from recent setuptools), so the
    file is located without importing it.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / "shape_predictor_68_face_landmarks.dat"
        if candidate.is_file():
            return candidate
    return None


def torch_hub_checkpoints() -> Path:
    """Where face-alignment caches its weights: ``$TORCH_HOME/hub/checkpoints``."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``device`` setting, shared by generation and training.

    Args:
        name: ``"auto"`` (CUDA when available, else CPU; under torchrun each process takes the
            GPU of its ``LOCAL_RANK``, modulo the GPUs present), or any torch device string
            (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises:
        ValueError: ``name`` is not a device string.
        RuntimeError: a CUDA device is asked for but CUDA is not available.
    """
    import torch

    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", local % torch.cuda.device_count())
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device {name!r} is not a torch device: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def environment_report() -> dict[str, object]:
    """A flat dictionary describing the installation (used by ``mesynth env`` and the demo)."""
    import cv2
    import torch

    opencv_dists = [
        d
        for d in (
            "opencv-python",
            "opencv-python-headless",
            "opencv-contrib-python",
            "opencv-contrib-python-headless",
        )
        if _version(d)
    ]
    checkpoints = torch_hub_checkpoints()
    cached = sorted(p.name for p in checkpoints.glob("*.pth*")) if checkpoints.is_dir() else []
    return {
        "mesynth": _version("mesynth"),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "opencv": cv2.__version__,
        "opencv_distributions": opencv_dists,
        "tvl1_optical_flow": hasattr(cv2, "optflow")
        and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create"),
        "dlib": _version("dlib-bin") or _version("dlib"),
        "dlib_68_model": str(dlib_model_path()) if dlib_model_path() else None,
        "face_alignment": _version("face-alignment"),
        "face_alignment_cached_weights": cached,
        "kornia": _version("kornia"),
        "hydra": _version("hydra-core"),
    }


def format_report(report: dict[str, object]) -> str:
    """Render :func:`environment_report` as aligned ``key: value`` lines."""
    width = max(len(k) for k in report)
    return "\n".join(f"{key.ljust(width)} : {value}" for key, value in report.items())
