"""The run's synthetic pool: rendered once from the whole run's samples, cached by the hash of
its inputs and loaded with per-clip provenance (see :mod:`recognizer.remedies.synthetic`).

The pool's templates are mined per source subject, its faces are owned by subjects where they
come from the data, and ``<store>/provenance.json`` records who owns what, so that each fold can
leave out what touches its held-out subjects (:mod:`recognizer.remedies.fold_selection`).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch.distributed as dist

from mesynth.face.identities import IdentitySet
from mesynth.generation.balance import BalancePlan, resolve_sampling_strategy
from mesynth.generation.recipe import DATA_SOURCES, GenerationRecipe, RecipeError, run_recipe
from mesynth.generation.store import config_hash
from mesynth.templates.bank import TemplateBank
from mesynth.templates.types import Template
from recognizer.data.representations import SyntheticFrames
from recognizer.protocols.leakage import SubjectSet, provenance, sample_person, subject_persons
from recognizer.remedies.base import FoldContext
from recognizer.remedies.fold_selection import recipe_profiles
from recognizer.remedies.synthetic_flows import compute_flows, flow_folder, safe_file_name

PROVENANCE = "provenance.json"


class SynthesisError(ValueError):
    """Synthesis settings or data that cannot make a store; the message says which."""


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


def _bank(source: object, recipe: GenerationRecipe, pool: Sequence[object]) -> TemplateBank:
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
        name = safe_file_name(subject)
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
    source: object, recipe: GenerationRecipe, context: FoldContext, pool: Sequence[object]
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


def fill_counts(
    strategy: str | float, labels: Sequence[int], class_names: Sequence[str]
) -> dict[str, int]:
    """``{class: clips to add}`` by the ``synth_fill`` sampling ``strategy``
    (:func:`mesynth.generation.balance.resolve_sampling_strategy`) to the class counts of
    ``labels`` (indices into ``class_names``)."""
    counts = np.bincount(np.asarray(labels, int), minlength=len(class_names))
    return resolve_sampling_strategy(
        strategy, {n: int(counts[i]) for i, n in enumerate(class_names)}
    )


def _pool_plan(
    source: object,
    pool: Sequence[object],
    labels: Sequence[int],
    class_names: Sequence[str],
    emotions: Sequence[str],
    owners: int,
    held_persons: int = 0,
) -> BalancePlan:
    """Clips per class for the neediest fold (see :mod:`recognizer.remedies.synthetic`);
    ``owners`` subjects own faces or templates (a fold leaves out about ``2 / owners`` of the
    clips), and the faces show ``held_persons`` persons that a fold can hold out (it loses
    ``1 / held_persons``)."""
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
        add = fill_counts(source.strategy, labels, names)
        per_subject: dict[str, Counter[int]] = defaultdict(Counter)
        for sample, label in zip(pool, labels):
            per_subject[str(sample.subject)][int(label)] += 1
        largest = [max((c[i] for c in per_subject.values()), default=0) for i in range(len(names))]
        want = {n: add[n] + largest[i] for i, n in enumerate(names)}
    else:
        want = {n: source.n_per_class for n in names}
    counts_out = {n: (math.ceil(want[n] * scale) if n in emotions else 0) for n in names}
    return BalancePlan(counts_out, source.synthesis.seed)


def synthesize_pool(source: object, context: FoldContext) -> SyntheticSet:
    """Make (or reuse) the run's synthetic pool of ``source`` (a
    :class:`recognizer.remedies.synthetic.SyntheticData`) and load it with per-clip provenance.

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
