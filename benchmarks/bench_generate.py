"""Rendering throughput of mesynth vs a naive per-frame TPS baseline; prints a table.

Cases:
    keyframes-224: 16 key-frames per clip, 224 x 224 crops.
    full-112: every frame at 200 fps (about 40-100 frames per clip), 112 x 112 crops.

Methods:
    mesynth: per-identity TPS influence operators (computed inside the timed region, once per
        identity) + the batched backward map of a batch of clips on the field lattice, sampled
        with ``cv2.remap`` on CPU (``mesynth.render.cpu_remap``) and one batched
        ``grid_sample`` on CUDA (``mesynth.generation.pipeline.render_clips``).
    naive: for every frame, solve the TPS (``kornia.geometry.transform.get_tps_transform``) and
        warp that frame alone (``warp_image_tps``).

    mesynth-o1: mesynth with the first-order backward map (``inverse_iterations=0``).

All render the same kind of sampled parameters (expert templates and motion, 200 fps timing,
built-in identities, realism off); the naive baseline renders the first ``--naive-clips`` of
them. The speed-up is computed on frames/s (clip lengths differ in full mode). Each (case,
method, device) gets its peak memory from a fresh subprocess (CPU: max RSS of the process;
CUDA: ``torch.cuda.max_memory_allocated``). Speeds are timed in one process per (case, device),
the methods taking turns, best of ``--repeats`` (the machine may be shared: slower runs
measure the other users, and taking turns exposes every method to the same load).

The machine's 1-minute load average is printed before and after, with the intra-op thread
count (``--threads N`` sets ``torch.set_num_threads(N)`` in every worker, for all methods
alike; by default torch's own choice). On a shared machine the thread count matters as much as
the code: OpenMP threads that wait for a busy core cost every parallel operation a scheduler
tick, and the naive baseline, with many small operations per frame, loses most.

    python benchmarks/bench_generate.py [--clips 32] [--naive-clips 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {"keyframes-224": ("keyframes", 224), "full-112": ("full", 112)}


def _setup(case: str, n_clips: int):
    import numpy as np

    from mesynth.face.canonical import canonical_landmarks
    from mesynth.face.identities import Identity, builtin_images
    from mesynth.generation.balance import equal
    from mesynth.generation.pipeline import sample_clip_parameters
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import TimingSampler
    from mesynth.render.effects import EffectsConfig
    from mesynth.templates.bank import TemplateBank

    mode, size = CASES[case]
    # identities: the built-in portraits resized to the crop with the canonical landmarks, so
    # the benchmark does not depend on (or time) landmark detection
    faces = []
    for name, image in builtin_images().items():
        import cv2

        crop = cv2.resize(image[: min(image.shape[:2]), : min(image.shape[:2])], (size, size))
        faces.append(Identity(name, crop, canonical_landmarks(size), "builtin"))
    bank = TemplateBank.expert("dfme7")
    plan = equal(int(np.ceil(n_clips / len(bank.emotions))), list(bank.emotions), seed=0)
    params = [
        sample_clip_parameters(
            clip,
            bank=bank,
            identity_names=[f.name for f in faces],
            timing_sampler=TimingSampler(fps=200),
            realism=EffectsConfig(),
            mode=mode,
            num_frames=16,
        )
        for clip in plan.clips()[:n_clips]
    ]
    return faces, params, MotionModel.expert()


def _render_mesynth(faces, params, motion, device: str, batch_size: int, iterations: int) -> None:
    from mesynth.generation.pipeline import render_clips
    from mesynth.render.warp import FaceWarper

    warper = FaceWarper(device, inverse_iterations=iterations)
    for face in faces:
        warper.add_identity(face.name, face.image, face.landmarks)
    by_name = {f.name: f for f in faces}
    for start in range(0, len(params), batch_size):
        render_clips(params[start : start + batch_size], by_name, motion, warper)


def _render_naive(faces, params, motion, device: str) -> None:
    import numpy as np
    import torch
    from kornia.geometry.transform import get_tps_transform, warp_image_tps

    from mesynth.generation.pipeline import clip_displacements

    by_name = {f.name: f for f in faces}
    for p in params:
        face = by_name[p.identity]
        size = face.image.shape[0]
        image = torch.from_numpy(face.image).permute(2, 0, 1)[None].float().to(device)
        disp = clip_displacements(p, motion, face.landmarks)
        # kornia's normalised frame (align_corners=False): x_norm = 2 x / W - 1 for our
        # continuous pixel coordinates (pixel centres at +0.5)
        src = torch.from_numpy(face.landmarks * 2 / size - 1)[None].float().to(device)
        for frame in disp:
            dst = torch.from_numpy((face.landmarks + frame) * 2 / size - 1)[None].float()
            dst = dst.to(device)
            kernel, affine = get_tps_transform(dst, src)
            out = warp_image_tps(image, src, kernel, affine, padding_mode="border")
            np.clip(out[0].permute(1, 2, 0).round().cpu().numpy(), 0, 255).astype(np.uint8)


METHODS = ("mesynth", "mesynth-o1", "naive")


def _run_once(method, faces, params, motion, device: str, batch_size: int) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    if method == "naive":
        _render_naive(faces, params, motion, device)
    else:
        iterations = 0 if method == "mesynth-o1" else 1
        _render_mesynth(faces, params, motion, device, batch_size, iterations)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def speed_worker(case: str, device: str, args: argparse.Namespace) -> list[dict]:
    """All methods of one case, timed in turns (so a busy spell of a shared machine hits every
    method alike); best of ``repeats``."""
    setups = {m: _setup(case, args.naive_clips if m == "naive" else args.clips) for m in METHODS}
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for method in METHODS:  # warm-up
        _run_once(method, *setups[method], device, args.batch_size)
    for _ in range(args.repeats):
        for method in METHODS:
            times[method].append(_run_once(method, *setups[method], device, args.batch_size))
    out = []
    for method in METHODS:
        params = setups[method][1]
        frames = sum(len(p.frame_numbers) for p in params)
        seconds = min(times[method])
        out.append(
            {
                "case": case,
                "method": method,
                "device": device,
                "clips": len(params),
                "frames_per_clip": frames / len(params),
                "clips_per_s": len(params) / seconds,
                "frames_per_s": frames / seconds,
            }
        )
    return out


def memory_worker(case: str, method: str, device: str, args: argparse.Namespace) -> float:
    """Peak memory (MB) of one run of one method in this fresh process."""
    import torch

    faces, params, motion = _setup(case, args.naive_clips if method == "naive" else args.clips)
    _run_once(method, faces, params, motion, device, args.batch_size)
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace, *worker: str) -> object:
    command = [sys.executable, __file__, "--worker", *worker]
    command += ["--clips", str(args.clips), "--naive-clips", str(args.naive_clips)]
    command += ["--batch-size", str(args.batch_size), "--repeats", str(args.repeats)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path.cwd())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=64, help="clips rendered by mesynth")
    parser.add_argument("--naive-clips", type=int, default=2, help="clips rendered naively")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", default="auto", help="auto | cpu | cpu,cuda")
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads in every worker (0: torch's)"
    )
    parser.add_argument("--worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        if args.worker[0] == "speed":
            print(json.dumps(speed_worker(args.worker[1], args.worker[2], args)))
        else:
            print(json.dumps(memory_worker(*args.worker[1:4], args)))
        return
    import torch

    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if args.devices != "auto":
        devices = args.devices.split(",")
    threads = args.threads or torch.get_num_threads()
    print(
        f"load average before: {_load()}; torch {torch.__version__}, {threads} threads", flush=True
    )
    results = []
    for case in CASES:
        for device in devices:
            rows = _child(args, "speed", case, device)
            for row in rows:
                row["peak_mb"] = _child(args, "memory", case, row["method"], device)
            results += rows
    header = (
        f"{'case':<14} {'device':<6} {'method':<10} {'clips':>5} {'frames/clip':>11} "
        f"{'clips/s':>9} {'frames/s':>9} {'peak MB':>8} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        naive = next(
            x
            for x in results
            if x["case"] == r["case"] and x["device"] == r["device"] and x["method"] == "naive"
        )
        print(
            f"{r['case']:<14} {r['device']:<6} {r['method']:<10} {r['clips']:>5} "
            f"{r['frames_per_clip']:>11.1f} {r['clips_per_s']:>9.2f} {r['frames_per_s']:>9.1f} "
            f"{r['peak_mb']:>8.0f} {r['frames_per_s'] / naive['frames_per_s']:>8.1f}x"
        )
    print(f"load average after: {_load()}")


def _load() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
