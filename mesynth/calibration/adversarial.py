"""Adversarial calibration: search the generator's realism settings until a domain classifier
can no longer tell its apex flows from real ones.

:func:`adversarial_calibration` runs an optuna study (seeded TPE, a fixed trial budget). Each
trial turns its parameters into a :class:`~mesynth.calibration.profile.CalibrationProfile`
(:func:`profile_from_parameters`), renders a few small clips with it in memory (onset and apex
frames only, the same clip seeds in every trial so trials differ only by their parameters),
computes their apex flow, average-pools it and adds its texture statistics
(:func:`search_features`), and runs the grouped domain-classifier test
(:func:`~mesynth.evaluation.domain_test.domain_classifier_test`) against the same features of
the real clips. The objective is ``|balanced accuracy - 0.5|``: an accuracy well below 0.5 is as
telling as one above.

Searched quantities (:data:`DEFAULT_SPACE`, log-uniform ranges): the apex size, head motion
(translation, rotation, scale), skin motion (RMS and correlation length), sensor noise and
brightness drift; the rest of the profile (framing, blink rate, the spreads' widths) comes from
``base``. The best trial is saved as ``profile.yaml``, which ``mesynth generate`` reads with
``recipe/effects=profile recipe.effects.path=... recipe.motion.apex_iod=profile``; its
``source`` names the real subjects the search saw, so a later split can check for leakage.

Resumable through the shared trial runner (:class:`mesynth.calibration.trials.TrialSearch`):
a rerun with the same settings continues from ``trials/trial_NNNN.json`` (a larger ``trials``
extends the search) and proposes what an uninterrupted search would; other settings are refused,
naming them.

Convention:
    Sizes in IOD units (see :mod:`mesynth.calibration.profile`); features are apex-flow images
    ``(size, size, 3)`` in ``[0, 1]`` pooled to ``(pool, pool, 3)`` and flattened, plus 12
    texture statistics; with ``representation="clip"`` the images are the ``T - 1`` key-frame
    differences ``(size, size, T - 1)`` in ``[-1, 1]`` of
    :mod:`mesynth.calibration.clip_features`, pooled alike, plus ``4 (T - 1)`` statistics.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import optuna
import pandas as pd

from mesynth.calibration.clip_features import (
    REPRESENTATIONS,
    frame_differences,
    key_frame_clip_image,
    key_frame_positions,
)
from mesynth.calibration.framing_search import (
    FRAMING_PARAMETERS,
    framing_changes,
    framing_distribution,
    reframe_identities,
    with_framing,
)
from mesynth.calibration.measure import face_framing
from mesynth.calibration.profile import SPREADS, CalibrationProfile, Framing, Spread
from mesynth.calibration.profile_effects import ProfileEffects, apex_size_ratio
from mesynth.calibration.trials import SAMPLERS, TrialSearch, TrialSettingsError, history_frame
from mesynth.evaluation.domain_test import domain_classifier_test
from mesynth.evaluation.features import ApexFlowFeature
from mesynth.face.canonical import canonical_landmarks, inter_ocular_distance
from mesynth.face.identities import Identity, IdentitySet
from mesynth.flow import apex_flow
from mesynth.generation.balance import BalancePlan, equal
from mesynth.generation.pipeline import ClipSampler, generation_config, render_clips
from mesynth.generation.recipe import GenerationParts, GenerationRecipe
from mesynth.motion.au_basis import MotionModel
from mesynth.records import record_name
from mesynth.render.warp import FaceWarper

#: searched profile medians and their log-uniform ranges (IOD units, degrees, grey levels, /s).
DEFAULT_SPACE: dict[str, tuple[float, float]] = {
    "apex_peak_iod": (0.01, 0.3),
    "head_translation_iod": (1e-3, 0.1),
    "head_rotation_deg": (0.02, 4.0),
    "head_scale": (1e-4, 0.03),
    "residual_rms_iod": (1e-3, 0.1),
    "residual_correlation_iod": (0.05, 1.0),
    "noise_sigma": (0.1, 12.0),
    "brightness_drift_per_s": (1e-3, 0.5),
}
#: quartiles of a searched spread relative to its median when ``base`` has none.
DEFAULT_QUARTILES = (0.8, 1.25)


class AdversarialSearchError(ValueError):
    """A search cannot run or continue (bad argument, ``out_dir`` made with other settings)."""


@dataclass(frozen=True)
class AdversarialResult:
    """What :func:`adversarial_calibration` found and wrote.

    Attributes:
        profile: the best trial's profile (``source`` records the search and the real subjects).
        profile_path: ``out_dir/profile.yaml``.
        best_trial, best_accuracy: the best trial's number and balanced accuracy.
        history: one row per trial: ``trial``, ``accuracy``, ``objective``, ``seconds``,
            ``best_accuracy`` (of the best trial so far) and one column per parameter.
        history_path, figure_path: ``out_dir/history.csv`` and ``out_dir/history.png``.
        resumed: trials read back from an earlier run.
        seconds: wall time of the trials run now.
    """

    profile: CalibrationProfile
    profile_path: Path
    best_trial: int
    best_accuracy: float
    history: pd.DataFrame
    history_path: Path
    figure_path: Path
    resumed: int
    seconds: float


def _canonical_framing(size: int = 224) -> Framing:
    """Eye and mouth placement of the canonical aligned crop (:mod:`mesynth.face.canonical`)."""
    measured = face_framing(canonical_landmarks(size), (size, size))
    return Framing(
        right_eye=tuple(float(v) for v in measured["right_eye"]),
        left_eye=tuple(float(v) for v in measured["left_eye"]),
        mouth=tuple(float(v) for v in measured["mouth"]),
        iod_fraction=float(measured["iod_fraction"]),
    )


def quiet_profile() -> CalibrationProfile:
    """A profile with every effect at zero, the canonical framing and no blinks (the default
    ``base`` of the search)."""
    return CalibrationProfile.quiet(_canonical_framing())


def profile_from_parameters(
    base: CalibrationProfile, parameters: Mapping[str, float]
) -> CalibrationProfile:
    """``base`` with the median of each named spread set to ``parameters[name]``.

    The quartiles keep ``base``'s ratios to its median (:data:`DEFAULT_QUARTILES` where
    ``base``'s median is zero). Framing parameters (``framing_offset_x``, ``framing_offset_y``,
    ``framing_scale``: :mod:`mesynth.calibration.framing_search`) move ``base``'s framing.

    Raises:
        AdversarialSearchError: a name that is not a spread of the profile, or a value <= 0.
    """
    framing = framing_changes(parameters)
    changes = {}
    for name, value in parameters.items():
        if name in framing:
            continue
        if name not in SPREADS:
            raise AdversarialSearchError(
                f"search parameter {name!r} is not a profile spread (known: {SPREADS})"
            )
        if not value > 0:
            raise AdversarialSearchError(f"search parameter {name!r} must be > 0, got {value}")
        old: Spread = getattr(base, name)
        low, high = (
            (old.q25 / old.median, old.q75 / old.median) if old.median > 0 else DEFAULT_QUARTILES
        )
        changes[name] = Spread(float(value), float(value) * low, float(value) * high, 0)
    profile = dataclasses.replace(base, **changes)
    return with_framing(profile, framing) if framing else profile


def record_features(
    records: Sequence[object],
    size: int = 28,
    pool: int = 4,
    flow_method: str = "farneback",
    *,
    representation: str = "apex_flow",
    num_frames: int = 4,
    keyframe_sampling: str = "uniform",
) -> tuple[np.ndarray, np.ndarray]:
    """Search features (:func:`search_features`) of clip records and their domain-test groups.

    Args:
        representation: ``"apex_flow"`` (the ``(size, size, 3)`` apex-flow image) or ``"clip"``
            (the ``(size, size, num_frames - 1)`` key-frame differences of
            :mod:`mesynth.calibration.clip_features`, frames picked by ``keyframe_sampling``).

    Returns:
        ``(N, pool * pool * C + 4 * C)`` float32 features (``C`` = 3 for apex flow,
        ``num_frames - 1`` for clips) and ``(N,)`` groups (``identity``, else ``subject``), as
        the search computes them for the real clips.
    """
    if representation == "clip":
        images = np.stack(
            [key_frame_clip_image(r, num_frames, size, keyframe_sampling) for r in records]
        )
    else:
        feature = ApexFlowFeature(size=size, method=flow_method)
        images = np.stack([feature(r) for r in records])
    groups = np.array([str(getattr(r, "identity", None) or r.subject) for r in records])
    return search_features(images, pool), groups


def _flow_statistics(images: np.ndarray) -> np.ndarray:
    """Texture of apex-flow images ``(N, H, W, C)``: per channel the spatial std, the mean
    absolute difference between vertical and between horizontal neighbours, and the median;
    ``(N, 4 * C)``. Pooling averages diffuse low-level motion and noise away; these keep it."""
    vertical = np.abs(np.diff(images, axis=1)).mean((1, 2))
    horizontal = np.abs(np.diff(images, axis=2)).mean((1, 2))
    return np.concatenate(
        [images.std((1, 2)), vertical, horizontal, np.median(images, (1, 2))], axis=1
    )


def search_features(images: np.ndarray, pool: int) -> np.ndarray:
    """The search's domain-classifier input: apex-flow images ``(N, H, W, C)`` area-pooled to
    ``pool x pool`` and flattened, followed by :func:`_flow_statistics`;
    ``(N, pool * pool * C + 4 * C)`` float32."""
    pooled = np.stack(
        [cv2.resize(x, (pool, pool), interpolation=cv2.INTER_AREA).reshape(-1) for x in images]
    )
    return np.concatenate([pooled, _flow_statistics(images)], axis=1).astype(np.float32)


class _TrialRenderer:
    """Renders the trial clips of one profile in memory and returns their pooled apex flow."""

    def __init__(
        self,
        parts: GenerationParts,
        plan: BalancePlan,
        *,
        size: int,
        pool: int,
        flow_method: str,
        device: str,
        inverse_iterations: int,
        batch_size: int,
        representation: str = "apex_flow",
        num_frames: int = 2,
        keyframe_sampling: str = "uniform",
        reframe: bool = False,
    ) -> None:
        faces = parts.identities
        self.faces = list(faces.identities if isinstance(faces, IdentitySet) else faces)
        self.by_name: dict[str, Identity] = {f.name: f for f in self.faces}
        self.iods = {f.name: float(inter_ocular_distance(f.landmarks)) for f in self.faces}
        self.parts, self.plan = parts, plan
        self.size, self.pool, self.flow_method = size, pool, flow_method
        self.batch_size = batch_size
        self.representation, self.num_frames = representation, num_frames
        self.keyframe_sampling = keyframe_sampling
        # with framing parameters, each trial's faces are re-cropped to its profile's framing
        self.reframe = reframe
        self.warper = FaceWarper(device, inverse_iterations=inverse_iterations)
        for face in self.faces:
            self.warper.add_identity(face.name, face.image, face.landmarks)
        self.unit_motion = MotionModel.expert()
        # apex size of the bank's median clip for a unit motion model (converts apex_peak_iod)
        self.ratio = apex_size_ratio(parts.bank, self.unit_motion)

    def features(self, profile: CalibrationProfile) -> tuple[np.ndarray, np.ndarray]:
        """``(N, pool * pool * C + 4 * C)`` features, ``(N,)`` identity groups of the plan's
        clips (``C`` as in :func:`record_features`)."""
        if self.reframe:
            for face in reframe_identities(self.faces, profile.framing.target()):
                self.by_name[face.name] = face
                self.iods[face.name] = float(inter_ocular_distance(face.landmarks))
                self.warper.add_identity(face.name, face.image, face.landmarks)
        motion = self.unit_motion.calibrated(profile.apex_peak_iod.median / self.ratio)
        clip = self.representation == "clip"
        sampler = ClipSampler(
            self.parts.bank,
            [f.name for f in self.faces],
            self.parts.timing,
            ProfileEffects(profile),
            "keyframes" if clip else "onset_apex",
            self.num_frames if clip else 2,
            self.keyframe_sampling if clip else "uniform",
            self.iods,
        )
        clips = list(self.plan.clips())
        images, groups = [], []
        for start in range(0, len(clips), self.batch_size):
            params = [sampler.sample(c) for c in clips[start : start + self.batch_size]]
            for p, frames in zip(params, render_clips(params, self.by_name, motion, self.warper)):
                if clip:
                    images.append(self._clip_image(p, frames))
                else:
                    flow = apex_flow(frames[0], frames[-1], self.size, self.flow_method)
                    images.append(flow.astype(np.float32) / 255.0)
                groups.append(p.identity)
        return search_features(np.stack(images), self.pool), np.array(groups)

    def _clip_image(self, params: object, frames: np.ndarray) -> np.ndarray:
        """Key-frame differences of a rendered clip: the stored frames are the rule's distinct
        picks; the rule applied to them again gives exactly ``num_frames`` (as for a real one)."""
        numbers = [int(n) for n in params.frame_numbers]
        positions = key_frame_positions(
            numbers,
            0,
            int(params.timing.apex),
            int(params.timing.n_frames) - 1,
            self.num_frames,
            self.keyframe_sampling,
        )
        return frame_differences(frames[positions], self.size)


def _distributions(space: Mapping[str, tuple[float, float]]) -> dict:
    out = {}
    for name, (low, high) in space.items():
        if name in FRAMING_PARAMETERS:
            try:
                out[name] = framing_distribution(name, low, high)
            except ValueError as err:
                raise AdversarialSearchError(str(err)) from err
            continue
        if not 0 < low < high:
            raise AdversarialSearchError(f"space[{name!r}] must be 0 < low < high, got {low, high}")
        out[name] = optuna.distributions.FloatDistribution(float(low), float(high), log=True)
    return out


def adversarial_calibration(
    real_records: Sequence[object] | None,
    recipe: GenerationRecipe,
    *,
    trials: int,
    out_dir: str | Path,
    seed: int = 0,
    parts: GenerationParts | None = None,
    base: CalibrationProfile | None = None,
    space: Mapping[str, tuple[float, float]] | None = None,
    clips: int = 32,
    size: int = 28,
    pool: int = 4,
    n_splits: int = 5,
    c: float = 1.0,
    flow_method: str = "farneback",
    sampler: str = "tpe",
    startup_trials: int = 8,
    progress: bool = False,
    real_flows: np.ndarray | None = None,
    real_subjects: Sequence[str] | None = None,
    representation: str = "apex_flow",
    num_frames: int = 4,
    keyframe_sampling: str = "uniform",
) -> AdversarialResult:
    """Search realism settings that make synthetic apex flow indistinguishable from real.

    Args:
        real_records: the real clips the search may see (the training subjects only: their
            subjects are recorded in the profile's ``source``); ``None`` with ``real_flows``.
        recipe: identities, templates, timing, device and crop size of the rendered trial
            clips (its effects, motion size and frames are replaced by each trial's).
        trials: trial budget (a rerun with a larger budget continues the search).
        out_dir: ``search.json``, ``trials/``, ``history.csv``, ``history.png``,
            ``profile.yaml``.
        seed: the trial clips' plan seed and the sampler seeds.
        parts: live objects built from ``recipe`` (e.g. data faces); default ``recipe.build()``.
        base: the profile searched around (framing, blink rate, spread widths and the spreads
            not searched); default :func:`quiet_profile`.
        space: ``{spread name: (low, high)}`` log-uniform ranges; default :data:`DEFAULT_SPACE`.
        clips: rendered clips per trial (spread evenly over the bank's emotions).
        size, pool: apex-flow image side and the pooled side the classifier sees
            (:func:`search_features`).
        n_splits, c: grouped cross-validation folds and inverse L2 strength of the domain
            test's logistic regression (weaker regularisation than the realism report's
            default: the search's adversary should be strong).
        flow_method: optical flow of both sets (:func:`mesynth.flow.apex_flow`).
        sampler: ``tpe`` (seeded TPE) or ``random``.
        startup_trials: random trials before TPE models the history.
        progress: print one line per trial.
        real_flows: instead of ``real_records``, real apex-flow images ``(N, size, size, 3)``
            (uint8 0-255 or float in ``[0, 1]``, channels ``(u, v, strain)``, each min-max
            scaled per image as :func:`mesynth.flow.apex_flow` stores them): the MEGC2019
            composite case, which has no clips (:mod:`mesynth.calibration.flow_images`).
        real_subjects: ``(N,)`` subject of each real flow image (the domain test's groups and
            the profile's ``source.real_subjects``).
        representation: what the classifier compares: ``"apex_flow"`` (onset and apex
            rendered, apex-flow image) or ``"clip"`` (``num_frames`` key frames rendered and
            picked with the recognizer's rule ``keyframe_sampling``, their differences to the
            first; :mod:`mesynth.calibration.clip_features`), for 3D-CNN users.
        num_frames, keyframe_sampling: the key frames of ``representation="clip"`` (ignored
            for apex flow).

    With framing parameters in ``space`` (:data:`mesynth.calibration.framing_search.FRAMING_SPACE`)
    each trial's faces are re-cropped to ``base``'s framing moved by the trial's offsets and
    scale.

    Raises:
        AdversarialSearchError: a bad argument, or ``out_dir`` holds a search with other
            settings (the message names them).
    """
    if trials < 1:
        raise AdversarialSearchError(f"trials must be >= 1, got {trials}")
    if sampler not in SAMPLERS:
        raise AdversarialSearchError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    real_flows = _real_flow_images(real_records, real_flows, real_subjects, size)
    n_real = len(real_flows) if real_flows is not None else len(real_records)
    if n_real < 2:
        raise AdversarialSearchError(f"need >= 2 real clips, got {n_real}")
    if representation not in REPRESENTATIONS:
        raise AdversarialSearchError(
            f"representation must be one of {REPRESENTATIONS}, got {representation!r}"
        )
    clip = representation == "clip"
    if clip and num_frames < 2:
        raise AdversarialSearchError(f"a clip search needs num_frames >= 2, got {num_frames}")
    if clip and real_flows is not None:
        raise AdversarialSearchError("real_flows are apex-flow images: a clip search needs clips")
    out_dir = Path(out_dir)
    space = dict(DEFAULT_SPACE if space is None else space)
    distributions = _distributions(space)
    base = quiet_profile() if base is None else base
    parts = recipe.build() if parts is None else parts
    emotions = list(parts.bank.emotions)
    plan = equal(max(1, clips // len(emotions)), emotions, seed=seed)
    if real_flows is None:
        real_names: object = [record_name(r) for r in real_records]
        subjects = sorted({str(getattr(r, "subject", "")) for r in real_records})
    else:
        real_names = {
            "flows_sha256": hashlib.sha256(real_flows.tobytes()).hexdigest(),
            "subjects": [str(s) for s in real_subjects],
        }
        subjects = sorted({str(s) for s in real_subjects})
    faces = parts.identities
    face_list = list(faces.identities if isinstance(faces, IdentitySet) else faces)
    settings: dict[str, object] = {
        "real": real_names,
        "generator": generation_config(
            face_list,
            parts.bank,
            MotionModel.expert(),
            parts.timing,
            plan,
            mode="keyframes" if clip else "onset_apex",
            num_frames=num_frames if clip else 2,
            sampling=keyframe_sampling if clip else "uniform",
            realism=ProfileEffects(base),
            inverse_iterations=recipe.inverse_iterations,
        ),
        "space": space,
        "search": {
            "seed": seed,
            "sampler": sampler,
            "startup_trials": startup_trials,
            "size": size,
            "pool": pool,
            "n_splits": n_splits,
            "c": c,
            "flow_method": flow_method,
        },
    }
    if clip:  # apex-flow searches keep the settings (and hash) they had before clips existed
        settings["search"]["representation"] = representation
        settings["search"]["num_frames"] = num_frames
        settings["search"]["keyframe_sampling"] = keyframe_sampling
    try:
        search = TrialSearch(out_dir, settings, distributions, seed=seed, sampler=sampler,
                             startup_trials=startup_trials)  # fmt: skip
    except TrialSettingsError as err:
        raise AdversarialSearchError(str(err)) from err

    @functools.cache
    def prepared() -> tuple[np.ndarray, np.ndarray, _TrialRenderer]:
        """Real features, their groups and the trial renderer (built once a trial runs)."""
        if real_flows is None:
            real, real_groups = record_features(
                real_records, size, pool, flow_method, representation=representation,
                num_frames=num_frames, keyframe_sampling=keyframe_sampling,
            )  # fmt: skip
        else:
            real = search_features(real_flows, pool)
            real_groups = np.array([str(s) for s in real_subjects])
        renderer = _TrialRenderer(
            parts,
            plan,
            size=size,
            pool=pool,
            flow_method=flow_method,
            device=recipe.device if recipe.device != "auto" else "cpu",
            inverse_iterations=recipe.inverse_iterations,
            batch_size=recipe.batch_size,
            reframe=any(name in FRAMING_PARAMETERS for name in space),
            representation=representation,
            num_frames=num_frames,
            keyframe_sampling=keyframe_sampling,
        )
        return real, real_groups, renderer

    def objective(number: int, parameters: dict) -> dict[str, float]:
        real, real_groups, renderer = prepared()
        synthetic, groups = renderer.features(profile_from_parameters(base, parameters))
        accuracy = domain_classifier_test(
            real, synthetic, real_groups, groups, n_splits=n_splits, n_permutations=0, c=c,
            seed=seed,
        ).accuracy  # fmt: skip
        return {"accuracy": accuracy, "objective": abs(accuracy - 0.5)}

    def report(row: dict) -> None:
        print(f"trial {row['trial']}: balanced accuracy {row['accuracy']:.3f} "
              f"({row['seconds']:.1f} s)")  # fmt: skip

    start = time.perf_counter()
    done = search.run(objective, trials, progress=report if progress else None)
    seconds = time.perf_counter() - start

    history = history_frame(done, ("accuracy", "objective"))
    first_best = [int(history["objective"][: i + 1].idxmin()) for i in range(len(history))]
    history.insert(4, "best_accuracy", history["accuracy"].to_numpy()[first_best])
    best = search.best()
    profile = profile_from_parameters(base, done[best]["params"])
    profile = dataclasses.replace(
        profile,
        source={
            "method": "adversarial",
            "real_subjects": subjects,
            "n_real": n_real,
            "real_input": "clips" if real_flows is None else "apex_flow_images",
            "trials": len(done),
            "best_trial": best,
            "best_accuracy": float(done[best]["accuracy"]),
            "seed": seed,
            "sampler": sampler,
            "clips_per_trial": plan.total,
            "representation": representation,
            "search": str(out_dir / "search.json"),
        },
    )
    history_path = out_dir / "history.csv"
    history.to_csv(history_path, index=False)

    from mesynth.evaluation.figures import plot_search_history

    figure = plot_search_history(history, out_dir / "history.png")
    return AdversarialResult(
        profile=profile,
        profile_path=profile.save(out_dir / "profile.yaml"),
        best_trial=best,
        best_accuracy=float(done[best]["accuracy"]),
        history=history,
        history_path=history_path,
        figure_path=figure,
        resumed=search.resumed,
        seconds=seconds,
    )


def _real_flow_images(
    records: Sequence[object] | None,
    flows: np.ndarray | None,
    subjects: Sequence[str] | None,
    size: int,
) -> np.ndarray | None:
    """Check the real input: clip records, or flow images with one subject each; returns the
    flow images as float32 in ``[0, 1]`` (``None`` for records)."""
    if (records is None) == (flows is None):
        raise AdversarialSearchError("give either real_records or real_flows (with real_subjects)")
    if flows is None:
        return None
    from mesynth.calibration.flow_images import FlowCalibrationError, flow_images

    if subjects is None:
        raise AdversarialSearchError("real_flows need real_subjects (one per image)")
    try:
        checked = flow_images(flows, list(subjects)).images
    except FlowCalibrationError as err:
        raise AdversarialSearchError(f"real_flows: {err}") from err
    if checked.shape[1] != size:
        raise AdversarialSearchError(
            f"real_flows are {checked.shape[1]} x {checked.shape[1]} images; set size="
            f"{checked.shape[1]} so the trial flows are computed at the same size"
        )
    return checked
