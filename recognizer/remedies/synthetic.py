"""Synthetic remedies: one synthetic pool per run, filtered per fold so nothing of a fold's
held-out subjects reaches its training.

``synth_fill``
    add clips of the deficit classes of the fold's real training data (an imbalanced-learn
    style sampling strategy, :func:`mesynth.generation.balance.resolve_sampling_strategy`) and
    train on real + synthetic.
``synth_pretrain``
    pretrain on a balanced synthetic set, then fine-tune on the fold's real training data.
``synth_only``
    train on a balanced synthetic set only; validate and test on real data.

**Where it lives.** This module holds the fold-data source (:class:`SyntheticData`) and the
remedies built on it; the run's pool (rendering, caching, loading with provenance) is
:mod:`recognizer.remedies.synthetic_pool`, the rule of which clips a fold may use
:mod:`recognizer.remedies.fold_selection`, and the apex flows of synthetic clips
:mod:`recognizer.remedies.synthetic_flows`. Their public names are importable from here too.

**What is rendered.** The model's representation says what it needs from a synthetic clip
(``representation.synthetic_frames()``, bound with :meth:`SyntheticData.for_representation`;
``mer train`` does this): key frames of the representation's own sampling rule at its size, or
for the apex flow the onset and the *true* apex frame rendered at ``render_size``, whose flow
is computed with :func:`mesynth.flow.apex_flow` exactly as for real clips and cached
with the store (``<store>/apex_flow_<method>_<size>/<clip>.png``), once, not per fold or epoch.
Unbound, the recipe's own ``frames`` and ``size`` apply.

**One pool, filtered per fold.** Clips are made with one
:class:`mesynth.generation.recipe.GenerationRecipe` (config key ``synthesis``) from the pool of
the whole run (:attr:`FoldContext.pool`, every subject):

- templates: ``mined`` per source subject from the ``aus`` of the pool's rows (or of
  ``template_records``), each template remembering its subject, plus ``expert`` tables and
  ``macro_onset`` CSVs (subject-free);
- identities: the built-in portraits (subject-free), ``data`` (one face per subject of the
  pool: a manifest's ``face`` cell, else the onset frame; owned by that row's subject),
  ``onset`` (onset frames only), or a folder of faces whose owners are given by
  ``identity_subjects`` or that are declared subject-free with ``faces_subject_free``; a folder
  of faces of unknown subjects is refused.

The store is rendered once (cached under ``<cache_dir>/<hash of its inputs>`` and reused by
every fold, seed and model with the same inputs). Every clip records the subject and the
person of its face and the subjects its template was mined from
(:func:`recognizer.protocols.leakage.provenance`, from ``<store>/provenance.json`` and the clip's
``params/<clip>.json``). Each fold keeps only the clips that touch no *held-out* subject (its
test and validation subjects and every pool subject outside its training side) and show no
*held-out person* (the person of any held-out subject: every augmented copy of a held-out
portrait, the portrait itself), takes what it needs of them in store order, and reports
the excluded subjects and persons; :func:`recognizer.protocols.leakage.check_fold` verifies the
recorded fields.
The pool is sized for the neediest fold: the whole pool's deficit plus the largest one-subject
class count, when clips carry subject data times ``(1 + pool_margin) / (1 - 2 / S)`` (``S``
subjects own faces or templates; a fold leaves out about ``2 / S`` of the clips), and by
``F / (F - 1)`` more when the faces show ``F`` persons that the pool's subjects show too (a
fold holding one of them out loses its clips); a fold that still finds too few reports the
shortfall. With ``pretrain_groups: K`` a set leaves out a whole group, about ``1 / K`` of the
subjects, so ``S`` is taken as at most ``K``.

**Pretraining groups.** With ``pretrain_groups: K`` (``synth_pretrain``; ``synth_only`` for its
training set), the run's subjects are split into ``K`` seeded groups
(:func:`recognizer.remedies.calibration.subject_groups` with ``pretrain_seed``, the rule of the
calibration groups), and a fold whose test subjects all lie in group ``g`` takes the clips that
touch no subject of ``g`` and show no person of ``g``: one set per group, so every fold of the
group has the same ``pretrain_key`` and starts from one model pretrained once
(:func:`recognizer.experiments.run_protocol`, ``pretrain/<key>/``). The fold's test subjects
are in ``g``, so :func:`recognizer.protocols.leakage.check_fold` proves, on the samples used,
that none of their faces or templates entered the set; the fold's validation subjects outside
``g`` may (as with calibration groups). A fold whose test subjects span several groups (k-fold,
the MEGC2019 protocol), and every fold with ``pretrain_groups: fold`` (``0``), gets its own set
as described above (``FoldData.pretrain_group`` is then ``None``).

**Calibration inside the protocol.** With ``calibration`` on
(:mod:`recognizer.remedies.calibration`), each fold renders with the profile of its test
subjects' group (measured on every other group's subjects) or of its own training subjects;
the profile replaces the recipe's effects, so each profile has its own pool, and the profile
check runs on it like on any recipe profile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from mesynth.calibration.profile_effects import ProfileSwitches
from mesynth.generation.recipe import FramesRecipe, GenerationRecipe, ProfileSource, RecipeError
from mesynth.generation.store import config_hash
from recognizer.data.representations import SyntheticFrames
from recognizer.mixing import DomainMixing, MixingError
from recognizer.remedies.base import FoldContext, FoldData, LossChoice, Remedy
from recognizer.remedies.calibration import (
    GROUP_COUNTS,
    CalibrationScope,
    FoldCalibration,
    FoldCalibrationError,
    ScopeProfile,
    as_calibration,
    calibrate_scope,
    fold_scope,
    group_count,
)
from recognizer.remedies.fold_selection import (
    check_profiles,
    choose_clips,
    clip_subjects,
    exclude_clips,
    face_person,
    held_out_persons,
    held_out_subjects,
    recipe_profiles,
    template_counts,
)
from recognizer.remedies.registry import register_remedy
from recognizer.remedies.synthetic_flows import compute_flows, flow_folder
from recognizer.remedies.synthetic_pool import (
    PROVENANCE,
    SynthesisError,
    SyntheticSet,
    face_persons,
    fill_counts,
    load_synthetic,
    synthesize_pool,
)

__all__ = [
    "MODES",
    "PROVENANCE",
    "SynthesisError",
    "SyntheticData",
    "SyntheticSet",
    "check_profiles",
    "clip_subjects",
    "compute_flows",
    "create_synth_remedy",
    "face_persons",
    "flow_folder",
    "held_out_persons",
    "held_out_subjects",
    "load_synthetic",
    "recipe_profiles",
    "synthesize_pool",
    "template_counts",
]

MODES = ("fill", "pretrain", "only")


def _recipe(value: GenerationRecipe | Mapping[str, object]) -> GenerationRecipe:
    if isinstance(value, GenerationRecipe):
        return value
    if not isinstance(value, Mapping):
        raise SynthesisError(f"synthesis must be a GenerationRecipe or a mapping, got {value!r}")
    given = {str(k): v for k, v in value.items()}
    identities = given.get("identities")
    if identities is None or (isinstance(identities, Mapping) and "framing" not in identities):
        # a remedy's faces: the data's own tight crops keep their framing (see IdentitiesRecipe)
        given["identities"] = {**(identities or {}), "framing": "auto"}
    try:
        return GenerationRecipe(**given)
    except TypeError as err:
        raise SynthesisError(f"synthesis: {err}") from err


def _profile_effects(
    value: GenerationRecipe | Mapping[str, object],
) -> GenerationRecipe | dict[str, object]:
    """``value`` with effects drawn from a profile: a given profile's switches are kept, other
    effects become an all-on :class:`ProfileSource` whose path is set per fold."""
    effects = value.effects if isinstance(value, GenerationRecipe) else value.get("effects")
    if isinstance(effects, ProfileSource):
        kept = effects  # its path is replaced per fold (and kept when this source is copied)
    elif isinstance(effects, ProfileSwitches):
        kept = ProfileSource(**effects.switches())
    else:
        kept = ProfileSource()
    if isinstance(value, GenerationRecipe):
        return replace(value, effects=kept)
    if not isinstance(value, Mapping):
        return value  # refused by _recipe with its message
    return {**{str(k): v for k, v in value.items()}, "effects": kept}


@dataclass(frozen=True)
class SyntheticData:
    """The fold-data source of the synthetic remedies (see the module docs).

    Attributes:
        mode: ``fill``, ``pretrain`` or ``only``.
        synthesis: how the clips are made (a recipe, or a mapping of its fields); its ``seed``
            also seeds the plan.
        cache_dir: folder of the stores (by input hash) and of the dataset faces.
        strategy: ``synth_fill`` plan: an imbalanced-learn style sampling strategy name
            (``all``, ``not majority``, ``minority``...) or a float ratio in (0, 1].
        n_per_class: clips per class of the balanced ``synth_pretrain``/``synth_only`` set.
        identity_subjects: for a folder of faces: ``{identity name: dataset-qualified subject}``
            of faces that belong to a dataset subject.
        faces_subject_free: declare a folder of faces subject-free (public portraits, a face
            database disjoint from the evaluated subjects); without it (or ``identity_subjects``
            covering every face), a folder is refused.
        pool_margin: extra share of pool clips, when clips carry subject data, for the folds
            that exclude some.
        pretrain_epochs: ``synth_pretrain`` epochs on the synthetic set (``None``: the
            trainer's).
        store: a ready store to use instead of synthesising (``synth_pretrain``/``synth_only``);
            its ``provenance.json`` and clip parameters are checked like a fresh one's.
        template_records: records to mine templates from instead of the pool's samples (e.g.
            another dataset's annotations); per fold, templates of held-out subjects are left out.
        frames: what the representation needs from a clip (:meth:`for_representation`);
            ``None``: the recipe's ``frames`` and ``size``.
        calibration: per subject group or per fold calibration profiles whose effects replace
            the recipe's (:class:`recognizer.remedies.calibration.FoldCalibration`, or a
            mapping of its fields; default off).
        synthetic_weight: ``synth_fill``: weight of the synthetic samples' loss (real: 1);
            1 leaves the loss as it was (and batched folds possible).
        domain_bn: ``synth_fill``: normalise each batch's real and synthetic samples
            separately while training, running statistics from the real ones only
            (:class:`recognizer.mixing.DomainMixing`; trained fold by fold).
        mixup: ``synth_fill``: probability in ``[0, 1]`` that a synthetic sample of a batch is
            mixed with a real sample of its class in the batch (``0``: never).
        mixup_alpha: ``λ ~ Beta(mixup_alpha, mixup_alpha)``, the real sample's share.
        pretrain_groups: ``synth_pretrain``/``synth_only``: number of seeded subject groups
            ``K >= 2`` whose folds share one synthetic set (one pretraining per group), or
            ``0`` / ``"fold"``: one set per fold (see the module docs).
        pretrain_seed: seed of the subject-group permutation of ``pretrain_groups``.
    """

    mode: str = "fill"
    synthesis: GenerationRecipe = field(default_factory=GenerationRecipe)
    cache_dir: str = ".cache/synthetic"
    strategy: str | float = "all"
    n_per_class: int = 50
    identity_subjects: Mapping[str, str] = field(default_factory=dict)
    faces_subject_free: bool = False
    pool_margin: float = 0.25
    pretrain_epochs: int | None = None
    store: str | None = None
    template_records: tuple = ()
    frames: SyntheticFrames | None = None
    calibration: FoldCalibration = field(default_factory=FoldCalibration)
    synthetic_weight: float = 1.0
    domain_bn: bool = False
    mixup: float = 0.0
    mixup_alpha: float = 1.0
    pretrain_groups: int | str = "fold"
    pretrain_seed: int = 0

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "calibration", as_calibration(self.calibration))
        except FoldCalibrationError as err:
            raise SynthesisError(str(err)) from err
        synthesis = self.synthesis
        if self.calibration.enabled:
            # the fold's profile replaces the effects (its path is set per fold), so
            # `motion.apex_iod: profile` and `identities.framing: profile` are valid already
            synthesis = _profile_effects(synthesis)
        object.__setattr__(self, "synthesis", _recipe(synthesis))
        if self.calibration.method == "utility" and self.mode == "pretrain":
            raise SynthesisError(
                "remedy.calibration.method: utility scores inner training on real + synthetic "
                "clips (synth_fill) or synthetic clips (synth_only), not synthetic pretraining"
            )
        if self.calibration.enabled and self.store is not None:
            raise SynthesisError(
                "remedy.calibration.method: a ready store (remedy.store) is not rendered by the "
                "remedy, so per-fold calibration cannot apply; set method=none"
            )
        object.__setattr__(self, "cache_dir", str(self.cache_dir))
        object.__setattr__(self, "identity_subjects", dict(self.identity_subjects))
        object.__setattr__(self, "template_records", tuple(self.template_records))
        if self.mode not in MODES:
            raise SynthesisError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.store is not None and self.mode == "fill":
            raise SynthesisError("synth_fill synthesises its pool; a ready store cannot fill")
        if self.n_per_class < 1:
            raise SynthesisError(f"n_per_class must be >= 1, got {self.n_per_class}")
        if self.pool_margin < 0:
            raise SynthesisError(f"pool_margin must be >= 0, got {self.pool_margin}")
        weight = self.synthetic_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise SynthesisError(f"synthetic_weight must be a number > 0, got {weight!r}")
        object.__setattr__(self, "synthetic_weight", float(weight))
        mixing = self.mixing()
        if mixing.enabled and self.mode != "fill":
            raise SynthesisError(
                f"remedy.domain_bn / remedy.mixup mix real and synthetic samples within a batch; "
                f"synth_{self.mode} never trains on both at once (use synth_fill), got "
                f"{mixing.settings()}"
            )

        groups = group_count(self.pretrain_groups)
        if groups is None:
            raise SynthesisError(
                f"pretrain_groups must be {GROUP_COUNTS}, got {self.pretrain_groups!r}"
            )
        object.__setattr__(self, "pretrain_groups", groups)
        if self.pretrain_groups and self.mode == "fill":
            raise SynthesisError(
                "pretrain_groups applies to synth_pretrain and synth_only: synth_fill tops up "
                "each fold's own real classes"
            )
        seed = self.pretrain_seed
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SynthesisError(f"pretrain_seed must be an integer >= 0, got {seed!r}")

    def mixing(self) -> DomainMixing:
        """The training-side mixing options (:class:`recognizer.mixing.DomainMixing`).

        Raises:
            SynthesisError: a bad ``domain_bn``, ``mixup`` or ``mixup_alpha`` (named).
        """
        try:
            return DomainMixing(self.domain_bn, self.mixup, self.mixup_alpha)
        except MixingError as err:
            raise SynthesisError(str(err)) from err

    def for_representation(self, representation: object) -> SyntheticData:
        """This source rendering what ``representation`` needs (its ``synthetic_frames()``).

        Raises:
            SynthesisError: the representation does not say what it needs.
        """
        spec = getattr(representation, "synthetic_frames", None)
        if spec is None:
            raise SynthesisError(
                f"representation {type(representation).__name__} has no synthetic_frames(): "
                "it does not say what it needs from a synthetic clip"
            )
        return replace(self, frames=spec())

    def recipe(self) -> GenerationRecipe:
        """The recipe the pool is rendered with: ``synthesis`` with the frames and size of
        :attr:`frames` when bound."""
        if self.frames is None:
            return self.synthesis
        spec = self.frames
        sampling = spec.sampling if spec.mode == "keyframes" else "uniform"
        frames = FramesRecipe(mode=spec.mode, num_frames=spec.num_frames, sampling=sampling)
        return replace(self.synthesis, frames=frames, size=spec.size)

    def settings(self) -> dict[str, object]:
        """Plain settings; ``template_records`` are summarised by their subjects."""
        subjects = sorted({str(r.subject) for r in self.template_records})
        return {
            "mode": self.mode,
            "synthesis": asdict(self.recipe()),
            "cache_dir": self.cache_dir,
            "strategy": self.strategy,
            "n_per_class": self.n_per_class,
            "identity_subjects": self.identity_subjects,
            "faces_subject_free": self.faces_subject_free,
            "pool_margin": self.pool_margin,
            "pretrain_epochs": self.pretrain_epochs,
            "store": self.store,
            "template_records": f"{len(self.template_records)} records of {len(subjects)} subjects",
            "frames": None if self.frames is None else asdict(self.frames),
            "calibration": self.calibration.settings(),
            **({} if self.synthetic_weight == 1.0 else {"synthetic_weight": self.synthetic_weight}),
            **self.mixing().settings(),
            **(
                {"pretrain_groups": self.pretrain_groups, "pretrain_seed": self.pretrain_seed}
                if self.pretrain_groups
                else {}
            ),
        }

    def group_scope(self, context: FoldContext) -> CalibrationScope | None:
        """The subject group whose synthetic set the fold uses (``pretrain_groups``), or
        ``None``: the fold's own set (per fold, or test subjects spanning several groups).
        The scope's ``subjects`` are the pool subjects outside the group."""
        if not self.pretrain_groups or self.mode == "fill":
            return None
        rule = FoldCalibration(groups=self.pretrain_groups, seed=self.pretrain_seed)
        scope = fold_scope(rule, context)
        return scope if scope.group is not None else None

    def calibrated(self, context: FoldContext) -> tuple[SyntheticData, ScopeProfile | None]:
        """This source rendering with the fold's calibration profile as its effects (switches
        of a profile given in ``synthesis.effects`` are kept, else all on), and that profile;
        unchanged and ``None`` when calibration is off.

        Raises:
            SynthesisError: calibration on without an apex-flow representation, or bad data.
        """
        if not self.calibration.enabled:
            return self, None
        if self.frames is None or not self.frames.flow_size:
            raise SynthesisError(
                f"remedy.calibration.method={self.calibration.method!r} measures apex-flow "
                "images: use representation=apex_flow (or remedy.calibration.method=none)"
            )
        scope = fold_scope(self.calibration, context)
        samples = list(context.pool) if scope.group is not None else list(context.train)
        shared = context.shared_dir or Path(context.fold_dir).parent  # one search for all seeds
        root = self.calibration.dir or Path(shared) / "calibration"
        if self.calibration.method == "utility":
            from recognizer.remedies.utility import calibrate_utility

            labels = context.pool_labels if scope.group is not None else context.train_labels
            try:
                return calibrate_utility(self, context, scope, samples, list(labels), root)
            except FoldCalibrationError as err:
                raise SynthesisError(str(err)) from err
        try:
            found = calibrate_scope(
                self.calibration, scope, samples, self.frames, root, self.synthesis
            )
        except FoldCalibrationError as err:
            raise SynthesisError(str(err)) from err
        effects = replace(self.synthesis.effects, path=str(found.path))
        synthesis = replace(self.synthesis, effects=effects)
        return replace(self, synthesis=synthesis), found

    def fold_data(self, context: FoldContext) -> FoldData:
        source, calibrated = self.calibrated(context)
        if getattr(calibrated, "use_synthetic", True):
            data = source._fold_data(context, maps=True)
        else:  # utility calibration: no trial beat the inner no-synthetic baseline
            data = FoldData(list(context.train), list(context.train_labels))
            data.notes.append(
                "no synthetic clips: no utility trial beat the inner no-synthetic baseline "
                f"({calibrated.record['baseline']['objective']:.3f})"
            )
            data.report["synthetic_train"] = 0
        if calibrated is not None:
            data.searched_subjects = dict(getattr(calibrated, "searched_subjects", {}))
            data.report["calibration"] = calibrated.report()
            verb = "calibrated" if calibrated.made else "reused"
            if calibrated.changed:
                verb += f" (settings changed: {', '.join(calibrated.changed)})"
            chosen = f"profile {calibrated.path}" if calibrated.path else "no profile chosen"
            data.notes.insert(
                0,
                f"calibration {chosen} ({verb}, {calibrated.scope.name}): "
                f"{self.calibration.method} on {len(calibrated.scope.subjects)} subjects",
            )
        return data

    def _fold_data(self, context: FoldContext, maps: bool = False) -> FoldData:
        """The fold's data from the pool; ``maps``: also the run's real-vs-synthetic class-mean
        maps (:mod:`recognizer.remedies.domain_maps`, apex flow only, once per run and pool)."""
        scope = self.group_scope(context)
        if scope is None:
            held_out = held_out_subjects(context)
        else:  # the group's subjects: the same set for every fold of the group
            held_out = {str(s.subject) for s in context.pool} - set(scope.subjects)
        check_profiles(self.recipe(), context)
        pool, verb = self.load_pool(context)
        persons = held_out_persons(context, held_out)
        kept, dropped, touched = exclude_clips(pool.samples, pool.labels, held_out, persons)
        want = self._wanted(context, {s.emotion for s in pool.samples})
        chosen, shortfall = choose_clips(kept, want, context.class_names)
        samples = [s for s, _ in chosen]
        labels = [y for _, y in chosen]
        used_persons = Counter(face_person(s) for s in samples)
        notes = [
            f"synthetic pool {pool.root} ({verb}): {len(pool.samples)} clips; "
            f"{len(samples)} used (faces of {dict(sorted(used_persons.items()))}), {dropped} "
            f"left out (they touch held-out subjects or persons {sorted(touched)})"
        ]
        if shortfall:
            notes.append(f"synthetic shortfall (too few clips kept in the pool): {shortfall}")
        report = {
            "synthetic_pool": len(pool.samples),
            "synthetic_excluded_clips": dropped,
            "excluded_subjects": sorted(touched & held_out),
            "excluded_persons": sorted(touched - held_out),
            "held_out_persons": sorted(persons.subjects - held_out),
            "synthetic_store": str(pool.root),
            "synthetic_persons": dict(sorted(used_persons.items())),
            "synthetic_shortfall": shortfall,
            "templates": template_counts(pool.templates, held_out),
        }
        if maps and self.frames is not None and self.frames.flow_size:
            try:
                report["domain_maps"] = str(_domain_maps(context, pool, self.frames).resolve())
            except (OSError, ValueError) as err:  # a diagnostic: the fold trains regardless
                notes.append(f"no real-vs-synthetic class-mean maps: {err}")
        if scope is not None:
            report["synthetic_group"] = scope.group
            report["synthetic_group_subjects"] = sorted(held_out)
            notes.append(
                f"synthetic set of subject group {scope.group} ({len(held_out)} subjects held "
                f"out, pretrain_groups={self.pretrain_groups}, seed {self.pretrain_seed})"
            )
        real, real_labels = list(context.train), list(context.train_labels)
        if self.mode == "pretrain":
            report["synthetic_pretrain"] = len(samples)
            key = config_hash({"pool": pool.key, "clips": [s.uid for s in samples]})
            return FoldData(
                real,
                real_labels,
                pretrain=samples,
                pretrain_labels=labels,
                pretrain_key=key,
                pretrain_epochs=self.pretrain_epochs,
                pretrain_group=None if scope is None else scope.group,
                notes=notes,
                report=report,
            )
        report["synthetic_train"] = len(samples)
        if self.mode == "fill":
            weights = None
            if self.synthetic_weight != 1.0:
                weights = [1.0] * len(real) + [self.synthetic_weight] * len(samples)
                report["synthetic_weight"] = self.synthetic_weight
            mixing = self.mixing()
            if mixing.enabled:
                report["mixing"] = mixing.settings()
            return FoldData(
                real + samples, real_labels + labels, notes=notes, report=report,
                train_weights=weights, train_domains=[False] * len(real) + [True] * len(samples),
                mixing=mixing if mixing.enabled else None,
            )  # fmt: skip
        return FoldData(samples, labels, notes=notes, report=report)

    def load_pool(self, context: FoldContext) -> tuple[SyntheticSet, str]:
        """The run's synthetic pool (the given ``store``, or :func:`synthesize_pool`) and how it
        was obtained (``given``, ``made`` or ``reused``)."""
        if self.store is not None:
            return load_synthetic(self.store, context.class_names, self.frames), "given"
        pool = synthesize_pool(self, context)
        return pool, "made" if pool.made else "reused"

    def _wanted(self, context: FoldContext, present: set[str]) -> dict[str, int]:
        """Clips per class name this fold takes (classes without pool clips: 0)."""
        names = list(context.class_names)
        if self.mode == "fill":
            add = fill_counts(self.strategy, context.train_labels, names)
            return {n: (add[n] if n in present else 0) for n in names}
        return {n: (self.n_per_class if n in present else 0) for n in names}


def create_synth_remedy(
    name: str,
    mode: str,
    *,
    class_balanced: bool = False,
    gamma: float = 0.0,
    beta: float = 0.999,
    **data: object,
) -> Remedy:
    """Build a synthetic remedy from the loss options and the fields of
    :class:`SyntheticData` (``synthesis``: a recipe or its nested mapping), as
    ``mesynth/configs/remedy/synth_*.yaml`` give them."""
    try:
        source = SyntheticData(mode=mode, **data)  # type: ignore[arg-type]
    except (TypeError, RecipeError) as err:
        raise type(err)(f"remedy {name!r}: {err}") from err
    loss = LossChoice(class_balanced=class_balanced, gamma=gamma, beta=beta)
    return Remedy(name, loss=loss, data=source)


def _register(name: str, mode: str) -> None:
    register_remedy(name, lambda **kw: create_synth_remedy(name, mode, **kw))


for _mode in MODES:
    _register(f"synth_{_mode}", _mode)


def _domain_maps(context: FoldContext, pool: SyntheticSet, frames: SyntheticFrames) -> Path:
    """The run's real samples against the pool's clips (``domain_maps.json``), written once
    per run and pool under ``<shared dir>/domain_maps/<pool key>/``."""
    from recognizer.remedies.domain_maps import write_domain_maps

    shared = Path(context.shared_dir or Path(context.fold_dir).parent)
    real, labels = (context.pool, context.pool_labels) if context.pool else (
        context.train, context.train_labels)  # fmt: skip
    return write_domain_maps(
        shared / "domain_maps" / pool.key[:16], real, labels, pool.samples, pool.labels,
        context.class_names, frames,
    )  # fmt: skip
