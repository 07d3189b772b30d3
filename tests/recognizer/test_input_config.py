"""The representation normalises with the statistics each model declares."""

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from recognizer.cli import build_representation
from recognizer.data.input_config import InputConfig, resolve_input_config
from recognizer.data.representations import ApexFlow, KeyFrameClip
from recognizer.data.samples import Sample
from recognizer.data.torch_dataset import ClipDataset
from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model, list_models
from recognizer.protocols import create_protocol
from recognizer.training.trainer import TrainerConfig

SIZE, FRAMES = 8, 4
#: uint8 -> float scaling of each convention, written out independently of the library
PIXEL_SCALE = {"unit": (1 / 255, 0.0), "symmetric": (2 / 255, -1.0)}


class ArraySource:
    """A frame source over one fixed ``(T, H, W, 3)`` uint8 array."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def frame_numbers(self, sample: Sample) -> tuple[int, ...]:
        return tuple(range(len(self.frames)))

    def read(self, sample: Sample, numbers: Sequence[int]) -> np.ndarray:
        return self.frames[list(numbers)]


def _sample(num_frames: int) -> Sample:
    return Sample("x", "x/s1", "c1", (), (), 0, num_frames // 2, num_frames - 1, 30.0, "happy")


def _representation(config: InputConfig) -> KeyFrameClip | ApexFlow:
    if config.num_frames is None:  # a 2D model on apex flow
        return ApexFlow(size=config.size, flip=False).with_input_config(config)
    return KeyFrameClip(num_frames=FRAMES, size=SIZE, flip=False).with_input_config(config)


@pytest.mark.parametrize("name", list_models())
def test_each_model_gets_its_own_normalisation(name: str) -> None:
    model = create_model(name, 3)
    declared = model.default_cfg
    config = resolve_input_config(model, {"size": SIZE, "num_frames": FRAMES})
    assert (config.mean, config.std, config.input_scale) == (
        declared.mean, declared.std, declared.input_scale,
    )  # fmt: skip
    pixels = np.random.default_rng(0).integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    frames = pixels if config.num_frames is not None else pixels[:1]
    x = _representation(config)(_sample(len(frames)), ArraySource(frames))
    scale, offset = PIXEL_SCALE[declared.input_scale]
    raw = torch.from_numpy(frames.astype(np.float64)).permute(3, 0, 1, 2)  # (C, T, H, W)
    if config.num_frames is None:
        raw = raw[:, 0]
    shape = (-1,) + (1,) * (raw.dim() - 1)
    mean = torch.tensor(declared.mean, dtype=torch.float64).view(shape)
    std = torch.tensor(declared.std, dtype=torch.float64).view(shape)
    expected = (raw * scale + offset - mean) / std
    assert x.shape == expected.shape
    assert torch.allclose(x.double(), expected, atol=1e-5)


def test_conventions_give_the_documented_ranges() -> None:
    white = np.full((FRAMES, SIZE, SIZE, 3), 255, np.uint8)
    white[:, :, : SIZE // 2] = 0
    source, sample = ArraySource(white), _sample(FRAMES)
    i3d = _representation(resolve_input_config(create_model("i3d", 3)))
    x = i3d(sample, source)
    assert x.min().item() == -1.0 and x.max().item() == 1.0  # I3D: [-1, 1]
    hara = resolve_input_config(create_model("r3d18", 3))
    torchvision = resolve_input_config(create_model("r3d18", 3, stem="torchvision"))
    assert hara.mean != torchvision.mean and hara.std != torchvision.std
    # the model's reference input when nothing is overridden
    p3d = resolve_input_config(create_model("p3d63", 3))
    assert (p3d.size, p3d.num_frames) == (160, 16)
    assert resolve_input_config(create_model("ststnet", 3)).num_frames is None


def test_overrides_win_and_bad_ones_are_named() -> None:
    model = create_model("r3d18", 3)
    config = resolve_input_config(model.default_cfg, {"mean": [0.5] * 3, "size": 64})
    assert config.mean == (0.5, 0.5, 0.5) and config.size == 64
    assert config.std == model.default_cfg.std
    with pytest.raises(ValueError, match="overrides.*'colour'"):
        resolve_input_config(model, {"colour": 1})
    with pytest.raises(ValueError, match="input_scale"):
        resolve_input_config(model, {"input_scale": "percent"})
    with pytest.raises(TypeError, match="model_or_cfg"):
        resolve_input_config("r3d18")  # type: ignore[arg-type]


def test_mer_train_builds_the_representation_from_the_model() -> None:
    cfg = OmegaConf.create(
        {
            "model": {"_target_": "recognizer.models.create_model", "_partial_": True,
                      "name": "i3d"},
            "representation": {"_target_": "recognizer.data.representations.KeyFrameClip",
                               "num_frames": FRAMES, "size": SIZE, "flip": False},
        }
    )  # fmt: skip
    representation, config = build_representation(cfg, num_classes=3)
    assert representation.mean == (0.0, 0.0, 0.0) and representation.input_scale == "symmetric"
    assert (config.size, config.num_frames) == (SIZE, FRAMES)
    cfg.representation.mean = [0.25, 0.25, 0.25]
    representation, _ = build_representation(cfg, num_classes=3)
    assert representation.mean == (0.25, 0.25, 0.25)  # an explicit setting wins


@pytest.mark.parametrize("matching", [True, False])
def test_run_protocol_warns_when_the_representation_ignores_the_model(tmp_path, matching) -> None:
    frames = np.random.default_rng(1).integers(0, 256, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    samples = [
        Sample("x", f"x/s{i % 4}", f"c{i}", (), (), 0, 1, FRAMES - 1, 30.0, "happy")
        for i in range(8)
    ]

    def model_factory(k: int) -> torch.nn.Module:
        return create_model("r3d18", k, widths=(4, 4, 4, 4))

    representation = KeyFrameClip(num_frames=FRAMES, size=SIZE)  # torchvision's statistics
    if matching:
        representation = representation.with_input_config(resolve_input_config(model_factory(2)))

    def factory(subset, labels, train):
        return ClipDataset(subset, labels, representation, train=train, source=ArraySource(frames))

    run = {
        "protocol": create_protocol("kfold", n_splits=2, stratified=False),
        "dataset_factory": factory,
        "model_factory": model_factory,
        "remedy": "none",
        "trainer_config": TrainerConfig(epochs=1, batch_size=4, lr=0.01, device="cpu",
                                        progress=False),
        "out_dir": tmp_path,
    }  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_protocol(samples, [i % 2 for i in range(8)], **run)
    messages = [str(w.message) for w in caught if "declares" in str(w.message)]
    if matching:
        assert not messages
    else:
        assert messages and "model 'r3d18' declares ((0.4345" in messages[0]
