"""Load local weight files (e.g. Kinetics checkpoints) into a registered model.

Handles the layouts users hold: a bare state dict or one under ``"state_dict"``/``"model"``;
``module.`` prefixes of ``DataParallel``; Hara et al.'s R3D/DenseNet names, torchvision's
``r3d_18``, piergiaj's I3D; 2D kernels of P3D's res5 (reshaped to 1×k×k). Files are read with
``torch.load(weights_only=True)``: no code in a weight file ever runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from recognizer.models.registry import key_remap


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        loaded: model keys filled from the file.
        missing: model keys the file did not provide (left at their initialisation).
        unexpected: file keys with no counterpart in the model.
        mismatched: ``(key, file shape, model shape)`` of keys whose shapes differ.
        skipped_classifier: the classifier was left alone because the class counts differ.
    """

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    skipped_classifier: bool = False

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.skipped_classifier:
            lines.append("classifier skipped (different class count): it stays freshly initialised")
        for name, items in (("missing", self.missing), ("unexpected", self.unexpected)):
            if items:
                shown = ", ".join(items[:8]) + (" ..." if len(items) > 8 else "")
                lines.append(f"{len(items)} {name}: {shown}")
        for key, src, dst in self.mismatched:
            lines.append(f"shape mismatch {key}: file {src} vs model {dst}")
        return "\n".join(lines)


class WeightLoadError(RuntimeError):
    """The file does not fit the model (names the file and what does not match)."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, ``module.`` prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors differ by torch version
        raise WeightLoadError(f"{path}: cannot read as a weights-only torch file: {err}") from err
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightLoadError(f"{path}: expected a dict of tensors (a state dict)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained(
    model: nn.Module,
    path: str | Path,
    *,
    model_name: str | None = None,
    strict: bool = False,
    min_fraction: float = 0.5,
) -> LoadReport:
    """Fill ``model`` from a local weight file, keeping the classifier when class counts differ.

    Args:
        model: a model from :func:`recognizer.models.create_model` (its ``default_cfg`` names
            the registry entry and the classifier).
        path: ``.pth``/``.pt``/``.pth.tar`` file.
        model_name: registry name whose key mapping to use (default ``model.default_cfg.name``).
        strict: raise when any key is missing, unexpected or mismatched (the classifier
            exception still applies).
        min_fraction: raise when fewer than this fraction of the model's tensors load: the file
            is probably of another model.

    Returns:
        A :class:`LoadReport`; unmatched keys are also reported as one warning.

    Raises:
        WeightLoadError: the file is of another model or class count in a way that cannot be
            skipped (the message says what does not match).
    """
    cfg = getattr(model, "default_cfg", None)
    name = model_name or (cfg.name if cfg is not None else None)
    source = read_state_dict(path)
    if name is not None:
        source = key_remap(name)(source)
    target = model.state_dict()
    classifier = f"{cfg.classifier}." if cfg is not None else None
    report = LoadReport()
    chosen = {}
    for key, value in source.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        want = target[key].shape
        if value.shape != want and value.numel() == target[key].numel():
            value = value.reshape(want)  # 2D/1×1×1 conv kernels stored for 3D/linear layers
        if value.shape != want:
            if classifier and key.startswith(classifier):
                report.skipped_classifier = True
            else:
                report.mismatched.append((key, tuple(value.shape), tuple(want)))
            continue
        chosen[key] = value
    if report.skipped_classifier:
        chosen = {k: v for k, v in chosen.items() if not k.startswith(classifier or "")}
    report.loaded = sorted(chosen)
    report.missing = sorted(k for k in target if k not in chosen)
    if report.skipped_classifier:
        report.missing = [k for k in report.missing if not k.startswith(classifier or "")]
    n_model = max(len(target), 1)
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise WeightLoadError(f"{path} does not fit {name or type(model).__name__}:\n{report}")
    if len(chosen) < min_fraction * n_model:
        raise WeightLoadError(
            f"{path} does not fit {name or type(model).__name__}: only {len(chosen)} of "
            f"{n_model} tensors match\n{report}"
        )
    model.load_state_dict(chosen, strict=False)
    if report.missing or report.unexpected or report.mismatched:
        warnings.warn(f"{path}: {report}", stacklevel=2)
    return report
