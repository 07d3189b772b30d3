"""One registry of recognition models: ``create_model(name, num_classes, **kw)``.

Every builder is listed here explicitly, so a model is available as soon as
``recognizer.models`` is imported: there is nothing to remember to import.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from recognizer.models.d3d import build_d3d, remap_d3d_keys
from recognizer.models.i3d import I3D, remap_i3d_keys
from recognizer.models.p3d import build_p3d
from recognizer.models.r3d import build_r3d, remap_r3d_keys
from recognizer.models.ststnet import STSTNet

KeyRemap = Callable[[dict], dict]


def _identity(state_dict: dict) -> dict:
    return state_dict


#: name -> (builder(**kw), remap of foreign weight-file keys to the model's names)
_MODELS: dict[str, tuple[Callable[..., nn.Module], KeyRemap]] = {
    "r3d18": (partial(build_r3d, depth=18), remap_r3d_keys),
    "r3d34": (partial(build_r3d, depth=34), remap_r3d_keys),
    "r3d50": (partial(build_r3d, depth=50), remap_r3d_keys),
    "p3d63": (partial(build_p3d, depth=63), _identity),
    "d3d121": (partial(build_d3d, depth=121), remap_d3d_keys),
    "i3d": (I3D, remap_i3d_keys),
    "ststnet": (STSTNet, _identity),
}

#: Initial learning rates of the DFME benchmark (SGD, momentum 0.9, batch 32), by family.
DFME_LEARNING_RATES = {"r3d": 0.005, "p3d": 0.01, "d3d": 0.05, "i3d": 0.005}


class UnknownModelError(KeyError):
    """A model name that is not registered; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def _entry(name: str) -> tuple[Callable[..., nn.Module], KeyRemap]:
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known models: {', '.join(list_models())}"
        ) from None


def create_model(name: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :func:`list_models` (``r3d18``, ``p3d63``, ``d3d121``, ``i3d``,
            ``ststnet``, ...).
        num_classes: classifier outputs.
        **kwargs: builder keywords, e.g. ``stem="torchvision"`` or ``widths=(8, 16, 32, 64)``
            for R3D, ``dropout=0.5``, ``norm_layer=...``.

    Raises:
        UnknownModelError: ``name`` is not registered (the message lists the known names).
    """
    builder, _ = _entry(name)
    return builder(num_classes=num_classes, **kwargs)


def register_model(name: str, builder: Callable[..., nn.Module], remap: KeyRemap = _identity):
    """Add a builder under ``name`` (``builder(num_classes=..., **kw) -> nn.Module``)."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = (builder, remap)


def key_remap(name: str) -> KeyRemap:
    """The function that renames a foreign weight file's keys for model ``name``."""
    return _entry(name)[1]


def default_learning_rate(name: str) -> float | None:
    """The DFME benchmark's initial SGD learning rate for ``name``'s family, if it has one."""
    for family, lr in DFME_LEARNING_RATES.items():
        if name.startswith(family):
            return lr
    return None
