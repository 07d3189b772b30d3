"""One generation recipe: everything that says how clips are made, as plain values.

A :class:`GenerationRecipe` names the identities, the template sources, the motion size, the
timing, the render-time effects, the frames each clip stores, the crop size and where it runs.
It is built from Python or from the nested ``recipe`` config group (``mesynth generate`` and the
synthetic remedies use the same keys), and its ``build_*`` methods make the live objects.
:func:`run_recipe` generates a plan's clips with it; every caller (the command line, the
synthetic remedies, the study and the demo) goes through it.

Per-fold inputs that only a caller knows (annotation records to mine, onset faces) are filled
in through the recipe: ``recipe.build_bank(records=..., subjects=...)``,
``recipe.build_identities(source=...)``, then ``recipe.build(identities=..., bank=...)``.

Mappings are accepted for the nested parts (as Hydra gives them); an unknown key or a bad value
raises :class:`RecipeError` naming it (``recipe.identities.copies``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import (
    Effects,
    ProfileEffects,
    ProfileSwitches,
    calibrated_motion,
    resolve_effects,
)
from mesynth.environment import resolve_device
from mesynth.face.framing import FRAMINGS
from mesynth.face.identities import Identity, IdentityAugmentation, IdentitySet, load_identities
from mesynth.generation.balance import BalancePlan
from mesynth.generation.pipeline import (
    ClipParameters,
    GenerateSummary,
    generate,
    generation_config,
)
from mesynth.generation.store import MODES, SAMPLINGS
from mesynth.labels.emotions import SCHEMES
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.render.effects import EffectsConfig
from mesynth.templates.bank import TemplateBank

TEMPLATE_SOURCES = ("mined", "expert", "macro_onset")
#: identity sources made of the evaluated data's own faces (supplied by the synthetic remedies)
DATA_SOURCES = ("data", "onset")


class RecipeError(ValueError):
    """A recipe value that cannot make clips; the message names the key (``recipe.size``)."""


def _strings(value: object) -> tuple[str, ...]:
    return (str(value),) if isinstance(value, (str, Path)) else tuple(str(v) for v in value)


def setting_check(error: type[ValueError], prefix: str) -> Callable[[bool, str, str, object], None]:
    """A check ``check(ok, key, need, value)`` for config values: when ``ok`` is false it
    raises ``error("<prefix>.<key> must be <need>, got <value!r>")``, naming the key."""

    def check(ok: bool, key: str, need: str, value: object) -> None:
        if not ok:
            raise error(f"{prefix}.{key} must be {need}, got {value!r}")

    return check


_check = setting_check(RecipeError, "recipe")


@dataclass(frozen=True)
class IdentitiesRecipe:
    """The faces clips are rendered on.

    Attributes:
        source: ``builtin`` (two public-domain portraits), a folder or image of faces (or a
            list of them), ``data`` (a face per subject of the evaluated data: a manifest's
            ``face`` column, else the onset frame) or ``onset`` (the onset frames); ``data``
            and ``onset`` only the synthetic remedies supply.
        copies: augmented variants per identity (:class:`IdentityAugmentation`).
        mirror, shape_jitter, colour_jitter, gamma_jitter: the augmentation's ranges.
        face_crops: the images are tight face crops: fit the landmarks to the whole image when
            no face is detected.
        landmark_backend: ``auto``, ``dlib`` or ``face_alignment`` (images without a landmark
            file beside them).
        cache_dir: landmark cache folder (``None``: no cache).
        framing: where faces sit in the crop (:mod:`mesynth.face.framing`): ``canonical``
            (aligned to the canonical face, the default), ``own`` (each image's own crop,
            resized: tight crops of the target release) or ``profile`` (aligned to the mean
            landmarks a calibration profile measured on the target's crops); ``auto``
            (the synthetic remedies' default) is ``own`` for ``source="data"`` with
            ``face_crops`` and ``canonical`` otherwise.
        framing_profile: the profile whose framing ``profile`` uses (``None``: the profile of
            ``recipe.effects``).
    """

    source: str | tuple[str, ...] = "builtin"
    copies: int = 0
    mirror: bool = True
    shape_jitter: float = 0.03
    colour_jitter: float = 0.05
    gamma_jitter: float = 0.1
    face_crops: bool = False
    landmark_backend: str = "auto"
    cache_dir: str | None = None
    framing: str = "canonical"
    framing_profile: str | None = None

    def __post_init__(self) -> None:
        source = self.source
        if not isinstance(source, (str, Path)):
            source = _strings(source)
            _check(bool(source), "identities.source", "a non-empty list", list(source))
        object.__setattr__(self, "source", str(source) if isinstance(source, Path) else source)
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", str(self.cache_dir))
        _check(self.copies >= 0, "identities.copies", ">= 0", self.copies)
        if self.framing == "auto":
            # tight crops of the evaluated data keep their own framing (the real flows are
            # computed on those crops); everything else is aligned to the canonical face
            own = self.source == "data" and self.face_crops
            object.__setattr__(self, "framing", "own" if own else "canonical")
        need = f"one of {FRAMINGS} or auto"
        _check(self.framing in FRAMINGS, "identities.framing", need, self.framing)
        if self.framing_profile is not None:
            object.__setattr__(self, "framing_profile", str(self.framing_profile))
        for name in ("shape_jitter", "colour_jitter", "gamma_jitter"):
            _check(getattr(self, name) >= 0, f"identities.{name}", ">= 0", getattr(self, name))

    def augmentation(self) -> IdentityAugmentation:
        """The :class:`IdentityAugmentation` of these settings."""
        return IdentityAugmentation(
            **{f.name: getattr(self, f.name) for f in fields(IdentityAugmentation)}
        )


@dataclass(frozen=True)
class TemplatesRecipe:
    """Where AU templates come from.

    Attributes:
        sources: any of ``mined`` (annotation records given to :meth:`GenerationRecipe.build_bank`,
            else read from ``annotation_tables``), ``expert`` and ``macro_onset``.
        weights: share of each source within an emotion (``None``: equal).
        expert_tables: expert tables (``None``: the scheme's defaults).
        macro_onset_csvs, macro_onset_labels: OpenFace CSVs of macro-expressions and their
            emotions.
        annotation_tables: CSVs of annotation records (``subject, emotion, aus``, optional
            ``dataset, clip``: :func:`mesynth.templates.mining.read_annotation_table`; ``mer
            annotations`` writes one from a release's own sheets) that ``mined`` mines when a
            caller gives no records (``mesynth generate``). The synthetic remedies refuse them:
            they mine each fold's training side only.
    """

    sources: tuple[str, ...] = ("expert",)
    weights: tuple[float, ...] | None = None
    expert_tables: tuple[str, ...] | None = None
    macro_onset_csvs: tuple[str, ...] = ()
    macro_onset_labels: tuple[str, ...] = ()
    annotation_tables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("sources", "macro_onset_csvs", "macro_onset_labels", "annotation_tables"):
            object.__setattr__(self, name, _strings(getattr(self, name)))
        if self.expert_tables is not None:
            object.__setattr__(self, "expert_tables", _strings(self.expert_tables))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        unknown = sorted(set(self.sources) - set(TEMPLATE_SOURCES))
        need = f"a non-empty list of {TEMPLATE_SOURCES}"
        _check(bool(self.sources) and not unknown, "templates.sources", need, list(self.sources))
        if self.weights is not None:
            need = f"one positive weight per source ({len(self.sources)})"
            ok = len(self.weights) == len(self.sources) and all(w > 0 for w in self.weights)
            _check(ok, "templates.weights", need, list(self.weights))
        if "macro_onset" in self.sources:
            need = "non-empty when templates.sources has macro_onset"
            _check(bool(self.macro_onset_csvs), "templates.macro_onset_csvs", need, [])
        need = f"one label per CSV ({len(self.macro_onset_csvs)})"
        ok = len(self.macro_onset_labels) == len(self.macro_onset_csvs)
        _check(ok, "templates.macro_onset_labels", need, list(self.macro_onset_labels))
        if self.annotation_tables:
            need = "used only with 'mined' in templates.sources"
            ok = "mined" in self.sources
            _check(ok, "templates.annotation_tables", need, list(self.annotation_tables))


@dataclass(frozen=True)
class MotionRecipe:
    """How far landmarks move.

    Attributes:
        apex_iod: largest landmark displacement of a single AU at intensity 1, in IOD units
            (real MEs: about 0.01-0.05), or ``profile``: the size that gives the median clip the
            apex size measured in the effects' calibration profile
            (:func:`~mesynth.calibration.profile_effects.calibrated_motion`).
    """

    apex_iod: float | str = 0.03

    def __post_init__(self) -> None:
        if self.apex_iod == "profile":
            return
        ok = isinstance(self.apex_iod, (int, float)) and self.apex_iod > 0
        _check(ok, "motion.apex_iod", "a positive number or 'profile'", self.apex_iod)


@dataclass(frozen=True)
class TimingRecipe:
    """The clips' time course.

    Attributes:
        fps: full frame rate of the clips (frames per second).
    """

    fps: float = 200

    def __post_init__(self) -> None:
        _check(self.fps > 0, "timing.fps", "positive", self.fps)


@dataclass(frozen=True)
class FramesRecipe:
    """Which frames each clip stores (:func:`mesynth.generation.store.select_frames`).

    Attributes:
        mode: ``full``, ``keyframes`` or ``onset_apex``.
        num_frames: key frames per clip (``keyframes``).
        sampling: ``uniform``, ``adaptive`` or ``onset_apex`` key frames.
    """

    mode: str = "keyframes"
    num_frames: int = 16
    sampling: str = "uniform"

    def __post_init__(self) -> None:
        _check(self.mode in MODES, "frames.mode", f"one of {MODES}", self.mode)
        _check(self.num_frames >= 2, "frames.num_frames", ">= 2", self.num_frames)
        _check(self.sampling in SAMPLINGS, "frames.sampling", f"one of {SAMPLINGS}", self.sampling)


@dataclass(frozen=True)
class ProfileSource(ProfileSwitches):
    """Effects drawn from a calibration profile file (``mesynth calibrate`` writes one), read
    when the recipe is built.

    Attributes:
        path: the profile YAML (required at build time).
        head_motion, skin_motion, noise, drift, blinks: switch single effects off
            (:class:`~mesynth.calibration.profile_effects.ProfileSwitches`).
    """

    path: str | None = None

    def load(self) -> ProfileEffects:
        """Read the profile.

        Raises:
            mesynth.calibration.profile.ProfileError: no path, or a missing or malformed file.
        """
        return ProfileEffects.load(self.path, **self.switches())


def _part(cls: type, value: object, key: str) -> object:
    """``value`` as a ``cls`` part; a mapping's keys must be ``cls`` fields."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise RecipeError(f"recipe.{key} must be a {cls.__name__} or a mapping, got {value!r}")
    known = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in value if str(k) not in known)
    if unknown:
        raise RecipeError(f"recipe.{key}: unknown keys {unknown} (known: {known})")
    return cls(**{str(k): v for k, v in value.items()})


def _effects(value: object) -> EffectsConfig | ProfileSource | ProfileEffects:
    if isinstance(value, (EffectsConfig, ProfileSource, ProfileEffects)):
        return value
    if value in (None, "none", "full"):
        return resolve_effects(value)  # type: ignore[return-value]
    if isinstance(value, (str, Path)):
        return ProfileSource(str(value))
    raise RecipeError(
        "recipe.effects must be an EffectsConfig, a ProfileSource, a ProfileEffects, 'none', "
        f"'full' or a profile path, got {value!r}"
    )


@dataclass(frozen=True)
class GenerationParts:
    """The live objects a recipe builds (:meth:`GenerationRecipe.build`)."""

    identities: IdentitySet | Sequence[Identity]
    bank: TemplateBank
    motion: MotionModel
    timing: TimingSampler
    effects: Effects


@dataclass(frozen=True)
class GenerationRecipe:
    """How clips are made (see the module docs).

    Attributes:
        scheme: label scheme of the templates (``dfme7``, ``casme2_5``, ``megc3``).
        identities, templates, motion, timing, frames: the nested parts (or mappings of their
            fields).
        effects: render-time effects: an :class:`~mesynth.render.effects.EffectsConfig`, a
            :class:`ProfileSource`, a :class:`~mesynth.calibration.profile_effects.ProfileEffects`,
            ``"none"``, ``"full"`` or a profile path.
        size: crop size ``S`` of identities and frames (pixels, ``S x S``).
        inverse_iterations: backward-map refinement steps (:mod:`mesynth.render.warp`).
        device: rendering device (:func:`mesynth.environment.resolve_device`).
        batch_size: clips per ``grid_sample`` call (speed only; never changes a clip).
        seed: seed of the identity augmentation; callers also seed their plan with it.
    """

    scheme: str = "dfme7"
    identities: IdentitiesRecipe = field(default_factory=IdentitiesRecipe)
    templates: TemplatesRecipe = field(default_factory=TemplatesRecipe)
    motion: MotionRecipe = field(default_factory=MotionRecipe)
    timing: TimingRecipe = field(default_factory=TimingRecipe)
    effects: EffectsConfig | ProfileSource | ProfileEffects = field(default_factory=EffectsConfig)
    frames: FramesRecipe = field(default_factory=FramesRecipe)
    size: int = 224
    inverse_iterations: int = 1
    device: str = "auto"
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        parts = {
            "identities": IdentitiesRecipe,
            "templates": TemplatesRecipe,
            "motion": MotionRecipe,
            "timing": TimingRecipe,
            "frames": FramesRecipe,
        }
        for key, cls in parts.items():
            object.__setattr__(self, key, _part(cls, getattr(self, key), key))
        object.__setattr__(self, "effects", _effects(self.effects))
        _check(self.scheme in SCHEMES, "scheme", f"one of {tuple(SCHEMES)}", self.scheme)
        _check(self.size >= 16, "size", ">= 16", self.size)
        _check(self.inverse_iterations >= 0, "inverse_iterations", ">= 0", self.inverse_iterations)
        _check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        profile = isinstance(self.effects, (ProfileSource, ProfileEffects))
        if self.motion.apex_iod == "profile" and not profile:
            raise RecipeError(
                "recipe.motion.apex_iod 'profile' needs effects from a calibration profile "
                f"(recipe.effects), got {type(self.effects).__name__}"
            )

    def build_identities(
        self, source: str | Path | Sequence[str | Path] | None = None
    ) -> IdentitySet:
        """Load the identities at ``size`` (augmented with ``seed``).

        Args:
            source: faces to load instead of ``identities.source`` (e.g. a fold's onset frames).

        Raises:
            RecipeError: ``identities.source`` is ``onset`` and no ``source`` is given.
            ValueError: no identity could be loaded (each skipped image is listed).
        """
        part = self.identities
        source = part.source if source is None else source
        if source in DATA_SOURCES:
            raise RecipeError(
                f"recipe.identities.source {source!r} needs the faces of a dataset's subjects, "
                "which only the synthetic remedies supply; use builtin or a folder of faces"
            )
        return load_identities(
            list(source) if isinstance(source, tuple) else source,
            size=self.size,
            backend=part.landmark_backend,
            cache_dir=part.cache_dir,
            augmentation=part.augmentation(),
            seed=self.seed,
            whole_image_fallback=part.face_crops,
            framing=part.framing,
            target=self.framing_target(),
        )

    def framing_target(self) -> np.ndarray | None:
        """The normalised target of ``identities.framing=profile`` (``None`` otherwise): the
        framing of ``identities.framing_profile``, else of the effects' profile.

        Raises:
            RecipeError: ``profile`` framing with neither a framing profile nor profile effects.
            mesynth.calibration.profile.ProfileError: the profile file is missing or malformed.
        """
        part = self.identities
        if part.framing != "profile":
            return None
        if part.framing_profile is not None:
            return CalibrationProfile.load(part.framing_profile).framing.target()
        effects = self.build_effects()
        if not isinstance(effects, ProfileEffects):
            raise RecipeError(
                "recipe.identities.framing 'profile' needs a calibration profile: set "
                "recipe.identities.framing_profile=<profile.yaml> or recipe/effects=profile"
            )
        return effects.profile.framing.target()

    def build_bank(
        self,
        records: Iterable[object] = (),
        subjects: Collection[str] | None = None,
        by_subject: bool = False,
    ) -> TemplateBank:
        """The template bank of ``templates``, each source restricted to the AUs the motion
        model knows (sources left empty are dropped).

        Args:
            records: annotation records for the ``mined`` source.
            subjects: mine only these subjects' records (``None``: all).
            by_subject: mine one template per (subject, emotion, AU combination), each
                remembering its subject (:meth:`TemplateBank.mined`).

        Raises:
            RecipeError: ``mined`` without records, or no source gives a usable template.
        """
        part, codes = self.templates, MotionModel.expert().known_codes
        records = tuple(records)
        if not records and "mined" in part.sources:
            from mesynth.templates.mining import read_annotation_table

            records = tuple(r for t in part.annotation_tables for r in read_annotation_table(t))
        banks, weights = [], []
        for i, source in enumerate(part.sources):
            if source == "mined":
                if not records:
                    tables = list(part.annotation_tables)
                    where = (
                        f"the tables {tables} hold none"
                        if tables
                        else "give recipe.templates.annotation_tables (CSVs with subject, "
                        "emotion, aus: `mer annotations` writes one from a release)"
                    )
                    raise RecipeError(
                        f"recipe.templates.sources has 'mined' but no annotation records to "
                        f"mine: {where} (the synthetic remedies mine each fold's training side)"
                    )
                bank = TemplateBank.mined(
                    records, self.scheme, subjects=subjects, by_subject=by_subject
                )
            elif source == "expert":
                bank = TemplateBank.expert(self.scheme, part.expert_tables)
            else:
                bank = TemplateBank.macro_onset(
                    part.macro_onset_csvs, part.macro_onset_labels, self.scheme
                )
            bank = bank.restrict_codes(codes)
            if len(bank):
                banks.append(bank)
                weights.append(part.weights[i] if part.weights else 1.0)
        if not banks:
            raise RecipeError(
                f"recipe.templates.sources {list(part.sources)} give no usable template "
                "(mined records without AUs?)"
            )
        return banks[0] if len(banks) == 1 else TemplateBank.combine(banks, weights)

    def build_effects(self) -> Effects:
        """The render-time effects (a profile file is read now)."""
        if isinstance(self.effects, ProfileSource):
            return self.effects.load()
        return self.effects

    def build_motion(self, bank: TemplateBank, effects: Effects) -> MotionModel:
        """The expert motion model at ``motion.apex_iod``; ``profile`` calibrates it to the
        apex size of ``effects``' profile for the clips of ``bank``."""
        if self.motion.apex_iod == "profile":
            if not isinstance(effects, ProfileEffects):
                raise RecipeError("recipe.motion.apex_iod 'profile' needs profile effects")
            return calibrated_motion(MotionModel.expert(), effects.profile, bank)
        return MotionModel.expert(apex_iod=float(self.motion.apex_iod))

    def build_timing(self) -> TimingSampler:
        """The timing sampler at ``timing.fps``."""
        return TimingSampler(fps=self.timing.fps)

    def build(
        self,
        *,
        identities: IdentitySet | Sequence[Identity] | None = None,
        bank: TemplateBank | None = None,
    ) -> GenerationParts:
        """Every live object; ``identities`` and ``bank`` replace the recipe's own (for faces
        and mined templates that a caller made with :meth:`build_identities` and
        :meth:`build_bank`)."""
        effects = self.build_effects()
        bank = self.build_bank() if bank is None else bank
        return GenerationParts(
            identities=self.build_identities() if identities is None else identities,
            bank=bank,
            motion=self.build_motion(bank, effects),
            timing=self.build_timing(),
            effects=effects,
        )

    def content(self, parts: GenerationParts, plan: BalancePlan) -> dict[str, object]:
        """What the store of ``plan`` made with ``parts`` hashes
        (:func:`~mesynth.generation.pipeline.generation_config`)."""
        faces = parts.identities
        return generation_config(
            list(faces.identities if isinstance(faces, IdentitySet) else faces),
            parts.bank,
            parts.motion,
            parts.timing,
            plan,
            mode=self.frames.mode,
            num_frames=self.frames.num_frames,
            sampling=self.frames.sampling,
            realism=parts.effects,
            inverse_iterations=self.inverse_iterations,
            device=resolve_device(self.device),
        )


def run_recipe(
    recipe: GenerationRecipe,
    plan: BalancePlan,
    out_dir: str | Path,
    *,
    parts: GenerationParts | None = None,
    formats: Sequence[str] = ("npy",),
    image_format: str = "jpg",
    jpeg_quality: int = 95,
    rank: int | None = None,
    world_size: int | None = None,
    progress: bool = True,
    on_clip: Callable[[ClipParameters], None] | None = None,
) -> GenerateSummary:
    """Generate the clips of ``plan`` with ``recipe`` into the store ``out_dir``
    (:func:`~mesynth.generation.pipeline.generate`: resumable, shardable).

    Args:
        recipe: how the clips are made.
        plan: classes, counts and per-clip seeds.
        out_dir: the store folder.
        parts: live objects already built from ``recipe`` (:meth:`GenerationRecipe.build`);
            ``None`` builds them.
        formats, image_format, jpeg_quality: how clips are stored
            (:class:`mesynth.generation.store.ClipStore`).
        rank, world_size, progress, on_clip: as for ``generate``.
    """
    parts = recipe.build() if parts is None else parts
    return generate(
        parts.identities,
        parts.bank,
        parts.motion,
        parts.timing,
        plan,
        out_dir,
        mode=recipe.frames.mode,
        num_frames=recipe.frames.num_frames,
        sampling=recipe.frames.sampling,
        formats=formats,
        image_format=image_format,
        jpeg_quality=jpeg_quality,
        effects=parts.effects,
        device=recipe.device,
        batch_size=recipe.batch_size,
        inverse_iterations=recipe.inverse_iterations,
        rank=rank,
        world_size=world_size,
        progress=progress,
        on_clip=on_clip,
    )
