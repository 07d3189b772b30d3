"""The CUDA paths end to end: generating a store on the GPU, and the trainer's AMP and
channels-last steps.

Every test is marked ``gpu`` (skipped without CUDA); ``benchmarks/gpu_check.sh`` runs them on a
GPU machine together with the device-parametrised operation tests.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mesynth.face.canonical import canonical_landmarks
from mesynth.face.identities import Identity
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.templates.bank import TemplateBank
from recognizer.models import create_model
from recognizer.training.trainer import Trainer, TrainerConfig

pytestmark = pytest.mark.gpu

CUDA = "cuda"
SIZE = 32


def _face(name: str, seed: int) -> Identity:
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32), (0, 0), 1)
    image = np.clip(texture * 2 - 128, 0, 255).astype(np.uint8)
    return Identity(name, image, canonical_landmarks(SIZE), f"test:{name}")


def _store(out: Path, device: str, batch_size: int, realism: str) -> dict[str, np.ndarray]:
    generate(
        [_face("anna", 1), _face("ben", 2)],
        TemplateBank.expert("dfme7"),
        MotionModel.expert(apex_iod=0.05),
        TimingSampler(fps=60),
        equal(2, ["happiness", "surprise", "disgust"], seed=3),
        out,
        num_frames=5,
        realism=realism,
        device=device,
        batch_size=batch_size,
        progress=False,
    )
    return {p.name: np.load(p) for p in sorted((out / "clips").glob("*.npy"))}


def test_cuda_store_is_byte_identical_across_runs_and_batch_sizes(tmp_path: Path) -> None:
    first = _store(tmp_path / "a", CUDA, 2, "full")
    second = _store(tmp_path / "b", CUDA, 5, "full")
    assert len(first) == 6 and first.keys() == second.keys()
    for name, clip in first.items():
        assert clip.tobytes() == second[name].tobytes(), name


def test_cuda_clips_match_cpu_clips_within_one_grey_level(tmp_path: Path) -> None:
    cpu = _store(tmp_path / "cpu", "cpu", 4, "none")
    cuda = _store(tmp_path / "cuda", CUDA, 4, "none")
    assert cpu.keys() == cuda.keys()
    for name, clip in cpu.items():
        diff = np.abs(clip.astype(int) - cuda[name].astype(int))
        assert diff.max() <= 1, f"{name}: largest difference {diff.max()} grey levels"


class _RandomClips(torch.utils.data.Dataset):
    """``(x, label, index)`` items: ``(3, 4, 32, 32)`` random clips, labels cycling 0..6."""

    def __init__(self, n: int) -> None:
        self.x = torch.randn(n, 3, 4, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return self.x[index], index % 7, index


def _fit(amp: str) -> Trainer:
    config = TrainerConfig(epochs=1, batch_size=4, amp=amp, device=CUDA, progress=False)
    trainer = Trainer(create_model("r3d18", 7), torch.nn.CrossEntropyLoss(), config)
    trainer.fit(_RandomClips(8))
    return trainer


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_trainer_steps_in_channels_last_on_cuda(amp: str) -> None:
    trainer = _fit(amp)
    assert trainer.amp == amp and trainer.channels_last
    weights = [p for p in trainer.model.parameters() if p.dim() == 5]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in weights)
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    assert np.isfinite(trainer.state.history[0]["loss"])
    pred = trainer.predict(_RandomClips(5))
    assert pred.logits.shape == (5, 7) and pred.logits.dtype == np.float32
    assert np.isfinite(pred.logits).all()


def test_trainer_fp16_scales_the_loss_on_cuda() -> None:
    trainer = _fit("fp16")
    assert trainer.scaler.is_enabled()
    assert np.isfinite(trainer.scaler.get_scale()) and trainer.scaler.get_scale() > 0
    assert np.isfinite(trainer.state.history[0]["loss"])
