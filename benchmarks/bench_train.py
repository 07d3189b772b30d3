"""Training throughput (clips/s) and peak memory per model, and clip-loading speed.

Each (model, size, precision) runs in a fresh subprocess so its peak memory is its own: peak
resident memory on CPU, ``torch.cuda.max_memory_allocated`` on CUDA. One training step is SGD
forward + backward + update on random clips ``(B, 3, 16, S, S)``; the first step is warm-up.
Clip loading compares reading a cached uint8 ``(T, H, W, C)`` array with decoding T JPEGs.

    python benchmarks/bench_train.py                 # CPU table (batch 2 at 112², 1 at 224²)
    python benchmarks/bench_train.py --device cuda   # fp32 vs bf16 AMP, batch 16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ("r3d18", "p3d63", "d3d121", "i3d")
SIZES = (112, 224)


def one_run(model_name: str, size: int, batch: int, steps: int, device: str, amp: str) -> dict:
    import torch

    from recognizer.models import create_model

    dev = torch.device(device)
    model = create_model(model_name, 7).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    x = torch.randn(batch, 3, 16, size, size, device=dev)
    y = torch.randint(0, 7, (batch,), device=dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp == "fp16")

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    elapsed = time.perf_counter() - start
    return {"clips_per_s": batch * steps / elapsed, "peak_mb": peak_mb}


def loading_benchmark(frames: int = 16, size: int = 112, clips: int = 20) -> dict[str, float]:
    """Clips/s of reading one cached uint8 array vs decoding ``frames`` JPEG files per clip."""
    import cv2

    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        np.save(root / "clip.npy", clip)
        for t in range(frames):
            cv2.imwrite(str(root / f"img{t}.jpg"), clip[t])
        start = time.perf_counter()
        for _ in range(clips):
            np.load(root / "clip.npy")
        array_rate = clips / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(clips):
            np.stack([cv2.imread(str(root / f"img{t}.jpg")) for t in range(frames)])
        jpeg_rate = clips / (time.perf_counter() - start)
    return {"uint8 array": array_rate, "JPEG decode": jpeg_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--one", nargs=4, metavar=("MODEL", "SIZE", "BATCH", "AMP"))
    args = parser.parse_args()
    if args.one:
        name, size, batch, amp = args.one
        print(json.dumps(one_run(name, int(size), int(batch), args.steps, args.device, amp)))
        return
    precisions = ("none", "bf16") if args.device.startswith("cuda") else ("none",)
    print(f"device {args.device}, {args.steps} timed steps after one warm-up step")
    print("| model | input | batch | precision | clips/s | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        for size in SIZES:
            batch = 16 if args.device.startswith("cuda") else (2 if size == 112 else 1)
            for amp in precisions:
                cmd = [sys.executable, __file__, "--device", args.device, "--steps",
                       str(args.steps), "--one", name, str(size), str(batch), amp]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"| {name} | 16×{size}² | {batch} | {amp} | failed: "
                          f"{out.stderr.strip().splitlines()[-1]} | |")  # fmt: skip
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                precision = "fp32" if amp == "none" else amp
                print(f"| {name} | 16×{size}² | {batch} | {precision} | "
                      f"{r['clips_per_s']:.2f} | {r['peak_mb']:.0f} |", flush=True)  # fmt: skip
    rates = loading_benchmark()
    print("\n| clip loading (16×112², one process) | clips/s |\n|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
