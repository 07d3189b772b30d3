"""What a model sees of a sample: a key-frame clip or an apex-flow image.

A representation is a callable ``rep(sample, source, *, train, generator) -> torch.Tensor``;
:class:`~recognizer.data.torch_dataset.ClipDataset` calls it once per item. Randomness (key-frame
jitter, flips) comes only from the generator the dataset passes in, seeded from
(seed, epoch, index); without ``train`` nothing is random.

Normalisation follows the model: build a representation, then
``rep.with_input_config(resolve_input_config(model))`` (see
:mod:`recognizer.data.input_config` for the pixel-scaling convention); ``mer train`` does this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mesynth.flow import apex_flow, flip_apex_flow
from mesynth.keyframes import KeyFrames, get_sampler, sample_key_frames
from recognizer.data.frame_source import FrameSource
from recognizer.data.input_config import INPUT_SCALES, InputConfig
from recognizer.data.samples import Sample

#: Kinetics-400 statistics (RGB) of torchvision's video models: the default when no model's
#: statistics are given.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
#: a training apex-flow image is mirrored when the first uniform draw of its generator is below
#: this (:class:`ApexFlow`; the in-memory path of :mod:`recognizer.data.in_memory` replays it)
FLIP_PROBABILITY = 0.5


def _normalise(
    pixels: np.ndarray, mean: Sequence[float], std: Sequence[float], input_scale: str
) -> torch.Tensor:
    """uint8 ``pixels`` ``(..., C)`` -> float32 ``(C, ...)``, scaled by ``input_scale`` and
    normalised with ``(y - mean) / std`` per channel."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).float()
    x = x.permute(x.dim() - 1, *range(x.dim() - 1))
    multiplier, offset = INPUT_SCALES[input_scale]
    shape = (-1,) + (1,) * (x.dim() - 1)
    m = torch.tensor(mean, dtype=x.dtype).view(shape)
    s = torch.tensor(std, dtype=x.dtype).view(shape)
    return (x * multiplier + offset - m) / s


@dataclass(frozen=True)
class SyntheticFrames:
    """What a representation needs from a synthetic clip (the synthetic remedies render
    exactly this, instead of reading representation settings from configs).

    Attributes:
        mode: store mode of :func:`mesynth.generation.store.select_frames`: ``keyframes``
            (the key frames the representation's own sampling rule picks) or ``onset_apex``
            (the onset and the true apex frame).
        num_frames: key frames per clip (``keyframes``; 2 for ``onset_apex``).
        sampling: the key-frame rule (``uniform``, ``adaptive``, ``onset_apex``).
        size: side ``S`` of the rendered frames (pixels).
        flow_size: side of the apex-flow image computed from the stored onset and apex frames
            (``None``: the representation reads frames, no flow).
        flow_method: the flow method (:func:`mesynth.flow.optical_flow`).
    """

    mode: str
    num_frames: int
    sampling: str
    size: int
    flow_size: int | None = None
    flow_method: str = "auto"


def _model_input(config: InputConfig) -> dict[str, object]:
    """The settings a model's input config fixes in any representation: size, statistics and
    pixel scaling."""
    return {
        "size": config.size,
        "mean": config.mean,
        "std": config.std,
        "input_scale": config.input_scale,
    }


def _check_stats(mean: Sequence[float], std: Sequence[float], input_scale: str) -> None:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values with std > 0; got {mean}, {std}")
    if input_scale not in INPUT_SCALES:
        raise ValueError(f"input_scale must be one of {sorted(INPUT_SCALES)}, got {input_scale!r}")


class Representation:
    """A rule that turns a sample into a model input:
    ``representation(sample, source, train=..., generator=...)``.

    Subclasses define :meth:`tensor`; training draws (key-frame jitter, flips) come from
    ``generator``, and only when ``train`` (evaluation is deterministic).
    """

    def __call__(
        self,
        sample: Sample,
        source: FrameSource,
        *,
        train: bool = False,
        generator: np.random.Generator | None = None,
    ) -> torch.Tensor:
        return self.tensor(sample, source, generator if train else None)

    def tensor(
        self, sample: Sample, source: FrameSource, generator: np.random.Generator | None
    ) -> torch.Tensor:
        """The input of ``sample``; ``generator`` draws the training variations (``None``:
        none)."""
        raise NotImplementedError


class KeyFrameClip(Representation):
    """T key frames of a clip as ``(C=3, T, H=size, W=size)`` float32, normalised.

    Args:
        num_frames: T.
        size: output side in pixels (frames are resized with area interpolation when needed).
        sampling: ``"uniform"``, ``"adaptive"`` or ``"onset_apex"`` (see
            :mod:`mesynth.keyframes`).
        mean, std: per-channel normalisation after the pixel scaling.
        input_scale: ``"unit"`` (pixels to [0, 1]) or ``"symmetric"`` (to [-1, 1]).
        flip: mirror left-right with probability 0.5 when training.
    """

    def __init__(
        self,
        num_frames: int = 16,
        size: int = 112,
        sampling: str = "uniform",
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        input_scale: str = "unit",
        flip: bool = True,
    ) -> None:
        get_sampler(sampling)
        _check_stats(mean, std, input_scale)
        if num_frames < 1 or size < 1:
            raise ValueError(f"num_frames and size must be positive; got {num_frames}, {size}")
        self.num_frames, self.size, self.sampling = num_frames, size, sampling
        self.mean, self.std, self.input_scale = tuple(mean), tuple(std), input_scale
        self.flip = flip

    def with_input_config(self, config: InputConfig) -> KeyFrameClip:
        """The same representation with the size, clip length, scaling and statistics of
        ``config`` (e.g. :func:`~recognizer.data.input_config.resolve_input_config` of a model).

        Raises:
            ValueError: ``config`` is of a 2D model (``num_frames`` is ``None``).
        """
        if config.num_frames is None:
            raise ValueError("config describes a 2D model (num_frames None); use ApexFlow")
        return KeyFrameClip(
            num_frames=config.num_frames,
            sampling=self.sampling,
            flip=self.flip,
            **_model_input(config),
        )

    def key_frames(
        self, sample: Sample, source: FrameSource, generator: np.random.Generator | None
    ) -> KeyFrames:
        """Which frames this representation takes from ``sample``."""
        return sample_key_frames(
            self.sampling,
            source.frame_numbers(sample),
            sample.onset,
            sample.apex_or_middle,
            sample.offset,
            self.num_frames,
            generator,
        )

    def tensor(
        self, sample: Sample, source: FrameSource, generator: np.random.Generator | None
    ) -> torch.Tensor:
        keys = self.key_frames(sample, source, generator)
        frames = source.read(sample, keys.frame_numbers)
        if frames.shape[1:3] != (self.size, self.size):
            frames = np.stack(
                [
                    cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA)
                    for f in frames
                ]
            )
        if self.flip and generator is not None and generator.random() < 0.5:
            frames = frames[:, :, ::-1]
        return _normalise(frames, self.mean, self.std, self.input_scale)

    def synthetic_frames(self) -> SyntheticFrames:
        """Synthetic clips for this representation: the key frames of its own sampling rule
        (the store keeps what the rule picks from the full-rate clip), at its size."""
        return SyntheticFrames("keyframes", max(self.num_frames, 2), self.sampling, self.size)


class ApexFlow(Representation):
    """The apex-flow image ``(C=3, H=size, W=size)`` float32: channels (u, v, strain).

    Computed from the onset and apex frames of the source (:func:`mesynth.flow.apex_flow`,
    memoised per sample since it is deterministic), or read as is when the sample is a single
    image (apex-flow images made elsewhere, via the ``manifest`` loader).

    Convention: each channel of the image is min-max scaled per sample to 0–255 (see
    :func:`mesynth.flow.apex_flow`); the model's pixel scaling and statistics apply
    after that. STSTNet declares ``unit`` with mean 0 and std 1, so it sees the flow image in
    [0, 1], as in its reference code.

    Args:
        size: output side (28 for STSTNet).
        method: ``"auto"``, ``"tvl1"`` or ``"farneback"``.
        mean, std: per-channel normalisation after the pixel scaling (default: none).
        input_scale: ``"unit"`` (to [0, 1]) or ``"symmetric"`` (to [-1, 1]).
        flip: mirror when training (left-right flip and u negated).
        render_size: side of synthetic faces the flow is computed on before it is resized to
            ``size`` (:meth:`synthetic_frames`); real crops are typically 112-224 pixels.
    """

    def __init__(
        self,
        size: int = 28,
        method: str = "auto",
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        input_scale: str = "unit",
        flip: bool = True,
        render_size: int = 128,
    ) -> None:
        _check_stats(mean, std, input_scale)
        if size < 4:
            raise ValueError(f"size must be at least 4, got {size}")
        if render_size < 16:
            raise ValueError(f"render_size must be at least 16, got {render_size}")
        self.size, self.method, self.render_size = size, method, render_size
        self.mean, self.std, self.input_scale = tuple(mean), tuple(std), input_scale
        self.flip = flip
        self._memo: dict[tuple[int, str], np.ndarray] = {}

    def with_input_config(self, config: InputConfig) -> ApexFlow:
        """The same representation with the size, scaling and statistics of ``config``
        (its ``num_frames`` does not apply: an apex-flow image has no time axis)."""
        return ApexFlow(
            method=self.method,
            flip=self.flip,
            render_size=self.render_size,
            **_model_input(config),
        )

    def synthetic_frames(self) -> SyntheticFrames:
        """Synthetic clips for this representation: the onset and the true apex frame
        (store mode ``onset_apex``) rendered at ``render_size``, whose apex flow is computed
        with :func:`mesynth.flow.apex_flow` as for real clips, at ``size``."""
        return SyntheticFrames(
            "onset_apex", 2, "onset_apex", self.render_size, self.size, self.method
        )

    def image(self, sample: Sample, source: FrameSource) -> np.ndarray:
        """``(size, size, 3)`` uint8 apex-flow image of ``sample``."""
        key = (id(source), sample.uid)
        if key not in self._memo:
            self._memo[key] = self._compute(sample, source)
        return self._memo[key]

    def views(
        self, sample: Sample, source: FrameSource
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(plain, mirrored)``: ``(C, H, W)`` tensors of ``sample`` exactly as a call gives
        them without and with the flip (``mirrored`` is ``None`` when ``flip`` is off).

        This is what :mod:`recognizer.data.in_memory` keeps to train without calling the
        representation per item: a training item is ``mirrored`` when the first uniform draw of
        its generator is below :data:`FLIP_PROBABILITY`, as in :meth:`__call__`.
        """
        image = self.image(sample, source)
        plain = _normalise(image, self.mean, self.std, self.input_scale)
        if not self.flip:
            return plain, None
        return plain, _normalise(flip_apex_flow(image), self.mean, self.std, self.input_scale)

    def _compute(self, sample: Sample, source: FrameSource) -> np.ndarray:
        numbers = source.frame_numbers(sample)
        if len(numbers) == 1:  # a precomputed image
            image = source.read(sample, numbers)[0]
            return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        pair = sample_key_frames(
            "onset_apex", numbers, sample.onset, sample.apex_or_middle, sample.offset, 2
        )
        onset, apex = source.read(sample, pair.frame_numbers)
        return apex_flow(onset, apex, self.size, self.method)

    def tensor(
        self, sample: Sample, source: FrameSource, generator: np.random.Generator | None
    ) -> torch.Tensor:
        image = self.image(sample, source)
        if self.flip and generator is not None and generator.random() < FLIP_PROBABILITY:
            image = flip_apex_flow(image)
        return _normalise(image, self.mean, self.std, self.input_scale)
