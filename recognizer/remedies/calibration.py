"""Calibration inside the protocol: per subject group (or per fold) calibration profiles for
the synthetic remedies, leak-free by construction.

A remedy renders its synthetic clips with one recipe, and a calibration profile measured on the
whole dataset has seen every fold's test subject (:func:`recognizer.protocols.leakage.profile_leaks`
refuses it in every such fold). :class:`FoldCalibration` (config key ``remedy.calibration``)
calibrates inside the protocol instead:

- the run's subjects (sorted canonical names) are split into ``groups`` groups by a seeded
  permutation (:func:`subject_groups`);
- for each group ``g`` a profile is measured on the real samples of every subject *not* in
  ``g``, and a fold whose test subjects all lie in ``g`` uses that profile;
- a fold whose test subjects span several groups (k-fold splits, the MEGC2019 protocol), every
  fold with ``groups: fold`` (or ``0``), and a run that gives no pool, calibrate on the fold's
  own training samples instead (``fold_<index>``).

Methods: ``flows`` measures the real apex-flow images and face crops
(:func:`mesynth.calibration.flow_images.calibrate_from_flows`: cheap, no search);
``adversarial`` then searches the remaining settings against the same images
(:func:`mesynth.calibration.adversarial.adversarial_calibration`, ``trials`` trials of trial
clips rendered on the built-in portraits with expert templates, so the trial clips touch no
dataset subject); ``utility`` searches the synthetic pool's settings by the inner-fold
recognition of held-out real subjects they buy (:mod:`recognizer.remedies.utility`; the
``flows`` measurement is its base profile).

Profiles are cached under ``<dir>/<scope>/`` (default ``dir``: ``<run out_dir>/calibration``):
``profile.yaml`` and ``calibration.json`` (the settings, the subjects seen and a hash of the
real flow images). A scope whose ``calibration.json`` matches is reused; one with other
settings is recomputed, and the fold's notes name what differed.

A group profile also sees the subjects a fold holds out for validation (they are outside the
fold's group); the leakage check concerns test subjects. ``groups: fold`` calibrates on the
fold's training subjects only.

Convention:
    Real apex-flow images are ``(N, S, S, 3)`` uint8, channels ``(u, v, strain)``, each
    min-max scaled per image (:func:`mesynth.flow.apex_flow`), ``S`` the representation's
    ``size``; a clip sample's flow is computed from its onset and apex frames with the
    representation's flow method, as :class:`recognizer.data.representations.ApexFlow` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from mesynth.calibration.flow_images import (
    FlowImages,
    calibrate_from_flows,
    canonical_crop_framing,
    flow_images,
)
from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import ProfileEffects
from mesynth.generation.recipe import GenerationRecipe, setting_check
from recognizer.data.representations import SyntheticFrames

METHODS = ("none", "flows", "adversarial", "utility")
FRAMINGS = ("faces", "canonical")
RECORD = "calibration.json"
#: the least value of each integer setting
INTEGER_MINIMUM = {"seed": 0, "trials": 1, "clips": 1, "pool": 1, "n_splits": 2,
                   "startup_trials": 1, "trial_size": 16}  # fmt: skip
#: settings of the adversarial search only
SEARCH_KEYS = (
    "trials",
    "clips",
    "pool",
    "n_splits",
    "sampler",
    "startup_trials",
    "search_framing",
    "trial_size",
)
#: settings of the utility search (:mod:`recognizer.remedies.utility`)
UTILITY_KEYS = (
    "trials",
    "n_splits",
    "sampler",
    "startup_trials",
    "inner_epochs",
    "time_budget_s",
    "render_sizes",
    "search_weight",
    "search_domain_bn",
    "search_mixup",
)
PROFILE = "profile.yaml"


class FoldCalibrationError(ValueError):
    """Bad calibration settings or data; the message names the ``remedy.calibration`` key."""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def group_count(value: object) -> int | None:
    """A subject-group setting as a count: ``"fold"`` or ``0`` (per fold) -> ``0``, an integer
    (or its digits) ``>= 2`` -> itself; anything else (``1``: one group holds every subject, a
    bool, a negative number) -> ``None``. Shared by ``calibration.groups`` and
    ``pretrain_groups``."""
    if value == "fold":
        return 0
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value == 1:
        return None
    return value


#: what :func:`group_count` accepts, for error messages
GROUP_COUNTS = "'fold', 0 or an integer >= 2 (one group holds every subject)"


_check = setting_check(FoldCalibrationError, "remedy.calibration")


@dataclass(frozen=True)
class FoldCalibration:
    """How the synthetic remedies calibrate their render effects per subject group or fold.

    Attributes:
        method: ``none`` (the recipe's own effects), ``flows`` or ``adversarial``.
        groups: number of subject groups ``K`` (at most the number of subjects; more is
            capped), or ``0`` / ``"fold"``: one calibration per fold on its training subjects.
        seed: seed of the subject-group permutation and of the adversarial search.
        dir: cache folder of the profiles (``None``: ``<run out_dir>/calibration``).
        backend: landmark backend for the face crops (``dlib`` or ``face_alignment``).
        framing: ``faces`` (measured on the rows' ``face`` crops) or ``canonical`` (the flows
            are of canonical crops; no face crops needed).
        apex_peak_iod: size anchor of the min-max scaled flows (IOD units; ``None``: the
            expert motion model's default).
        trials: adversarial trials per scope.
        clips: trial clips rendered per adversarial trial.
        pool: pooled side of the adversarial domain classifier's features.
        n_splits: grouped cross-validation folds of the adversarial domain test.
        sampler: adversarial sampler, ``tpe`` or ``random``.
        startup_trials: random trials before TPE.
        search_framing: the adversarial search also moves the framing.
        trial_size: side of the adversarial trial clips (pixels).
        inner_epochs: utility: epochs of each inner training (``None``: a quarter of the
            run's, at least 1).
        time_budget_s: utility: no new trial starts after this many seconds of a scope's
            search, baseline included (the first trial always runs; ``None``: only ``trials``
            bounds it; a rerun continues).
        render_sizes: utility: the render sizes (pixels) a trial chooses from.
        search_weight: utility: also search ``synthetic_weight`` (the weight of the
            synthetic samples' loss; ``synth_fill``).
        search_domain_bn: utility: also search ``domain_bn`` (domain-specific BatchNorm,
            :mod:`recognizer.mixing`; ``synth_fill``).
        search_mixup: utility: also search ``mixup`` (the probability of same-class mixup of
            a synthetic sample with a real one, 0-1; ``synth_fill``).

    With ``method: utility``, ``trials``, ``n_splits`` (inner grouped folds), ``sampler`` and
    ``startup_trials`` drive the utility search instead.
    """

    method: str = "none"
    groups: int | str = 5
    seed: int = 0
    dir: str | None = None
    backend: str = "dlib"
    framing: str = "faces"
    apex_peak_iod: float | None = None
    trials: int = 8
    clips: int = 24
    pool: int = 4
    n_splits: int = 3
    sampler: str = "tpe"
    startup_trials: int = 4
    search_framing: bool = False
    trial_size: int = 64
    inner_epochs: int | None = None
    time_budget_s: float | None = None
    render_sizes: tuple[int, ...] = (64, 128)
    search_weight: bool = False
    search_domain_bn: bool = False
    search_mixup: bool = False

    def __post_init__(self) -> None:
        _check(self.method in METHODS, "method", f"one of {METHODS}", self.method)
        groups = group_count(self.groups)
        _check(groups is not None, "groups", GROUP_COUNTS, self.groups)
        object.__setattr__(self, "groups", groups)
        _check(self.framing in FRAMINGS, "framing", f"one of {FRAMINGS}", self.framing)
        backends = ("dlib", "face_alignment")
        _check(self.backend in backends, "backend", f"one of {backends}", self.backend)
        if self.apex_peak_iod is not None:
            ok = _is_number(self.apex_peak_iod) and self.apex_peak_iod > 0
            _check(ok, "apex_peak_iod", "> 0 or null", self.apex_peak_iod)
        for key, low in INTEGER_MINIMUM.items():
            value = getattr(self, key)
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
            _check(ok, key, f"an integer >= {low}", value)
        _check(self.sampler in ("tpe", "random"), "sampler", "tpe or random", self.sampler)
        ok = isinstance(self.search_framing, bool)
        _check(ok, "search_framing", "true or false", self.search_framing)
        if self.dir is not None:
            object.__setattr__(self, "dir", str(self.dir))
        if self.inner_epochs is not None:
            ok = isinstance(self.inner_epochs, int) and not isinstance(self.inner_epochs, bool)
            _check(ok and self.inner_epochs >= 1, "inner_epochs", ">= 1 or null", self.inner_epochs)
        if self.time_budget_s is not None:
            ok = _is_number(self.time_budget_s) and self.time_budget_s > 0
            _check(ok, "time_budget_s", "> 0 or null", self.time_budget_s)
        sizes = self.render_sizes
        ok = not isinstance(sizes, (str, int)) and len(tuple(sizes)) > 0
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 16 for v in sizes)
        _check(ok, "render_sizes", "a non-empty list of integers >= 16", sizes)
        object.__setattr__(self, "render_sizes", tuple(sorted(set(sizes))))
        for key in ("search_weight", "search_domain_bn", "search_mixup"):
            _check(isinstance(getattr(self, key), bool), key, "true or false", getattr(self, key))

    @property
    def enabled(self) -> bool:
        """Whether profiles are calibrated (``method`` is not ``none``)."""
        return self.method != "none"

    def settings(self) -> dict[str, object]:
        """The settings that decide a profile (plain values; ``dir`` excluded)."""
        out = asdict(self)
        out.pop("dir")
        kept = {"adversarial": SEARCH_KEYS, "utility": UTILITY_KEYS}.get(self.method, ())
        for key in set(SEARCH_KEYS + UTILITY_KEYS) - set(kept):
            out.pop(key)
        if self.method == "utility":
            out["render_sizes"] = list(self.render_sizes)
        for key in ("search_domain_bn", "search_mixup"):  # off: the settings of earlier runs
            if not out.get(key):
                out.pop(key, None)
        return out


def as_calibration(value: FoldCalibration | Mapping[str, object] | None) -> FoldCalibration:
    """``value`` as a :class:`FoldCalibration` (a mapping of its fields; ``None``: off).

    Raises:
        FoldCalibrationError: unknown keys (named) or bad values.
    """
    if value is None:
        return FoldCalibration()
    if isinstance(value, FoldCalibration):
        return value
    if not isinstance(value, Mapping):
        raise FoldCalibrationError(f"remedy.calibration must be a mapping, got {value!r}")
    known = [f.name for f in dataclasses.fields(FoldCalibration)]
    unknown = sorted(str(k) for k in value if str(k) not in known)
    if unknown:
        raise FoldCalibrationError(f"remedy.calibration: unknown keys {unknown} (known: {known})")
    return FoldCalibration(**{str(k): v for k, v in value.items()})


def subject_groups(subjects: Collection[str], groups: int, seed: int) -> dict[str, int]:
    """Deterministic subject groups: the sorted unique names, permuted by ``seed``, dealt round
    robin into ``min(groups, number of subjects)`` groups (sizes differ by at most one).

    Returns:
        ``{subject: group index}``; independent of the order of ``subjects``.

    Raises:
        FoldCalibrationError: ``groups < 2`` or no subjects.
    """
    names = sorted({str(s) for s in subjects})
    if groups < 2 or not names:
        raise FoldCalibrationError(
            f"remedy.calibration.groups: need >= 2 groups of >= 1 subject, got {groups} groups "
            f"of {len(names)} subjects"
        )
    count = min(groups, len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    return {names[j]: i % count for i, j in enumerate(order)}


@dataclass(frozen=True)
class CalibrationScope:
    """What one profile is calibrated on.

    Attributes:
        name: its cache folder name, ``group_<g>`` or ``fold_<index>``.
        group: the subject group it excludes (``None`` for a fold scope).
        subjects: the subjects whose real samples it is measured on (sorted).
    """

    name: str
    group: int | None
    subjects: tuple[str, ...]


def fold_scope(calibration: FoldCalibration, context: object) -> CalibrationScope:
    """The scope a fold's profile comes from (see the module docs).

    ``context`` is a :class:`recognizer.remedies.base.FoldContext`: ``fold`` (``index``,
    ``test_subjects``), ``train`` and ``pool`` samples with ``subject``.
    """
    fold = context.fold
    index = int(getattr(fold, "index", 0))
    tested = {str(s) for s in getattr(fold, "test_subjects", ())}
    pool = list(context.pool)
    if calibration.groups and pool and tested:
        groups = subject_groups([s.subject for s in pool], calibration.groups, calibration.seed)
        owners = {groups.get(s) for s in tested}
        if len(owners) == 1 and None not in owners:
            (group,) = owners
            members = {s for s, g in groups.items() if g == group}
            seen = sorted({str(s.subject) for s in pool} - members)
            return CalibrationScope(f"group_{group}", group, tuple(seen))
    return CalibrationScope(
        f"fold_{index:02d}", None, tuple(sorted({str(s.subject) for s in context.train}))
    )


def real_flows(samples: Sequence[object], frames: SyntheticFrames) -> FlowImages:
    """``(N, S, S, 3)`` apex-flow images of real samples as the representation sees them.

    A single-image sample is read and resized to ``S`` (area); a clip's flow is computed from
    its onset and apex frames (:func:`mesynth.flow.apex_flow`, ``frames.flow_method``). Each
    row keeps its ``extra["face"]`` crop path (or ``None``).

    Raises:
        FoldCalibrationError: ``frames`` asks for no flow (a key-frame representation).
    """
    import cv2

    from mesynth.flow import apex_flow
    from mesynth.keyframes import sample_key_frames
    from recognizer.data.frame_source import RawFrames

    if not frames.flow_size:
        raise FoldCalibrationError(
            "remedy.calibration.method: calibration inside the protocol measures apex-flow "
            "images; use representation=apex_flow (or remedy.calibration.method=none)"
        )
    size = int(frames.flow_size)
    source = RawFrames()
    images, subjects, names, faces = [], [], [], []
    for sample in samples:
        numbers = source.frame_numbers(sample)
        if len(numbers) == 1:
            image = source.read(sample, numbers)[0]
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        else:
            pair = sample_key_frames(
                "onset_apex", numbers, sample.onset, sample.apex_or_middle, sample.offset, 2
            ).frame_numbers
            onset, apex = source.read(sample, pair)
            image = apex_flow(onset, apex, size, frames.flow_method)
        images.append(np.asarray(image, np.uint8))
        subjects.append(str(sample.subject))
        names.append(str(getattr(sample, "uid", sample.subject)))
        face = (getattr(sample, "extra", None) or {}).get("face")
        faces.append(str(face) if face else None)
    return flow_images(images, subjects, names=names, faces=faces)


@dataclass(frozen=True)
class ScopeProfile:
    """A scope's calibrated profile on disk.

    Attributes:
        scope: what it was calibrated on.
        path: its ``profile.yaml``.
        profile: the profile (``source.real_subjects``: the subjects it saw).
        made: calibrated by this call (else reused from the cache).
        changed: settings that differed from an earlier calibration it replaced.
    """

    scope: CalibrationScope
    path: Path
    profile: CalibrationProfile
    made: bool
    changed: tuple[str, ...] = ()

    def report(self) -> dict[str, object]:
        """The fold's ``results.json`` entry for its calibration."""
        return {
            "scope": self.scope.name,
            "group": self.scope.group,
            "profile": str(self.path),
            "real_subjects": list(self.profile.source.get("real_subjects") or ()),
            "made": self.made,
        }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text)
    tmp.replace(path)


def _trial_recipe(
    recipe: GenerationRecipe, size: int, measured: CalibrationProfile
) -> GenerationRecipe:
    """Adversarial trial clips on subject-free inputs: built-in portraits, expert templates.

    The effects are the ``measured`` profile the search starts from: a synthetic remedy's
    recipe under calibration holds a :class:`ProfileSource` without a path (the fold's profile
    is what this search makes), which cannot be built; the search renders each trial with
    the trial's own profile either way.
    """
    # the portraits are no crops of the target: `own` framing is for the data's own faces
    framing = "canonical" if recipe.identities.framing == "own" else recipe.identities.framing
    identities = replace(
        recipe.identities, source="builtin", face_crops=False, cache_dir=None, framing=framing
    )
    templates = replace(recipe.templates, sources=("expert",), weights=None)
    return replace(
        recipe,
        identities=identities,
        templates=templates,
        size=size,
        effects=ProfileEffects(measured),
    )


def calibrate_scope(
    calibration: FoldCalibration,
    scope: CalibrationScope,
    samples: Sequence[object],
    frames: SyntheticFrames,
    root: str | Path,
    recipe: GenerationRecipe | None = None,
) -> ScopeProfile:
    """Calibrate (or reuse) the profile of ``scope`` under ``root/<scope.name>/``.

    Args:
        calibration: the settings.
        scope: the scope; only the samples of ``scope.subjects`` are measured.
        samples: real samples to choose from (the run's pool or the fold's training samples).
        frames: the representation's flow (size and method) of the real samples.
        root: the cache folder.
        recipe: the remedy's recipe (scheme, timing, device of the adversarial trial clips).

    Raises:
        FoldCalibrationError: a scope subject has no sample, or the method cannot run.
        mesynth.calibration.flow_images.FlowCalibrationError: no usable face crop.
    """
    wanted = set(scope.subjects)
    chosen = [s for s in samples if str(s.subject) in wanted]
    missing = sorted(wanted - {str(s.subject) for s in chosen})
    if missing or not chosen:
        raise FoldCalibrationError(
            f"remedy.calibration: scope {scope.name} has no real samples of {missing[:5]}"
        )
    flows = real_flows(chosen, frames)
    digest = hashlib.sha256(flows.images.tobytes()).hexdigest()
    settings: dict[str, object] = {
        "calibration": calibration.settings(),
        "scope": asdict(scope),
        "flows": {
            "sha256": digest,
            "n": len(flows),
            "method": frames.flow_method,
            "faces": sorted({f for f in flows.faces if f}),
        },
    }
    if calibration.method == "adversarial":
        plain = json.dumps(asdict(recipe or GenerationRecipe()), default=str)
        settings["recipe"] = json.loads(plain)
    folder = Path(root) / scope.name
    record_path, profile_path = folder / RECORD, folder / PROFILE
    changed: tuple[str, ...] = ()
    if record_path.is_file() and profile_path.is_file():
        old = json.loads(record_path.read_text()).get("settings", {})
        if old == json.loads(json.dumps(settings)):
            return ScopeProfile(scope, profile_path, CalibrationProfile.load(profile_path), False)
        changed = _differing(old, settings)
    if changed and (folder / "search").is_dir():
        # the searcher refuses a folder of other settings; an interrupted search of these
        # settings is kept and resumed
        shutil.rmtree(folder / "search")
    folder.mkdir(parents=True, exist_ok=True)
    profile = _calibrate(calibration, flows, folder, recipe, frames.flow_method)
    tmp = profile.save(folder / f".tmp-{PROFILE}")
    tmp.replace(profile_path)
    _write_atomic(record_path, json.dumps({"settings": settings}, indent=2, default=str) + "\n")
    return ScopeProfile(scope, profile_path, profile, True, changed)


def _differing(old: Mapping[str, object], new: Mapping[str, object], prefix: str = "") -> tuple:
    """Dotted keys whose values differ between two nested mappings."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), json.loads(json.dumps(new.get(key), default=str))
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differing(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return tuple(out)


def _calibrate(
    calibration: FoldCalibration,
    flows: FlowImages,
    folder: Path,
    recipe: GenerationRecipe | None,
    flow_method: str,
) -> CalibrationProfile:
    framing = canonical_crop_framing() if calibration.framing == "canonical" else None
    measured = calibrate_from_flows(
        flows, backend=calibration.backend, framing=framing, apex_peak_iod=calibration.apex_peak_iod
    )
    if calibration.method == "flows":
        return measured
    from mesynth.calibration.adversarial import DEFAULT_SPACE, adversarial_calibration
    from mesynth.calibration.framing_search import FRAMING_SPACE

    space = dict(DEFAULT_SPACE) | (dict(FRAMING_SPACE) if calibration.search_framing else {})
    result = adversarial_calibration(
        None,
        _trial_recipe(recipe or GenerationRecipe(), calibration.trial_size, measured),
        trials=calibration.trials,
        out_dir=folder / "search",
        seed=calibration.seed,
        base=measured,
        space=space,
        clips=calibration.clips,
        size=flows.images.shape[1],
        pool=calibration.pool,
        n_splits=calibration.n_splits,
        flow_method=flow_method,
        sampler=calibration.sampler,
        startup_trials=calibration.startup_trials,
        real_flows=flows.images,
        real_subjects=list(flows.subjects),
    )
    return result.profile
