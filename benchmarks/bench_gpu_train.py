"""Training on one device (CUDA by default): compute-only vs store-fed throughput, GPU busy.

Sections (markdown tables on stdout and in ``--out``; raw numbers in ``--json``):

    compute: the trainer's own training step (``recognizer.training.trainer.Trainer``, SGD,
             channels-last on CUDA) on batches already on the device, so nothing is loaded:
             clips/s and peak memory in fp32 and bf16 AMP, and the AMP speed-up.
    fed:     ``Trainer.fit`` on a ``ClipDataset`` read from a clip store on disk (16 key-frames,
             ``KeyFrameClip`` with training jitter and flips, ``--workers`` loader processes):
             one warm-up epoch, then one timed epoch (the loader's start included, as in every
             epoch of a real run). GPU busy is estimated two ways: the fed rate over the
             compute-only rate, and ``nvidia-smi``'s utilization.gpu sampled every 100 ms
             during the timed epoch.

The store is generated first (``mesynth.generation.pipeline.generate``, built-in identities,
realism off, npy) unless ``--store`` points at one.

    python benchmarks/bench_gpu_train.py --device cuda --out train.md --json train.json
    python benchmarks/bench_gpu_train.py --device cpu --preset smoke     # seconds, on a CPU
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gpu_generate import (
    SectionReport,
    _parts,
    builtin_faces,
    common_arguments,
    device_and_preset,
)

MODEL = "r3d18"
NUM_CLASSES = 7


@dataclass(frozen=True)
class Preset:
    size: int
    frames: int
    batch: int
    steps: int
    store_clips: int
    workers: int


PRESETS = {
    "full": Preset(112, 16, 32, 30, 2048, min(12, max(1, (os.cpu_count() or 2) - 2))),
    "smoke": Preset(32, 4, 2, 2, 8, 2),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _trainer(p: Preset, device: str, amp: str, workers: int = 0):
    from recognizer.models import create_model
    from recognizer.training.trainer import Trainer, TrainerConfig

    config = TrainerConfig(
        epochs=1, batch_size=p.batch, amp=amp, device=device, num_workers=workers, progress=False
    )
    return Trainer(create_model(MODEL, NUM_CLASSES), torch.nn.CrossEntropyLoss(), config)


def compute_section(p: Preset, device: str) -> list[dict]:
    rows = []
    for amp in ("none", "bf16") if device.startswith("cuda") else ("none",):
        trainer = _trainer(p, device, amp)
        dev = trainer.device
        x = torch.randn(p.batch, 3, p.frames, p.size, p.size, device=dev)
        if trainer.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        y = torch.randint(0, NUM_CLASSES, (p.batch,), device=dev)
        batches = [(x, y, None)] * p.steps
        # the trainer's own epoch loop, fed batches that already live on the device
        trainer._train_epoch(trainer.model, batches[:3], 0)  # warm-up (cuDNN plans, allocator)
        _sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        trainer._train_epoch(trainer.model, batches, 0)
        _sync(dev)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "precision": "fp32" if amp == "none" else amp,
                "batch": p.batch,
                "steps": p.steps,
                "clips_per_s": p.batch * p.steps / seconds,
                "ms_per_step": 1000 * seconds / p.steps,
                "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0.0,
            }
        )
    if len(rows) == 2:
        rows.append({"precision": "bf16 / fp32", "batch": p.batch, "steps": p.steps,
                     "clips_per_s": rows[1]["clips_per_s"] / rows[0]["clips_per_s"],
                     "ms_per_step": float("nan"), "peak_mb": float("nan")})  # fmt: skip
    return rows


def make_store(p: Preset, device: str, root: Path) -> Path:
    """A ``p.store_clips`` clip store at ``p.size``, made unless ``root`` already holds one."""
    from mesynth.generation.pipeline import generate

    if (root / "manifest.csv").is_file():
        return root
    bank, motion, timing, plan = _parts(p.store_clips)
    generate(builtin_faces(p.size), bank, motion, timing, plan, root, num_frames=p.frames,
             device=device, batch_size=64, progress=False)  # fmt: skip
    return root


class UtilisationSampler:
    """``nvidia-smi`` utilization.gpu every 100 ms in the background (nothing without it)."""

    def __init__(self, enabled: bool) -> None:
        command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        self._proc = None
        if enabled and shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(
                [*command, "-lms", "100"], stdout=subprocess.PIPE, text=True
            )

    def stop(self) -> list[int]:
        if self._proc is None:
            return []
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        return [int(v) for v in out.split() if v.strip().isdigit()]


def fed_section(p: Preset, device: str, store: Path, compute: list[dict]) -> list[dict]:
    from recognizer.data.representations import KeyFrameClip
    from recognizer.data.torch_dataset import ClipDataset
    from recognizer.datasets import load

    result = load("mesynth", store)
    representation = KeyFrameClip(num_frames=p.frames, size=p.size)
    dataset = ClipDataset(result.samples, result.label_indices("dfme7"), representation,
                          train=True, seed=0)  # fmt: skip
    compute_rate = {r["precision"]: r["clips_per_s"] for r in compute}
    rows = []
    for amp in ("none", "bf16") if device.startswith("cuda") else ("none",):
        trainer = _trainer(p, device, amp, p.workers)
        trainer.fit(dataset)  # warm-up epoch
        trainer.config.epochs = 2
        _sync(trainer.device)
        sampler = UtilisationSampler(trainer.device.type == "cuda")
        start = time.perf_counter()
        trainer.fit(dataset)  # the timed second epoch
        _sync(trainer.device)
        seconds = time.perf_counter() - start
        samples = sampler.stop()
        precision = "fp32" if amp == "none" else amp
        rate = len(dataset) / seconds
        rows.append(
            {
                "precision": precision,
                "clips": len(dataset),
                "workers": p.workers,
                "epoch_s": seconds,
                "clips_per_s": rate,
                "busy_vs_compute": rate / compute_rate.get(precision, float("nan")),
                "smi_util_mean": statistics.fmean(samples) if samples else float("nan"),
                "smi_util_median": statistics.median(samples) if samples else float("nan"),
                "smi_samples": len(samples),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = common_arguments(__doc__.splitlines()[0], "compute,fed")
    parser.add_argument("--workers", type=int, help="loader processes of the fed section")
    parser.add_argument("--store", type=Path, help="clip store to read (made when missing)")
    args = parser.parse_args(argv)
    device, name = device_and_preset(args)
    p = PRESETS[name]
    if args.workers is not None:
        p = Preset(**{**p.__dict__, "workers": args.workers})
    store = args.store or args.work / f"store_train{p.size}"
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    header = (
        f"device {device} ({gpu}), torch {torch.__version__}, preset {name}: {MODEL} "
        f"{p.frames}x{p.size}², batch {p.batch}; cudnn.allow_tf32 "
        f"{torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
        f"{torch.backends.cuda.matmul.allow_tf32}"
    )
    print(header, flush=True)
    results: dict[str, object] = {"device": device, "preset": name, **p.__dict__}
    report = SectionReport(header, results, args.out, args.json)
    compute: list[dict] = []

    def fed() -> list[dict]:
        made = time.perf_counter()
        make_store(p, device, store)
        results["store_seconds"] = time.perf_counter() - made
        return fed_section(p, device, store, compute)

    for section in args.sections.split(","):
        if section == "compute":
            rows = report.run(section, lambda: compute_section(p, device))
            compute = [r for r in rows if "error" not in r]
        else:
            report.run(section, fed)
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
