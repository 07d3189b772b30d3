"""The generation pipeline: plan -> per-clip parameters -> batched rendering -> clip store.

Parameters are drawn first, each clip from its own generator seeded by
:func:`mesynth.generation.balance.clip_seed` ``(global seed, clip index)`` and in a fixed order
(template
instance, identity, timing, realism). Rendering is then a pure function of the parameters, so
clip ``i`` is byte-identical whatever the batch size or shard, and every parameter is written to
``params/<clip_id>.json`` beside the manifest row.

Per-clip landmark displacement at full-rate frame position ``t``::

    D(t) = IOD_px * sum_k intensity_k * curve[t, k] * basis_k   (+ blink lids)

with ``basis = motion.au_basis(instance.aus)`` ``(K, 68, 2)`` in IOD units,
``curve = timing.intensity(frame_numbers)`` ``(T, K)`` and ``IOD_px`` the identity's
inter-ocular distance in crop pixels.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mesynth.calibration.profile_effects import (
    Effects,
    ProfileEffects,
    calibrated_motion,
    resolve_effects,
)
from mesynth.environment import resolve_device
from mesynth.face.canonical import inter_ocular_distance
from mesynth.face.identities import Identity, IdentitySet
from mesynth.generation.balance import BalancePlan, PlanError, PlannedClip, clip_generator
from mesynth.generation.store import (
    ClipStore,
    check_frame_arguments,
    check_store_arguments,
    clip_id_for,
    merge_shards,
    select_frames,
)
from mesynth.render.cpu_remap import default_sampler
from mesynth.render.effects import (
    EffectParams,
    blink_closure,
    blink_displacements,
    changes_brightness,
    compress_frames,
    finish_frames,
    head_affines,
    sample_effects,
    skin_field,
)
from mesynth.render.warp import FaceWarper, WarpRequest
from mesynth.templates.bank import TemplateAU

if TYPE_CHECKING:
    import torch

    from mesynth.calibration.profile import CalibrationProfile
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import Timing, TimingSampler
    from mesynth.templates.bank import TemplateBank, TemplateInstance


def aus_string(aus: Sequence[TemplateAU]) -> str:
    """Canonical AU string (``"6+12"``, ``"L12"``): tokens sorted by code then side."""
    ordered = sorted(aus, key=lambda a: (a.code, a.side or ""))
    return "+".join(f"{a.side or ''}{a.code}" for a in ordered)


@dataclass(frozen=True)
class ClipParameters:
    """Everything that determines one clip.

    Attributes:
        index: position in the plan; ``clip_id`` its zero-padded form.
        seed: the clip's integer seed.
        label: the scheme class.
        identity: name of the identity rendered.
        instance: the sampled template instance (AUs with apex intensities).
        timing: the sampled time course.
        frame_numbers: ``(T,)`` full-rate frame numbers stored.
        realism: per-clip realism parameters.
    """

    index: int
    clip_id: str
    seed: int
    label: str
    identity: str
    instance: TemplateInstance
    timing: Timing
    frame_numbers: np.ndarray
    realism: EffectParams

    @property
    def times_s(self) -> np.ndarray:
        """``(T,)`` seconds since onset of the stored frames."""
        return self.frame_numbers / float(self.timing.fps)

    @property
    def envelope(self) -> np.ndarray:
        """``(T,)`` expression envelope of the stored frames: the largest AU intensity curve
        (0 at onset, 1 at apex; zeros for a clip without AUs). Head and skin motion grow with
        it."""
        curves = np.asarray(self.timing.intensity(self.frame_numbers.astype(np.float64)))
        if curves.ndim != 2 or curves.shape[1] == 0:
            return np.zeros(len(self.frame_numbers))
        return curves.max(axis=1)

    def manifest_row(self) -> dict[str, object]:
        """Values of the manifest columns (the store fills mode and paths)."""
        t = self.timing
        return {
            "clip_id": self.clip_id,
            "identity": self.identity,
            "label": self.label,
            "emotion": self.label,
            "aus": aus_string(self.instance.aus),
            "template_source": self.instance.source,
            "onset": 0,
            "apex": int(t.apex),
            "offset": int(t.n_frames - 1),
            "fps": t.fps,
            "n_frames": int(t.n_frames),
            "frame_numbers": [int(n) for n in self.frame_numbers],
            "seed": self.seed,
        }

    def to_dict(self) -> dict[str, object]:
        """JSON-ready record of every parameter."""
        return {
            "index": self.index,
            "clip_id": self.clip_id,
            "seed": self.seed,
            "label": self.label,
            "identity": self.identity,
            "template": {
                "emotion": self.instance.emotion,
                "source": self.instance.source,
                "subjects": list(self.instance.subjects),
                "aus": [
                    {"code": a.code, "side": a.side, "intensity": float(a.intensity)}
                    for a in self.instance.aus
                ],
            },
            "timing": _plain(self.timing),
            "frame_numbers": [int(n) for n in self.frame_numbers],
            "realism": self.realism.to_dict(),
        }


def _plain(obj: object) -> object:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass(frozen=True)
class ClipSampler:
    """Draws each clip's parameters from its own generator (order: template, identity, timing,
    effects); rendering is then a pure function of them.

    Attributes:
        bank: the template bank.
        identity_names: the identities a clip may get.
        timing_sampler: draws the time course.
        effects: render-time effects (an ``EffectsConfig`` or a ``ProfileEffects``).
        mode, num_frames, sampling: the frames a clip stores (:func:`select_frames`).
        iod_px: identity name -> inter-ocular distance in crop pixels; needed by a
            :class:`~mesynth.calibration.profile_effects.ProfileEffects`, whose sizes are IOD
            units.
    """

    bank: TemplateBank
    identity_names: Sequence[str]
    timing_sampler: TimingSampler
    effects: Effects
    mode: str = "keyframes"
    num_frames: int = 16
    sampling: str = "uniform"
    iod_px: Mapping[str, float] | None = None

    def sample(self, planned: PlannedClip) -> ClipParameters:
        """The parameters of ``planned`` (the same whatever the batch, worker or device)."""
        generator = clip_generator(planned.seed)
        instance = self.bank.sample(planned.label, generator)
        names = self.identity_names
        identity = names[int(generator.integers(len(names)))]
        timing = self.timing_sampler.sample(len(instance.aus), generator)
        n_frames, apex = int(timing.n_frames), int(timing.apex)
        frames = select_frames(self.mode, n_frames, apex, self.num_frames, self.sampling)
        duration_s = timing.n_frames / float(timing.fps)
        if isinstance(self.effects, ProfileEffects):
            if self.iod_px is None or identity not in self.iod_px:
                raise ValueError(f"profile effects need iod_px for identity {identity!r}")
            iod = float(self.iod_px[identity])
            extras = self.effects.sample(duration_s, timing.apex_s, iod, generator)
        else:
            extras = sample_effects(self.effects, duration_s, generator)
        return ClipParameters(
            planned.index,
            clip_id_for(planned.index),
            planned.seed,
            planned.label,
            identity,
            instance,
            timing,
            frames,
            extras,
        )


def sample_clip_parameters(
    planned: PlannedClip,
    *,
    bank: TemplateBank,
    identity_names: Sequence[str],
    timing_sampler: TimingSampler,
    realism: Effects,
    mode: str = "keyframes",
    num_frames: int = 16,
    sampling: str = "uniform",
    iod_px: Mapping[str, float] | None = None,
) -> ClipParameters:
    """One clip's parameters (:class:`ClipSampler` for a single clip; ``realism`` are the
    render-time effects, the name the stored parameters keep)."""
    sampler = ClipSampler(
        bank, identity_names, timing_sampler, realism, mode, num_frames, sampling, iod_px
    )
    return sampler.sample(planned)


def clip_patterns(
    params: ClipParameters, motion: MotionModel, landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A clip's AU motion as ``(patterns, weights)`` for
    :class:`~mesynth.render.warp.WarpRequest`.

    Returns:
        ``patterns`` ``(K, 68, 2)`` pixels: ``IOD_px * intensity_k * basis_k`` per AU;
        ``weights`` ``(T, K)``: the AU intensity curves at the stored frames. Blinks are not
        among them: the renderer draws them as an occlusion (``WarpRequest.blink``).
    """
    aus = params.instance.aus
    frames = params.frame_numbers.astype(np.float64)
    if not aus:
        return np.zeros((0, len(landmarks), 2)), np.zeros((len(frames), 0))
    basis = np.asarray(motion.au_basis(aus), dtype=np.float64)  # (K, 68, 2) IOD units
    scale = np.array([a.intensity for a in aus]) * float(inter_ocular_distance(landmarks))
    weights = np.asarray(params.timing.intensity(frames), dtype=np.float64)  # (T, K)
    return basis * scale[:, None, None], weights


def clip_displacements(
    params: ClipParameters, motion: MotionModel, landmarks: np.ndarray
) -> np.ndarray:
    """Forward landmark displacements of every stored frame, ``(T, 68, 2)`` pixels: the AU
    motion plus the blink's upper-lid descent
    (:func:`~mesynth.render.effects.blink_displacements`)."""
    patterns, weights = clip_patterns(params, motion, landmarks)
    closure = blink_closure(params.realism, params.times_s)
    aus = np.einsum("tk,knd->tnd", weights, patterns)
    return aus + blink_displacements(landmarks, closure)


def render_clips(
    params: Sequence[ClipParameters],
    identities: Mapping[str, Identity],
    motion: MotionModel,
    warper: FaceWarper,
) -> list[np.ndarray]:
    """Render clips with one batched ``grid_sample``; ``(T, H, W, 3)`` uint8 per clip.

    Every identity must already be registered with ``warper`` under its name.
    """
    requests = []
    for p in params:
        face = identities[p.identity]
        envelope = p.envelope
        field = skin_field(p.realism, face.image.shape[:2])
        closure = blink_closure(p.realism, p.times_s)
        requests.append(
            WarpRequest(
                p.identity,
                *clip_patterns(p, motion, face.landmarks),
                head_affines(p.realism, p.times_s, envelope, p.timing.apex_s),
                field,
                envelope if field is not None else None,
                closure if closure.any() else None,
            )
        )
    out: list[np.ndarray] = [np.empty(0, np.uint8)] * len(params)
    # groups without a brightness effect come back rounded (the same values clip by clip)
    rounded = [not changes_brightness(p.realism) for p in params]
    for indices, frames in warper.render_groups(requests, rounded=rounded):
        group = [params[i] for i in indices]
        if frames.is_floating_point():
            for b, (i, p) in enumerate(zip(indices, group)):
                clip = frames[b, : len(p.frame_numbers)]
                out[i] = finish_frames(
                    clip, p.realism, p.frame_numbers, p.times_s, p.seed, overwrite=True
                )
        else:
            quantised = frames.numpy()
            for b, (i, p) in enumerate(zip(indices, group)):
                out[i] = compress_frames(quantised[b, : len(p.frame_numbers)], p.realism)
    return out


@dataclass
class GenerateSummary:
    """What a :func:`generate` call did."""

    out_dir: Path
    planned: int
    written: int
    already_done: int
    seconds: float
    per_class: dict[str, int] = field(default_factory=dict)
    skipped_identities: list[tuple[str, str]] = field(default_factory=list)
    manifest: Path | None = None
    apex_iod: float | None = None

    @property
    def clips_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        lines = [
            f"store: {self.out_dir}",
            f"clips: {self.written} written, {self.already_done} already there, "
            f"{self.planned} planned for this process",
            f"time: {self.seconds:.1f} s ({self.clips_per_second:.2f} clips/s)",
            "per class (written now): "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.per_class.items())),
        ]
        if self.apex_iod is not None:
            lines.append(f"motion: apex_iod {self.apex_iod:.4f} IOD (single AU, intensity 1)")
        if self.manifest is not None:
            lines.append(f"manifest: {self.manifest}")
        lines += [f"skipped identity {path}: {why}" for path, why in self.skipped_identities]
        return "\n".join(lines)


def _fingerprint(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _describe(obj: object) -> object:
    if is_dataclass(obj) and not isinstance(obj, type):
        return _plain(obj)
    state = getattr(obj, "__dict__", None)
    if state is None:
        return repr(obj)
    return {"type": type(obj).__name__} | {
        k: _plain(v) for k, v in state.items() if not k.startswith("_")
    }


def _motion_fingerprint(motion: MotionModel) -> dict[str, object]:
    codes = tuple(int(c) for c in motion.known_codes)
    basis = np.asarray(motion.au_basis([TemplateAU(c, None, 1.0) for c in codes]))
    return {
        "type": type(motion).__name__,
        "apex_iod": float(motion.apex_iod),
        "codes": list(codes),
        "basis": _fingerprint(np.round(basis, 12)),
    }


def generation_config(
    identities: Sequence[Identity],
    bank: TemplateBank,
    motion: MotionModel,
    timing_sampler: TimingSampler,
    plan: BalancePlan,
    *,
    mode: str,
    num_frames: int,
    sampling: str,
    realism: Effects,
    inverse_iterations: int,
    extra: Mapping[str, object] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, object]:
    """Everything that determines the clips' content (hashed by the store).

    Batch size and sharding are deliberately absent: they never change a clip. The device
    enters only through the sampler it selects (``renderer["sampler"]``,
    :func:`~mesynth.render.cpu_remap.default_sampler`): CPU and CUDA frames differ by rounding.
    """
    templates = json.dumps(_plain(list(bank.templates)), sort_keys=True, default=str)
    return {
        "identities": [
            {
                "name": i.name,
                "source": i.source,
                "image": _fingerprint(i.image),
                "landmarks": _fingerprint(np.round(i.landmarks, 6)),
            }
            for i in identities
        ],
        "size": int(identities[0].image.shape[0]),
        "scheme": bank.scheme,
        "templates": hashlib.sha1(templates.encode()).hexdigest()[:16],
        "motion": _motion_fingerprint(motion),
        "timing": _describe(timing_sampler),
        "plan": plan.to_dict(),
        "mode": mode,
        "num_frames": num_frames,
        "sampling": sampling,
        "realism": realism.describe() if isinstance(realism, ProfileEffects) else asdict(realism),
        "renderer": {
            **FaceWarper(inverse_iterations=inverse_iterations).settings(),
            "sampler": default_sampler(device),
        },
        **dict(extra or {}),
    }


def _batches(items: Sequence[PlannedClip], size: int) -> Iterator[Sequence[PlannedClip]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def generate(
    identities: IdentitySet | Sequence[Identity],
    bank: TemplateBank,
    motion: MotionModel,
    timing_sampler: TimingSampler,
    plan: BalancePlan,
    out_dir: str | Path,
    *,
    mode: str = "keyframes",
    num_frames: int = 16,
    sampling: str = "uniform",
    formats: Sequence[str] = ("npy",),
    image_format: str = "jpg",
    jpeg_quality: int = 95,
    effects: Effects | CalibrationProfile | str | Path | None = None,
    device: str = "auto",
    batch_size: int = 16,
    inverse_iterations: int = 1,
    rank: int | None = None,
    world_size: int | None = None,
    extra_config: Mapping[str, object] | None = None,
    progress: bool = True,
    on_clip: Callable[[ClipParameters], None] | None = None,
) -> GenerateSummary:
    """Generate the clips of ``plan`` into a clip store (resumable, shardable).

    Args:
        identities: aligned faces (all the same crop size).
        bank: template bank of the scheme; ``plan`` classes must be among its emotions.
        motion: AU motion model (landmark basis in IOD units).
        timing_sampler: draws each clip's :class:`~mesynth.motion.timing.Timing`.
        plan: classes, counts and per-clip seeds.
        out_dir: the store folder; rerunning with the same arguments resumes.
        mode, num_frames, sampling: what each clip stores
        (:func:`mesynth.generation.store.select_frames`).
        formats, image_format, jpeg_quality: how it is stored
        (:class:`mesynth.generation.store.ClipStore`).
        effects: render-time effects: ``None``/``"none"`` (clean renders), ``"full"`` (every
            effect of :class:`~mesynth.render.effects.EffectsConfig` on), an ``EffectsConfig``,
            or a calibration profile (a :class:`~mesynth.calibration.profile.CalibrationProfile`,
            its YAML path or a :class:`~mesynth.calibration.profile_effects.ProfileEffects`):
            per-clip head, skin, noise, drift and blink values are then drawn from the profile.
            ``motion`` is used as given, also with a profile; to give the median clip the
            profile's apex size, pass
            :func:`~mesynth.calibration.profile_effects.calibrated_motion` (a recipe does this
            with ``motion.apex_iod: profile``, :mod:`mesynth.generation.recipe`).
        device: a device setting of :func:`mesynth.environment.resolve_device` (``"auto"``:
            CUDA when available, GPU ``LOCAL_RANK`` under torchrun).
        batch_size: clips per ``grid_sample`` call (memory/speed only; never changes a clip).
        inverse_iterations: backward-map refinement steps (see :mod:`mesynth.render.warp`).
        rank, world_size: this shard (default ``RANK``/``WORLD_SIZE``); the last shard to
            finish merges the shard manifests into ``manifest.csv``.
        extra_config: more values to hash into ``meta.json`` (e.g. the CLI's settings).
        progress: show a tqdm bar with clips/s.
        on_clip: called after each stored clip (hook for logging and for tests).

    Raises:
        ValueError: a plan class missing from the bank, empty identities or mixed crop sizes,
            ``batch_size`` < 1 or ``inverse_iterations`` < 0.
        mesynth.generation.store.StoreArgumentError: a bad store or key-frame argument.
            Every argument is checked before ``out_dir`` is created.
        mesynth.calibration.profile.ProfileError: a profile path that is missing or malformed.
        mesynth.generation.store.StoreConfigError: ``out_dir`` was made with another configuration.
        mesynth.generation.store.StoreFullError: the disk filled up (finished clips are kept).
    """
    check_store_arguments(formats, mode, image_format, jpeg_quality)
    check_frame_arguments(num_frames, sampling)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if inverse_iterations < 0:
        raise ValueError(f"inverse_iterations must be >= 0, got {inverse_iterations}")
    faces = list(identities.identities if isinstance(identities, IdentitySet) else identities)
    skipped = (
        [(s.path, s.reason) for s in identities.skipped]
        if isinstance(identities, IdentitySet)
        else []
    )
    if not faces:
        raise ValueError("generate needs at least one identity")
    if len({f.image.shape for f in faces}) != 1:
        raise ValueError("identities have different crop sizes; load them with one size")
    unknown = sorted(c for c, n in plan.counts.items() if n and c not in bank.emotions)
    if unknown:
        raise PlanError(
            f"plan classes {unknown} have no templates in the {bank.scheme} bank "
            f"(its emotions: {list(bank.emotions)})"
        )
    realism = resolve_effects(effects)
    warper = FaceWarper(resolve_device(device), inverse_iterations=inverse_iterations)
    config = generation_config(
        faces,
        bank,
        motion,
        timing_sampler,
        plan,
        mode=mode,
        num_frames=num_frames,
        sampling=sampling,
        realism=realism,
        inverse_iterations=inverse_iterations,
        extra=extra_config,
        device=warper.device,
    )
    info = {
        "scheme": bank.scheme,
        "class_names": list(plan.counts),
        "identities": [f.name for f in faces],
        # the person each face shows (copies of one portrait share it); not hashed, so stores
        # written before it was recorded still resume
        "identity_persons": {f.name: f.person for f in faces},
        "identity_landmarks": {f.name: np.round(f.landmarks, 3).tolist() for f in faces},
        "skipped_identities": [{"path": p, "reason": r} for p, r in skipped],
        "n_clips": plan.total,
    }
    layout = dict(formats=formats, mode=mode, image_format=image_format, jpeg_quality=jpeg_quality)
    store = ClipStore(out_dir, config, info=info, rank=rank, world_size=world_size, **layout)
    mine = [c for c in plan.clips() if store.owns(c.index)]
    todo = [c for c in mine if not store.is_finished(clip_id_for(c.index))]
    by_name = {f.name: f for f in faces}
    for face in faces:
        warper.add_identity(face.name, face.image, face.landmarks)
    iods = {f.name: float(inter_ocular_distance(f.landmarks)) for f in faces}
    sampler = ClipSampler(
        bank, [f.name for f in faces], timing_sampler, realism, mode, num_frames, sampling, iods
    )
    per_class: Counter[str] = Counter()
    start = time.perf_counter()
    bar = _progress(len(todo), progress)
    try:
        for batch in _batches(todo, max(1, batch_size)):
            params = [sampler.sample(c) for c in batch]
            for p, clip in zip(params, render_clips(params, by_name, motion, warper)):
                store.write(p.manifest_row(), clip, p.to_dict())
                per_class[p.label] += 1
                bar.update(1)
                if on_clip is not None:
                    on_clip(p)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    manifest = store.finalize()
    if store.world_size > 1:
        manifest = _merge_when_all_done(store)
    return GenerateSummary(
        out_dir=Path(out_dir),
        planned=len(mine),
        written=sum(per_class.values()),
        already_done=len(mine) - len(todo),
        seconds=seconds,
        per_class=dict(per_class),
        skipped_identities=skipped,
        manifest=manifest,
        apex_iod=motion.apex_iod,
    )


def generate_from_profile(
    identities: IdentitySet | Sequence[Identity],
    profile: CalibrationProfile,
    plan: BalancePlan,
    out_dir: str | Path,
    *,
    scheme: str = "dfme7",
    fps: float = 60.0,
    **options: Any,
) -> GenerateSummary:
    """Generate ``plan`` as a calibration profile describes it: the profile's effects, and the
    expert AU motion scaled so the median clip has the profile's apex size
    (:func:`~mesynth.calibration.profile_effects.calibrated_motion`), with the expert template
    bank of ``scheme`` and timing at ``fps``.

    Args:
        identities, plan, out_dir: as :func:`generate`; ``plan`` classes must be among the
            emotions of ``scheme``.
        profile: the calibration profile.
        options: the other keywords of :func:`generate` (``mode``, ``device``, ``progress``...).
    """
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import TimingSampler
    from mesynth.templates.bank import TemplateBank

    bank = TemplateBank.expert(scheme)
    motion = calibrated_motion(MotionModel.expert(), profile, bank)
    return generate(
        identities, bank, motion, TimingSampler(fps=fps), plan, out_dir, effects=profile, **options
    )


def _merge_when_all_done(store: ClipStore) -> Path | None:
    """Mark this shard done; the shard that finds every shard done merges the manifests."""
    marker = store.root / f"shard{store.rank}of{store.world_size}.done"
    marker.write_text("done\n")
    markers = [store.root / f"shard{r}of{store.world_size}.done" for r in range(store.world_size)]
    if all(m.is_file() for m in markers):
        return merge_shards(store.root, remove=False)
    return None


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc="generate", disable=not enabled, smoothing=0.1)
