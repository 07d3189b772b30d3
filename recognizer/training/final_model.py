"""The final model of a run: ``final.pt``, everything needed to predict with it elsewhere.

``mer train protocol=all`` trains one model on every sample (:class:`recognizer.protocols.
AllProtocol`) and :func:`save_final_model` writes ``<run>/final.pt`` from the weights the
training selected (``fold_00/last.pt``, or ``best.pt`` for ``selection="best_val"``), with:

- ``model``: the registered name, the builder keywords (``widths``, ``stem``, ...) and the class
  count, so :func:`recognizer.models.create_model` rebuilds the same network;
- ``representation``: its kind (``KeyFrameClip`` or ``ApexFlow``) and every setting (frames,
  size, sampling, flow method, normalisation);
- ``input``: the resolved :class:`~recognizer.data.input_config.InputConfig`;
- ``classes`` and ``scheme``: the label scheme and its class names, in logit order;
- ``library_version``, ``trained_on`` (samples, data config), ``seed``, ``selection``, ``epoch``.

The file holds tensors and primitive containers only, so :func:`load_final_model` reads it
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from recognizer import __version__
from recognizer.data.input_config import InputConfig
from recognizer.data.representations import ApexFlow, KeyFrameClip
from recognizer.training.trainer import CheckpointReadError, read_checkpoint

FINAL_MODEL = "final.pt"
FORMAT = "recognizer.training.final_model/1"

#: representation kind -> (class, the constructor settings it is rebuilt from)
_REPRESENTATIONS: dict[str, tuple[type, tuple[str, ...]]] = {
    "KeyFrameClip": (
        KeyFrameClip,
        ("num_frames", "size", "sampling", "mean", "std", "input_scale", "flip"),
    ),
    "ApexFlow": (
        ApexFlow,
        ("size", "method", "mean", "std", "input_scale", "flip", "render_size"),
    ),
}


class FinalModelError(ValueError):
    """A run has no usable ``final.pt`` (the message names the file and what to do)."""


@dataclass
class FinalModel:
    """A rebuilt final model, ready to predict.

    Attributes:
        model: the network with the trained weights, in eval mode, on CPU.
        representation: the run's representation (a ``KeyFrameClip`` or ``ApexFlow``).
        classes: class names in logit order.
        scheme: the label scheme (``megc3``, ``dfme7``, ...).
        input: the input config the model was trained with.
        info: the rest of ``final.pt`` (model name and keywords, version, training data).
        path: the file it was read from.
    """

    model: nn.Module
    representation: KeyFrameClip | ApexFlow
    classes: list[str]
    scheme: str
    input: InputConfig
    info: dict[str, object]
    path: Path


def representation_settings(representation: object) -> dict[str, object]:
    """``{"kind": ..., "settings": {...}}`` of a representation, as stored in ``final.pt``.

    Raises:
        FinalModelError: a representation kind this module cannot rebuild.
    """
    kind = type(representation).__name__
    if kind not in _REPRESENTATIONS:
        raise FinalModelError(
            f"representation {kind} cannot be stored in {FINAL_MODEL}; known: "
            f"{', '.join(sorted(_REPRESENTATIONS))}"
        )
    settings = {}
    for key in _REPRESENTATIONS[kind][1]:
        value = getattr(representation, key)
        settings[key] = list(value) if isinstance(value, tuple) else value
    return {"kind": kind, "settings": settings}


def build_representation(stored: Mapping[str, object]) -> KeyFrameClip | ApexFlow:
    """The representation of :func:`representation_settings`'s output.

    Raises:
        FinalModelError: an unknown kind.
    """
    kind = str(stored.get("kind"))
    if kind not in _REPRESENTATIONS:
        raise FinalModelError(f"unknown representation kind {kind!r} in {FINAL_MODEL}")
    cls = _REPRESENTATIONS[kind][0]
    settings = dict(stored.get("settings", {}))  # type: ignore[call-overload]
    for key in ("mean", "std"):
        settings[key] = tuple(settings[key])
    return cls(**settings)


def selected_weights(run_dir: str | Path, selection: str) -> Path:
    """The weights a single-fold run's training selected: ``fold_00/best.pt`` for
    ``selection="best_val"``, else ``fold_00/last.pt``.

    Raises:
        FinalModelError: the file is missing (the run has not finished).
    """
    fold = Path(run_dir) / "fold_00"
    path = fold / ("best.pt" if selection == "best_val" else "last.pt")
    if not path.is_file():
        raise FinalModelError(
            f"{path} not found: the run in {run_dir} has not finished training (rerun the same "
            "`mer train protocol=all` command to resume it)"
        )
    return path


def save_final_model(
    run_dir: str | Path,
    *,
    model_name: str,
    model_kwargs: Mapping[str, object],
    num_classes: int,
    classes: Sequence[str],
    scheme: str,
    representation: object,
    input_config: InputConfig,
    selection: str = "last",
    seed: int = 0,
    trained_on: Mapping[str, object] | None = None,
) -> Path:
    """Write ``<run_dir>/final.pt`` from the weights the run selected (see the module).

    Args:
        run_dir: a finished :func:`recognizer.experiments.runner.run_protocol` folder of protocol
            ``all`` (its ``fold_00`` weights are the final model).
        model_name, model_kwargs, num_classes: what :func:`recognizer.models.create_model`
            takes to rebuild the network.
        classes: ``(K,)`` class names in logit order; ``scheme``: their label scheme.
        representation: the run's representation; ``input_config``: its resolved input.
        selection: the trainer's selection (which weights file to take).
        seed: the run's seed; ``trained_on``: what it was trained on (kept for the record).

    Returns:
        The path written (atomically: a temporary name, then rename).

    Raises:
        FinalModelError: the run has no selected weights, or they do not fit ``num_classes``.
    """
    weights = selected_weights(run_dir, selection)
    ckpt = read_checkpoint(weights)
    if ckpt.get("num_classes") not in (num_classes, -1):
        raise FinalModelError(f"{weights} has {ckpt.get('num_classes')} classes, not {num_classes}")
    final = {
        "format": FORMAT,
        "library_version": __version__,
        "model": {
            "name": model_name,
            "kwargs": dict(model_kwargs),
            "num_classes": int(num_classes),
        },
        "state_dict": ckpt["model"],
        "representation": representation_settings(representation),
        "input": {**asdict(input_config), "mean": list(input_config.mean),
                  "std": list(input_config.std)},
        "classes": [str(c) for c in classes],
        "scheme": str(scheme),
        "selection": selection,
        "seed": int(seed),
        "epoch": int(ckpt.get("state", {}).get("epoch", ckpt.get("epoch", 0))),
        "trained_on": dict(trained_on or {}),
        "weights_from": weights.relative_to(Path(run_dir)).as_posix(),
    }  # fmt: skip
    path = Path(run_dir) / FINAL_MODEL
    tmp = path.with_name(f".{FINAL_MODEL}.tmp")
    torch.save(final, tmp)
    tmp.replace(path)
    return path


def load_final_model(run_dir: str | Path) -> FinalModel:
    """Rebuild the model and representation of ``<run_dir>/final.pt`` (or of a ``.pt`` path).

    Raises:
        FinalModelError: no ``final.pt`` (the message says how to make one), an unreadable or
            foreign file, or weights that do not fit the stored model.
    """
    from recognizer.models import create_model

    given = Path(run_dir)
    path = given if given.suffix == ".pt" else given / FINAL_MODEL
    if not path.is_file():
        hint = (
            "it is not a folder"
            if not given.is_dir()
            else "train one with `mer train protocol=all out_dir=<run>` (runs of other protocols "
            "have one model per fold and no final model)"
        )
        raise FinalModelError(f"{path} not found: {hint}")
    try:
        final = read_checkpoint(path)
    except CheckpointReadError as err:
        raise FinalModelError(str(err)) from err
    if final.get("format") != FORMAT:
        raise FinalModelError(
            f"{path} is not a final model (format {final.get('format')!r}, expected {FORMAT!r}); "
            "write it with `mer train protocol=all`"
        )
    spec = final["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], **spec["kwargs"])
    try:
        model.load_state_dict(final["state_dict"])
    except RuntimeError as err:
        raise FinalModelError(
            f"{path}: the weights do not fit model {spec['name']!r}: {err}"
        ) from err
    model.eval()
    stored_input = dict(final["input"])
    stored_input["mean"], stored_input["std"] = (
        tuple(stored_input["mean"]),
        tuple(stored_input["std"]),
    )
    info = {k: v for k, v in final.items() if k != "state_dict"}
    return FinalModel(
        model=model,
        representation=build_representation(final["representation"]),
        classes=list(final["classes"]),
        scheme=str(final["scheme"]),
        input=InputConfig(**stored_input),
        info=info,
        path=path,
    )
