"""Recognition models: R3D, P3D, D3D, I3D and STSTNet behind one registry.

``create_model(name, num_classes, **kw)`` builds any of them; ``load_pretrained(model, path)``
fills one from a local weight file.
"""

from recognizer.models.base import ModelConfig
from recognizer.models.registry import (
    UnknownModelError,
    create_model,
    default_learning_rate,
    list_models,
    register_model,
)
from recognizer.models.weights import LoadReport, WeightLoadError, load_pretrained

__all__ = [
    "LoadReport",
    "ModelConfig",
    "UnknownModelError",
    "WeightLoadError",
    "create_model",
    "default_learning_rate",
    "list_models",
    "load_pretrained",
    "register_model",
]
