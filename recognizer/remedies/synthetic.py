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

**Pretraining groups.** With ``pretrain_groups: K`` (``synth_pretrain``; ``synth_only`` for
its training set), the run's subjects are split into ``K`` seeded groups
(:func:`recognizer.remedies.calibration.subject_groups` with ``pretrain_seed``, the rule of
the calibration groups), and a fold whose test subjects all lie in group ``g`` takes the clips
that touch no subject of ``g`` and show no person of ``g``: one set per group, so every fold
of the group has the same ``pretrain_key`` and starts from one model pretrained once
(:func:`recognizer.experiments.run_protocol`, ``pretrain/<key>/``). The fold's test subjects
are in ``g``, so :func:`recognizer.protocols.leakage.check_fold` proves, on the samples used,
that none of their faces or templates entered the set; the fold's validation subjects outside
``g`` may
(as with calibration groups). A fold whose test subjects span several groups (k-fold, the
MEGC2019 protocol), and every fold with ``pretrain_groups: fold`` (``0``), gets its own set as
described above (``FoldData.pretrain_group`` is then ``None``).

**Calibration inside the protocol.** With ``calibration`` on
(:mod:`recognizer.remedies.calibration`), each fold renders with the profile of its test
subjects' group (measured on every other group's subjects) or of its own training subjects;
the profile replaces the recipe's effects, so each profile has its own pool, and the profile
check runs on it like on any recipe profile.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch.distributed as dist

from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.profile_effects import ProfileEffects, ProfileSwitches
from mesynth.face.identities import IdentitySet
from mesynth.generation.balance import BalancePlan, resolve_sampling_strategy
from mesynth.generation.recipe import (
    DATA_SOURCES,
    FramesRecipe,
    GenerationRecipe,
    ProfileSource,
    RecipeError,
    run_recipe,
)
from mesynth.generation.store import config_hash
from mesynth.keyframes import sample_key_frames
from mesynth.templates.bank import TemplateBank
from mesynth.templates.types import Template
from recognizer.data.representations import SyntheticFrames
from recognizer.mixing import DomainMixing, MixingError
from recognizer.protocols.leakage import (
    LeakageError,
    SubjectSet,
    profile_leaks,
    provenance,
    sample_person,
    subject_persons,
)
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
from recognizer.remedies.registry import register_remedy

MODES = ("fill", "pretrain", "only")
PROVENANCE = "provenance.json"


class SynthesisError(ValueError):
    """Synthesis settings or data that cannot make a store; the message says which."""


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
class SyntheticSet:
    """A synthetic store loaded with per-clip provenance.

    Attributes:
        root: the store folder.
        key: its content key.
        samples: ``(N,)`` clips (apex-flow images when the frames spec asks for a flow), in
            store order, each with :func:`recognizer.protocols.leakage.provenance` in ``extra``.
        labels: ``(N,)`` their class indices.
        made: whether this process rendered it (else reused or given).
        templates: the bank it was made from (empty for a given store).
    """

    root: Path
    key: str
    samples: list
    labels: list[int]
    made: bool
    templates: tuple[Template, ...] = ()


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
        kept, dropped, touched = _exclude(pool.samples, pool.labels, held_out, persons)
        want = self._wanted(context, {s.emotion for s in pool.samples})
        chosen, shortfall = _choose(kept, want, context.class_names)
        samples = [s for s, _ in chosen]
        labels = [y for _, y in chosen]
        used_persons = Counter(_face_person(s) for s in samples)
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
            counts = np.bincount(np.asarray(context.train_labels, int), minlength=len(names))
            add = resolve_sampling_strategy(
                self.strategy, {n: int(counts[i]) for i, n in enumerate(names)}
            )
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


# --------------------------------------------------------------------------- per fold


def held_out_subjects(context: FoldContext) -> set[str]:
    """Subjects a fold may not touch: its test and validation subjects and every subject of
    the pool outside its training side."""
    train = {str(s.subject) for s in context.train}
    fold = context.fold
    held = {str(s) for s in getattr(fold, "test_subjects", ())}
    held |= {str(s) for s in getattr(fold, "val_subjects", ())}
    held |= {str(s.subject) for s in context.pool}
    return held - train


def held_out_persons(context: FoldContext, held_out: set[str]) -> SubjectSet:
    """Persons a fold may not show: the persons of its held-out subjects (``held_out``, from
    :func:`held_out_subjects`) in the pool, and those subjects themselves."""
    pool = list(context.pool) or list(context.train)
    return SubjectSet({sample_person(s) for s in pool if str(s.subject) in held_out} | held_out)


def recipe_profiles(recipe: GenerationRecipe) -> list[tuple[str, CalibrationProfile]]:
    """The calibration profiles ``recipe`` renders with, named by their config key: its
    effects' profile and its framing profile."""
    out = []
    effects = recipe.effects
    if isinstance(effects, ProfileSource) and effects.path:
        out.append((f"recipe.effects.path {effects.path}", CalibrationProfile.load(effects.path)))
    elif isinstance(effects, ProfileEffects):
        out.append((f"recipe.effects {effects.path or '(in memory)'}", effects.profile))
    framing = recipe.identities.framing_profile
    if recipe.identities.framing == "profile" and framing:
        label = f"recipe.identities.framing_profile {framing}"
        out.append((label, CalibrationProfile.load(framing)))
    return out


def check_profiles(recipe: GenerationRecipe, context: FoldContext) -> None:
    """Refuse a fold whose test subjects a calibration profile of ``recipe`` was measured on
    (:func:`recognizer.protocols.leakage.profile_leaks`).

    Raises:
        LeakageError: the violations, naming the profile and the subjects.
    """
    tested = [str(s) for s in getattr(context.fold, "test_subjects", ())]
    if not tested:
        return
    found = []
    for label, profile in recipe_profiles(recipe):
        found += profile_leaks(profile, tested, name=label)
    if found:
        raise LeakageError(getattr(context.fold, "index", context.fold), found)


def clip_subjects(sample: object) -> set[str]:
    """Dataset subjects a synthetic clip touches: its face's and its template's."""
    extra = getattr(sample, "extra", None) or {}
    fields = (extra.get("template_subjects", ""), extra.get("identity_subject", ""))
    return {s for value in fields for s in str(value).split(";") if s}


def _face_person(sample: object) -> str:
    """The person whose face a synthetic clip animates (provenance, else the store's)."""
    extra = getattr(sample, "extra", None) or {}
    return str(extra.get("identity_person") or extra.get("person") or sample.subject)


def _exclude(
    samples: Sequence[object],
    labels: Sequence[int],
    held_out: set[str],
    persons: SubjectSet | None = None,
) -> tuple[list[tuple[object, int]], int, set[str]]:
    """``(kept (sample, label) pairs, number left out, held-out subjects and persons they
    touched)``: a clip is left out when it touches a ``held_out`` subject or animates the face
    of one of ``persons``."""
    persons = persons if persons is not None else SubjectSet(())
    kept, dropped, touched = [], 0, set()
    for sample, label in zip(samples, labels):
        hit = (clip_subjects(sample) & held_out) | persons.matches({_face_person(sample)})
        if hit:
            dropped += 1
            touched |= hit
        else:
            kept.append((sample, label))
    return kept, dropped, touched


def _choose(
    kept: Sequence[tuple[object, int]], want: Mapping[str, int], class_names: Sequence[str]
) -> tuple[list[tuple[object, int]], dict[str, int]]:
    """The first ``want[class]`` kept clips of each class (store order) and the shortfall
    ``{class: missing}``."""
    taken: Counter[str] = Counter()
    chosen = []
    for sample, label in kept:
        name = class_names[label]
        if taken[name] < want.get(name, 0):
            taken[name] += 1
            chosen.append((sample, label))
    shortfall = {n: want[n] - taken[n] for n in want if taken[n] < want[n]}
    return chosen, shortfall


def template_counts(
    templates: Sequence[Template], held_out: set[str] = frozenset()
) -> dict[str, dict[str, int]]:
    """``{class: {source: templates}}`` of the templates touching no ``held_out`` subject
    (source ``expert:<table>`` counts as ``expert``)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for template in templates:
        if not set(template.subjects) & held_out:
            counts[template.emotion][template.source.split(":", 1)[0]] += 1
    return {emotion: dict(sorted(c.items())) for emotion, c in sorted(counts.items())}


# --------------------------------------------------------------------------- the pool

_POOLS: dict[str, SyntheticSet] = {}


def _scheme_index(class_names: Sequence[str], scheme: str) -> dict[str, int]:
    from mesynth.labels.emotions import scheme_labels

    labels = list(scheme_labels(scheme))
    unknown = [c for c in class_names if c not in labels]
    if unknown:
        raise SynthesisError(
            f"class names {unknown} are not labels of scheme {scheme!r} ({labels}); set the "
            "remedy's scheme to the run's scheme"
        )
    return {c: i for i, c in enumerate(class_names)}


def _pool(context: FoldContext) -> tuple[list[object], list[int]]:
    if context.pool:
        return list(context.pool), [int(y) for y in context.pool_labels]
    return list(context.train), [int(y) for y in context.train_labels]


def _bank(source: SyntheticData, recipe: GenerationRecipe, pool: Sequence[object]) -> TemplateBank:
    """The pool's template bank; mined templates per source subject."""
    mining = "mined" in recipe.templates.sources
    if recipe.templates.annotation_tables:
        raise SynthesisError(
            "remedy.synthesis.templates.annotation_tables: the synthetic remedies mine each "
            "fold's training side only (a table of the whole release would leak test subjects' "
            "templates); leave it empty"
        )
    records = (source.template_records or tuple(pool)) if mining else ()
    try:
        return recipe.build_bank(records=records, by_subject=True)
    except RecipeError as err:
        raise SynthesisError(f"remedy synthesis: {err}") from err


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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _dataset_faces(pool: Sequence[object], folder: Path, face_column: bool) -> dict[str, str]:
    """One face per subject of ``pool`` in ``folder``: the first ``face`` cell of its rows
    (``face_column``), else the onset frame of its first clip with frames; returns
    ``{identity name: subject}``.

    Raises:
        SynthesisError: a subject has neither (e.g. apex-flow image rows without ``face``).
    """
    import cv2

    from recognizer.data.frame_source import RawFrames

    frames = RawFrames()
    by_subject: dict[str, list[object]] = defaultdict(list)
    for sample in pool:
        by_subject[str(sample.subject)].append(sample)
    folder.mkdir(parents=True, exist_ok=True)
    owners: dict[str, str] = {}
    for subject, rows in by_subject.items():
        name = _safe(subject)
        faces = [r.extra["face"] for r in rows if face_column and (r.extra or {}).get("face")]
        clips = [r for r in rows if len(frames.frame_numbers(r)) > 1]
        if faces:
            shutil.copyfile(faces[0], folder / f"{name}{Path(faces[0]).suffix.lower()}")
        elif clips:
            first = frames.frame_numbers(clips[0])[0]
            image = frames.read(clips[0], [first])[0]
            cv2.imwrite(str(folder / f"{name}.png"), np.ascontiguousarray(image[:, :, ::-1]))
        else:
            hint = "a `face` column in the manifest" if face_column else "clips with frames"
            raise SynthesisError(
                f"identities.source data: subject {subject!r} has no face (its rows, e.g. "
                f"clip {rows[0].uid}, are single images without a face image); add {hint}"
            )
        owners[name] = subject
    return owners


def _identities(
    source: SyntheticData, recipe: GenerationRecipe, context: FoldContext, pool: Sequence[object]
) -> tuple[IdentitySet, dict[str, str]]:
    """The pool's identities and ``{identity name: subject}`` of faces owned by subjects
    (copies included: a copy belongs to the owner of its :attr:`Identity.person`).

    Raises:
        SynthesisError: a folder holds faces of unknown subjects and is not declared
            subject-free while the protocol has test subjects.
    """
    given = recipe.identities.source
    if given in DATA_SOURCES:
        folder = Path(source.cache_dir) / f"faces_{given}"
        owners = _dataset_faces(pool, folder, face_column=given == "data")
        loaded = recipe.build_identities([p for p in sorted(folder.iterdir()) if p.is_file()])
    else:
        owners = dict(source.identity_subjects)
        loaded = recipe.build_identities()
    mapping, unknown = {}, set()
    for face in loaded.identities:
        base = face.person  # every augmented copy belongs to whom the original belongs
        if base in owners:
            mapping[face.name] = owners[base]
        elif given != "builtin" and given not in DATA_SOURCES:
            unknown.add(base)
    tested = bool(getattr(context.fold, "test_subjects", ()))
    if unknown and tested and not source.faces_subject_free:
        raise SynthesisError(
            f"remedy.synthesis.identities.source={given!r}: faces {sorted(unknown)[:5]} "
            f"({len(unknown)} in all) belong to unknown subjects, so a test subject's face could "
            "be animated. Use identities.source=data (a manifest `face` column: each face owned "
            "by its row's subject), map them with remedy.identity_subjects, or declare them "
            "subject-free with remedy.faces_subject_free=true (e.g. public portraits)"
        )
    return loaded, mapping


def face_persons(
    faces: IdentitySet, owners: Mapping[str, str], pool: Sequence[object]
) -> dict[str, str]:
    """``{identity name: person}``: a face owned by a subject shows that subject's person (in
    the pool's samples), any other face its own :attr:`Identity.person`."""
    of_subject = subject_persons(pool)
    return {
        face.name: of_subject.get(owners[face.name], owners[face.name])
        if face.name in owners
        else face.person
        for face in faces.identities
    }


def _pool_plan(
    source: SyntheticData,
    pool: Sequence[object],
    labels: Sequence[int],
    class_names: Sequence[str],
    emotions: Sequence[str],
    owners: int,
    held_persons: int = 0,
) -> BalancePlan:
    """Clips per class for the neediest fold (see the module docs); ``owners`` subjects own
    faces or templates (a fold leaves out about ``2 / owners`` of the clips), and the faces
    show ``held_persons`` persons that a fold can hold out (it loses ``1 / held_persons``)."""
    names = list(class_names)
    scale = 1.0
    kept = 1.0
    if owners:
        kept *= 1.0 - 2.0 / owners
    if held_persons:
        kept *= 1.0 - 1.0 / max(held_persons, 2)
    if owners or held_persons:
        scale = (1.0 + source.pool_margin) / max(kept, 0.25)
    if source.mode == "fill":
        counts = np.bincount(np.asarray(labels, int), minlength=len(names))
        add = resolve_sampling_strategy(
            source.strategy, {n: int(counts[i]) for i, n in enumerate(names)}
        )
        per_subject: dict[str, Counter[int]] = defaultdict(Counter)
        for sample, label in zip(pool, labels):
            per_subject[str(sample.subject)][int(label)] += 1
        largest = [max((c[i] for c in per_subject.values()), default=0) for i in range(len(names))]
        want = {n: add[n] + largest[i] for i, n in enumerate(names)}
    else:
        want = {n: source.n_per_class for n in names}
    counts_out = {n: (math.ceil(want[n] * scale) if n in emotions else 0) for n in names}
    return BalancePlan(counts_out, source.synthesis.seed)


def synthesize_pool(source: SyntheticData, context: FoldContext) -> SyntheticSet:
    """Make (or reuse) the run's synthetic pool and load it with per-clip provenance.

    The pool depends on the run's samples (``context.pool``), not on the fold: every fold of
    a run gets the same store, rendered once (also memoised in this process).
    """
    recipe = source.recipe()
    _scheme_index(context.class_names, recipe.scheme)
    pool, labels = _pool(context)
    memo = config_hash(
        {
            "settings": source.settings(),
            "pool": [str(getattr(s, "uid", s)) for s in pool],
            "labels": labels,
            "classes": list(context.class_names),
            # a profile file rewritten in place (recalibrated) makes another pool
            "profiles": [p.to_dict() for _, p in recipe_profiles(recipe)],
        }
    )
    if memo in _POOLS:
        return replace(_POOLS[memo], made=False)
    bank = _bank(source, recipe, pool)
    faces, owners = _identities(source, recipe, context, pool)
    persons = face_persons(faces, owners, pool)
    parts = recipe.build(identities=faces, bank=bank)
    record = {
        "identity_subjects": owners,
        "identity_persons": persons,
        "template_subjects": sorted({s for t in bank.templates for s in t.subjects}),
    }
    owning = len(set(owners.values()) | set(record["template_subjects"]))
    if source.pretrain_groups and source.mode != "fill":  # a set leaves out a whole group
        owning = min(owning, source.pretrain_groups)
    pool_persons = SubjectSet(sample_person(s) for s in pool)
    holdable = len({p for p in set(persons.values()) if p in pool_persons})
    plan = _pool_plan(source, pool, labels, context.class_names, bank.emotions, owning, holdable)
    key = config_hash({"inputs": recipe.content(parts, plan), "provenance": record})
    root = Path(source.cache_dir) / key
    made = not (root / PROVENANCE).is_file()
    if plan.total:
        # under DDP each rank renders its shard of the clips (RANK/WORLD_SIZE) and the last
        # one to finish merges the manifest: wait for it before anyone reads the store
        run_recipe(recipe, plan, root, parts=parts, progress=False)
    _every_rank_here()
    if _rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{PROVENANCE}.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(root / PROVENANCE)
    _every_rank_here()
    if plan.total:
        loaded = load_synthetic(root, context.class_names, source.frames)
        made_set = SyntheticSet(root, key, loaded.samples, loaded.labels, made, bank.templates)
    else:
        made_set = SyntheticSet(root, key, [], [], made, bank.templates)
    _POOLS[memo] = made_set
    return made_set


def _rank() -> int:
    """This process's rank in a DDP run (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _every_rank_here() -> None:
    """Wait until every rank of a DDP run gets here (nothing without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# --------------------------------------------------------------------------- loading


def _builtin_identities(root: Path) -> set[str]:
    """Names of a store's identities rendered from the built-in public-domain portraits
    (their ``source`` in ``meta.json`` is ``builtin:<name>``): faces of no dataset subject."""
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        return set()
    identities = json.loads(meta_path.read_text()).get("config", {}).get("identities", [])
    return {
        str(i.get("name"))
        for i in identities
        if isinstance(i, dict) and str(i.get("source", "")).startswith("builtin:")
    }


def _clip_template_subjects(root: Path, clip: str) -> list[str] | None:
    """The template subjects of a clip's ``params/<clip>.json`` (``None``: not recorded)."""
    path = root / "params" / f"{clip}.json"
    if not path.is_file():
        return None
    subjects = json.loads(path.read_text()).get("template", {}).get("subjects")
    return None if subjects is None else [str(s) for s in subjects]


def flow_folder(root: str | Path, frames: SyntheticFrames) -> Path:
    """Where a store's apex-flow images of ``frames`` are cached."""
    from mesynth.flow import tvl1_available

    method = frames.flow_method
    if method == "auto":
        method = "tvl1" if tvl1_available() else "farneback"
    return Path(root) / f"apex_flow_{method}_{frames.flow_size}"


def _flow_pair(sample: object) -> tuple[int, int]:
    """The stored onset and apex frame numbers of a synthetic clip (its two key frames)."""
    from recognizer.data.frame_source import RawFrames

    return tuple(
        sample_key_frames(
            "onset_apex",
            RawFrames().frame_numbers(sample),
            sample.onset,
            sample.apex_or_middle,
            sample.offset,
            2,
        ).frame_numbers
    )


def _write_flow(sample: object, pair: tuple[int, int], frames: SyntheticFrames, path: Path) -> None:
    """Compute ``sample``'s onset → apex flow image and write it to ``path`` atomically."""
    from mesynth.flow import apex_flow, save_apex_flow
    from recognizer.data.frame_source import RawFrames

    onset, apex = RawFrames().read(sample, list(pair))
    image = apex_flow(onset, apex, int(frames.flow_size or 0), frames.flow_method)
    tmp = path.parent / f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}"
    save_apex_flow(tmp, image)  # ranks and threads may cache the same clip
    tmp.replace(path)


def _as_flow(sample: object, pair: tuple[int, int], path: Path) -> object:
    """``sample`` as its cached apex-flow image at ``path``, as
    :class:`recognizer.data.representations.ApexFlow` sees real clips; the two frame numbers
    are kept in ``extra["flow_frames"]``."""
    extra = {**sample.extra, "frame_numbers": "0", "flow_frames": ";".join(map(str, pair))}
    return replace(
        sample, frames=(), frame_numbers=(), array_path=path, onset=0, apex=0, offset=0,
        extra=extra,
    )  # fmt: skip


def compute_flows(
    samples: Sequence[object], frames: SyntheticFrames, folder: Path, workers: int | None = None
) -> list[object]:
    """Each synthetic clip as its apex-flow image cached under ``folder``; the missing images
    are computed by ``workers`` threads at once (OpenCV's optical flow releases the GIL, and
    each thread's OpenCV runs single-threaded; ``None``: the usable cores,
    :func:`recognizer.runtime.usable_cores`). Already cached images are reused as they are.

    Returns:
        the samples in order, each pointing at its ``.png`` flow image.
    """
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from recognizer.runtime import usable_cores

    jobs = []
    for sample in samples:
        pair = _flow_pair(sample)
        jobs.append((sample, pair, folder / f"{_safe(sample.clip)}.png"))
    missing = [job for job in jobs if not job[2].is_file()]
    workers = max(1, min(usable_cores() if workers is None else int(workers), len(missing)))
    if workers == 1 or len(missing) < 2:
        for sample, pair, path in missing:
            _write_flow(sample, pair, frames, path)
    else:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one core per worker thread, not workers x OpenCV's pool
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(lambda job: _write_flow(job[0], job[1], frames, job[2]), missing))
        finally:
            cv2.setNumThreads(previous)
    return [_as_flow(sample, pair, path) for sample, pair, path in jobs]


def load_synthetic(
    root: str | Path,
    class_names: Sequence[str],
    frames: SyntheticFrames | None = None,
    workers: int | None = None,
) -> SyntheticSet:
    """Load a clip store's samples with their provenance, and their class indices in
    ``class_names``.

    Provenance: ``provenance.json`` gives the owners of the faces (``identity_subjects``) and
    the persons they show (``identity_persons``; older records: the store's ``person``), the
    split a store was made for (``train_subjects``, if any) and, for stores whose clips lack
    them, the template subjects of the whole store; each clip's ``params/<clip>.json`` gives
    the subjects of its own template. With ``frames`` asking for a flow, each clip becomes its
    apex-flow image, cached in :func:`flow_folder` (the missing ones computed by ``workers``
    threads at once, :func:`compute_flows`).

    Raises:
        SynthesisError: a clip's label is not among ``class_names``.
    """
    from recognizer.datasets import load

    root = Path(root)
    record = None
    if (root / PROVENANCE).is_file():
        record = json.loads((root / PROVENANCE).read_text())
    index = {c: i for i, c in enumerate(class_names)}
    faces = (record or {}).get("identity_subjects") or {}
    face_people = (record or {}).get("identity_persons") or {}
    subject_free_faces = _builtin_identities(root) if record is None else set()
    folder = None
    if frames is not None and frames.flow_size:
        folder = flow_folder(root, frames)
        folder.mkdir(parents=True, exist_ok=True)
    samples, labels = [], []
    for sample in load("mesynth", root).samples:
        if sample.emotion not in index:
            raise SynthesisError(
                f"{root}: clip {sample.clip} has label {sample.emotion!r}, not one of "
                f"{list(class_names)}"
            )
        mined = _clip_template_subjects(root, sample.clip)
        if record is not None:
            extra = provenance(
                template_subjects=(record.get("template_subjects") or ())
                if mined is None
                else mined,
                identity_subject=faces.get(sample.identity or ""),
                identity_person=face_people.get(sample.identity or "")
                or sample.extra.get("person"),
                train_subjects=record.get("train_subjects"),
            )
        elif mined is not None and sample.identity in subject_free_faces:
            # a store made outside a remedy: provable only for portraits that are no dataset
            # subject's and templates whose subjects each clip records
            extra = provenance(template_subjects=mined, identity_person=sample.extra.get("person"))
        else:
            extra = {}  # unknown provenance; the leakage checker refuses it on real folds
        samples.append(replace(sample, extra={**sample.extra, **extra}))
        labels.append(index[sample.emotion])
    if folder is not None:
        samples = compute_flows(samples, frames, folder, workers)
    return SyntheticSet(root, root.name, samples, labels, made=False)
