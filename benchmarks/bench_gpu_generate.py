"""Generation on one device (CUDA by default): render and store throughput, memory, agreement.

Sections (each a markdown table on stdout, and in ``--out``; raw numbers in ``--json``):

    render:      rendered clips/s at S x S, 16 key-frames, per batch size (best of
                 ``--repeats``); parameters are drawn before the timer, identities registered
                 once; the time includes the copy back to host uint8 arrays.
    memory:      peak device memory rendering N and 4 N clips with one batch size (flat in the
                 number of clips when the ratio is about 1). CUDA only.
    agreement:   the same clips rendered on the CPU and on the device, realism off and on:
                 largest and mean absolute uint8 difference. CUDA only.
    determinism: the same parameters rendered twice on the device (two batch sizes), and a
                 small store generated twice: are the bytes equal?
    store:       ``mesynth.generation.pipeline.generate`` end to end into a clip store on disk
                 (balanced dfme7 plan, npy, realism off as ``mesynth generate`` defaults):
                 written clips/s, wall time, resident host memory before and after. Stops at
                 ``--deadline-s`` and reports what it wrote.

Identities are the built-in portraits resized to the crop with the canonical landmarks, so no
landmark detector runs (a one-off cost per identity, not per clip).

    python benchmarks/bench_gpu_generate.py --device cuda --out generate.md --json generate.json
    python benchmarks/bench_gpu_generate.py --device cpu --preset smoke     # seconds, on a CPU
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLASSES_SCHEME = "dfme7"


@dataclass(frozen=True)
class Preset:
    size: int
    frames: int
    render_clips: int
    batch_sizes: tuple[int, ...]
    memory_clips: int
    agreement_clips: int
    determinism_clips: int
    store_clips: int
    store_batch: int
    deadline_s: float
    repeats: int


PRESETS = {
    "full": Preset(224, 16, 2048, (32, 64, 128, 256), 512, 32, 64, 10_000, 64, 100.0, 2),
    "smoke": Preset(48, 4, 8, (4,), 4, 2, 4, 14, 4, 30.0, 1),
}


class _StoreDeadlineError(Exception):
    """Raised from generate's per-clip hook once the store section's time is up."""


def builtin_faces(size: int) -> list:
    """The built-in portraits as ``size`` x ``size`` identities with canonical landmarks."""
    import cv2

    from mesynth.face.canonical import canonical_landmarks
    from mesynth.face.identities import Identity, builtin_images

    faces = []
    for name, image in builtin_images().items():
        side = min(image.shape[:2])
        crop = cv2.resize(image[:side, :side], (size, size), interpolation=cv2.INTER_AREA)
        faces.append(Identity(name, crop, canonical_landmarks(size), "builtin"))
    return faces


def _parts(n_clips: int, seed: int = 0):
    from mesynth.generation.balance import equal
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import TimingSampler
    from mesynth.templates.bank import TemplateBank

    bank = TemplateBank.expert(CLASSES_SCHEME)
    plan = equal(math.ceil(n_clips / len(bank.emotions)), list(bank.emotions), seed=seed)
    return bank, MotionModel.expert(), TimingSampler(fps=200), plan


def sample_params(faces: Sequence, n_clips: int, frames: int, realism: str | None) -> list:
    """``n_clips`` clip parameters (16 key-frames at 200 fps in the full preset)."""
    from mesynth.calibration.profile_effects import resolve_effects
    from mesynth.generation.pipeline import sample_clip_parameters

    bank, _, timing, plan = _parts(n_clips)
    effects = resolve_effects(realism)
    return [
        sample_clip_parameters(
            clip,
            bank=bank,
            identity_names=[f.name for f in faces],
            timing_sampler=timing,
            realism=effects,
            num_frames=frames,
        )
        for clip in plan.clips()[:n_clips]
    ]


def _warper(faces: Sequence, device: str):
    from mesynth.render.warp import FaceWarper

    warper = FaceWarper(device)
    for face in faces:
        warper.add_identity(face.name, face.image, face.landmarks)
    return warper


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def render_all(params: Sequence, faces: Sequence, warper, batch: int) -> list[np.ndarray]:
    from mesynth.generation.pipeline import render_clips
    from mesynth.motion.au_basis import MotionModel

    by_name = {f.name: f for f in faces}
    motion = MotionModel.expert()
    out: list[np.ndarray] = []
    for start in range(0, len(params), batch):
        out += render_clips(params[start : start + batch], by_name, motion, warper)
    return out


def render_section(p: Preset, device: str, faces: Sequence) -> list[dict]:
    params = sample_params(faces, p.render_clips, p.frames, None)
    warper = _warper(faces, device)
    render_all(params[: p.batch_sizes[0]], faces, warper, p.batch_sizes[0])  # warm-up
    rows = []
    for batch in p.batch_sizes:
        times = []
        for _ in range(p.repeats):
            _sync(device)
            start = time.perf_counter()
            render_all(params, faces, warper, batch)
            _sync(device)
            times.append(time.perf_counter() - start)
        best = min(times)
        rows.append(
            {
                "batch": batch,
                "clips": len(params),
                "seconds": best,
                "clips_per_s": len(params) / best,
                "frames_per_s": len(params) * p.frames / best,
            }
        )
    return rows


def memory_section(p: Preset, device: str, faces: Sequence) -> list[dict]:
    if not device.startswith("cuda"):
        return []
    warper = _warper(faces, device)
    batch = p.batch_sizes[len(p.batch_sizes) // 2]
    rows = []
    for n in (p.memory_clips, 4 * p.memory_clips):
        params = sample_params(faces, n, p.frames, None)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        render_all(params, faces, warper, batch)
        torch.cuda.synchronize()
        rows.append(
            {"clips": n, "batch": batch, "peak_mb": torch.cuda.max_memory_allocated() / 2**20}
        )
    return rows


def agreement_section(p: Preset, device: str, faces: Sequence) -> list[dict]:
    if not device.startswith("cuda"):
        return []
    rows = []
    for realism in ("none", "full"):
        params = sample_params(faces, p.agreement_clips, p.frames, realism)
        cpu = np.stack(render_all(params, faces, _warper(faces, "cpu"), 8)).astype(np.int16)
        dev = np.stack(render_all(params, faces, _warper(faces, device), 8)).astype(np.int16)
        diff = np.abs(cpu - dev)
        rows.append(
            {
                "realism": realism,
                "clips": len(params),
                "max_abs_diff": int(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                "pixels_differing": float((diff > 0).mean()),
            }
        )
    return rows


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _store_digest(root: Path) -> str:
    h = hashlib.sha1()
    for path in sorted((root / "clips").glob("*.npy")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _generate(p: Preset, device: str, faces, out: Path, n: int, batch: int, deadline_s: float):
    from mesynth.generation.pipeline import generate

    bank, motion, timing, plan = _parts(n)
    written = 0
    stop_at = time.perf_counter() + deadline_s

    def on_clip(_params) -> None:
        nonlocal written
        written += 1
        if time.perf_counter() > stop_at:
            raise _StoreDeadlineError

    start = time.perf_counter()
    complete = True
    try:
        generate(faces, bank, motion, timing, plan, out, num_frames=p.frames, device=device,
                 batch_size=batch, progress=False, on_clip=on_clip)  # fmt: skip
    except _StoreDeadlineError:
        complete = False
    return written, time.perf_counter() - start, complete, plan.total


def determinism_section(p: Preset, device: str, faces: Sequence, work: Path) -> list[dict]:
    params = sample_params(faces, p.determinism_clips, p.frames, "full")
    warper = _warper(faces, device)
    first = _digest(render_all(params, faces, warper, p.batch_sizes[0]))
    again = _digest(render_all(params, faces, warper, max(1, p.batch_sizes[0] // 2)))
    rows = [{"check": "render twice (two batch sizes)", "equal": first == again}]
    digests = []
    for name in ("det_a", "det_b"):
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        _generate(p, device, faces, root, p.determinism_clips, p.batch_sizes[0], 1e9)
        digests.append(_store_digest(root))
        shutil.rmtree(root, ignore_errors=True)
    rows.append({"check": "store generated twice (npy bytes)", "equal": digests[0] == digests[1]})
    return rows


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_section(p: Preset, device: str, faces: Sequence, work: Path, keep: bool) -> list[dict]:
    root = work / f"store{p.size}"
    shutil.rmtree(root, ignore_errors=True)
    # a 224² 16-frame npy clip is 2.4 MB: keep the store within 80 % of the free disk
    clip_bytes = p.frames * p.size * p.size * 3 + 4096
    fits = int(0.8 * shutil.disk_usage(work).free / clip_bytes)
    n_clips = min(p.store_clips, fits)
    rss_before = _rss_mb()
    written, seconds, complete, planned = _generate(
        p, device, faces, root, n_clips, p.store_batch, p.deadline_s
    )
    size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    row = {
        "asked": p.store_clips,
        "planned": planned,
        "written": written,
        "complete": complete,
        "batch": p.store_batch,
        "seconds": seconds,
        "clips_per_s": written / seconds if seconds > 0 else 0.0,
        "projected_s_for_planned": planned * seconds / max(written, 1),
        "store_mb": size_mb,
        "rss_mb_before": rss_before,
        "rss_mb_after": _rss_mb(),
    }
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return [row]


def _table(title: str, rows: list[dict], note: str = "") -> str:
    if not rows:
        return f"### {title}\n\nskipped: no CUDA\n"
    keys = list(rows[0])

    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1 else f"{v:.1f}"
        return str(v)

    lines = [f"### {title}", ""] + ([note, ""] if note else [])
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def common_arguments(description: str, sections: str) -> argparse.ArgumentParser:
    """The options both GPU benchmarks take: device, preset, sections, work folder, outputs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    parser.add_argument("--preset", default="auto", choices=("auto", "full", "smoke"),
                        help="sizes; auto: full on CUDA, smoke on a CPU")  # fmt: skip
    parser.add_argument("--sections", default=sections)
    parser.add_argument("--work", type=Path, default=Path("/tmp/mesynth_gpu_bench"))
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    return parser


def device_and_preset(args: argparse.Namespace) -> tuple[str, str]:
    """``(device, preset name)``: ``auto`` picks CUDA when present, and the full preset there."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    preset = args.preset
    if preset == "auto":
        preset = "full" if device.startswith("cuda") else "smoke"
    return device, preset


class SectionReport:
    """Runs benchmark sections one by one, prints each table and rewrites the Markdown and JSON
    outputs after every section, so a run cut short still leaves what it measured."""

    def __init__(self, header: str, results: dict, out: Path | None, json_out: Path | None):
        self.text, self.results, self.failed = [header, ""], results, []
        self.out, self.json_out = out, json_out

    def run(self, name: str, section: Callable[[], list[dict]], note: str = "") -> list[dict]:
        start = time.perf_counter()
        try:
            rows = section()
        except Exception as err:  # one broken section must not hide the others' numbers
            self.failed.append(name)
            rows = [{"error": f"{type(err).__name__}: {err}"}]
        self.results[name] = rows
        table = _table(f"{name} ({time.perf_counter() - start:.1f} s)", rows, note)
        print(table, flush=True)
        self.text.append(table)
        if self.out:
            self.out.write_text("\n".join(self.text))
        if self.json_out:
            self.json_out.write_text(json.dumps(self.results, indent=1))
        return rows

    def exit_code(self) -> int:
        if self.failed:
            print(f"failed sections: {', '.join(self.failed)}", file=sys.stderr)
        return 1 if self.failed else 0


SECTIONS = ("render", "memory", "agreement", "determinism", "store")


def main(argv: Sequence[str] | None = None) -> int:
    parser = common_arguments(__doc__.splitlines()[0], ",".join(SECTIONS))
    parser.add_argument("--store-clips", type=int, help="clips of the store section")
    parser.add_argument("--deadline-s", type=float, help="stop the store section after this")
    parser.add_argument("--keep-store", action="store_true", help="leave the store on disk")
    args = parser.parse_args(argv)
    device, preset_name = device_and_preset(args)
    p = PRESETS[preset_name]
    overrides = {"store_clips": args.store_clips, "deadline_s": args.deadline_s}
    p = Preset(**{**p.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    args.work.mkdir(parents=True, exist_ok=True)
    faces = builtin_faces(p.size)
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    header = (
        f"device {device} ({gpu}), torch {torch.__version__}, preset {preset_name}: "
        f"{p.size}x{p.size}, {p.frames} key-frames, {len(faces)} identities"
    )
    print(header, flush=True)
    results: dict[str, object] = {"device": device, "preset": preset_name, **p.__dict__}
    notes = {
        "render": f"{p.render_clips} clips, realism off, best of {p.repeats}",
        "memory": "peak torch.cuda.max_memory_allocated per run",
        "agreement": "absolute uint8 difference, CPU vs device",
        "store": "generate() into a clip store on local disk (npy, realism off)",
    }
    funcs = {
        "render": lambda: render_section(p, device, faces),
        "memory": lambda: memory_section(p, device, faces),
        "agreement": lambda: agreement_section(p, device, faces),
        "determinism": lambda: determinism_section(p, device, faces, args.work),
        "store": lambda: store_section(p, device, faces, args.work, args.keep_store),
    }
    report = SectionReport(header, results, args.out, args.json)
    for name in args.sections.split(","):
        report.run(name, funcs[name], notes.get(name, ""))
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
