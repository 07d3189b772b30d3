"""Synthetic remedies: per-fold, leak-free synthesis with :mod:`mesynth`.

``synth_fill``
    generate clips for the deficit classes of the fold's real training data (a
    :func:`mesynth.generation.balance.fill`/sampling-strategy plan) and train on real + synthetic.
``synth_pretrain``
    pretrain on a balanced synthetic set, then fine-tune on the fold's real training data.
``synth_only``
    train on a balanced synthetic set only; validate and test on real data.

Clips are made with one :class:`mesynth.generation.recipe.GenerationRecipe` (config key
``synthesis``, the same keys as ``mesynth generate``'s ``recipe``); the fold fills in what only
it knows, through the recipe. Everything a fold synthesises comes from its training side only:

- templates: ``mined`` from the fold's real training samples
  (``recipe.build_bank(records=..., subjects=...)`` with the training subjects), optionally
  combined with ``expert`` tables and ``macro_onset`` CSVs;
- identities: the built-in portraits (optionally augmented), a folder of faces, or ``onset``:
  the onset frames of the fold's real training clips, so a test subject's face is never used.

Caching: a fold's store lives in ``<cache_dir>/<key>`` where ``key`` hashes the store's inputs
(plan, template bank content, identity images, the recipe's content settings) and, when the
inputs hold subject data (mined templates, onset faces), the fold's training subjects. A fold,
a seed or a model whose inputs are the same reuses the clips; ``synth_pretrain`` with
subject-free inputs builds one store (and one pretrained model) for every fold.

Provenance: every synthetic sample carries :func:`recognizer.leakage.provenance` in
``Sample.extra`` (template subjects, the identity's subject, the split it was made for), also
written to ``<store>/provenance.json``; :func:`recognizer.leakage.check_fold` checks it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from mesynth.face.identities import IdentitySet
from mesynth.generation.balance import BalancePlan, resolve_sampling_strategy
from mesynth.generation.recipe import GenerationRecipe, RecipeError, run_recipe
from mesynth.generation.store import config_hash
from mesynth.templates.bank import TemplateBank
from recognizer.leakage import provenance
from recognizer.remedies.base import FoldContext, FoldData, LossChoice, Remedy
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
    try:
        return GenerationRecipe(**{str(k): v for k, v in value.items()})
    except TypeError as err:
        raise SynthesisError(f"synthesis: {err}") from err


@dataclass(frozen=True)
class SyntheticSet:
    """A synthetic store ready for one fold: its samples with provenance, and its key."""

    root: Path
    key: str
    samples: list
    labels: list[int]
    made: bool


@dataclass(frozen=True)
class SyntheticData:
    """The fold-data source of the synthetic remedies (see the module docs).

    Attributes:
        mode: ``fill``, ``pretrain`` or ``only``.
        synthesis: how the clips are made (a recipe, or a mapping of its fields); its ``seed``
            also seeds the plans, and ``identities.source: onset`` takes the onset frames of
            the fold's training clips.
        cache_dir: folder of the per-input-hash stores (and of the onset faces).
        strategy: ``synth_fill`` plan: an imbalanced-learn style sampling strategy name
            (``all``, ``not majority``, ``minority``...) or a float ratio in (0, 1].
        n_per_class: clips per class of the balanced ``synth_pretrain``/``synth_only`` set.
        identity_subjects: for a folder of faces: ``{identity name: dataset-qualified subject}``
            of faces that belong to a dataset subject (recorded as provenance).
        pretrain_epochs: ``synth_pretrain`` epochs on the synthetic set (``None``: the
            trainer's).
        store: a ready store to use instead of synthesising (``synth_pretrain``/``synth_only``);
            its ``provenance.json`` is checked like a fresh one.
        template_records: records to mine templates from instead of the fold's training
            samples (e.g. another dataset's annotations); mining the evaluated dataset's test
            subjects this way is a leak the checker refuses.
    """

    mode: str = "fill"
    synthesis: GenerationRecipe = field(default_factory=GenerationRecipe)
    cache_dir: str = ".cache/synthetic"
    strategy: str | float = "all"
    n_per_class: int = 50
    identity_subjects: Mapping[str, str] = field(default_factory=dict)
    pretrain_epochs: int | None = None
    store: str | None = None
    template_records: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "synthesis", _recipe(self.synthesis))
        object.__setattr__(self, "cache_dir", str(self.cache_dir))
        object.__setattr__(self, "identity_subjects", dict(self.identity_subjects))
        object.__setattr__(self, "template_records", tuple(self.template_records))
        if self.mode not in MODES:
            raise SynthesisError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.store is not None and self.mode == "fill":
            raise SynthesisError("synth_fill synthesises per fold; a ready store cannot fill")
        if self.n_per_class < 1:
            raise SynthesisError(f"n_per_class must be >= 1, got {self.n_per_class}")

    def settings(self) -> dict[str, object]:
        """Plain settings; ``template_records`` are summarised by their subjects."""
        subjects = sorted({str(r.subject) for r in self.template_records})
        return {
            "mode": self.mode,
            "synthesis": asdict(self.synthesis),
            "cache_dir": self.cache_dir,
            "strategy": self.strategy,
            "n_per_class": self.n_per_class,
            "identity_subjects": self.identity_subjects,
            "pretrain_epochs": self.pretrain_epochs,
            "store": self.store,
            "template_records": f"{len(self.template_records)} records of {len(subjects)} subjects",
        }

    def fold_data(self, context: FoldContext) -> FoldData:
        if self.store is not None:
            synthetic = load_synthetic(self.store, context.class_names)
            notes = [f"synthetic store {self.store} (given): {len(synthetic.samples)} clips"]
        else:
            synthetic = synthesize_for_fold(self, context)
            verb = "made" if synthetic.made else "reused"
            notes = [f"synthetic store {synthetic.root} ({verb}): {len(synthetic.samples)} clips"]
        real, labels = list(context.train), list(context.train_labels)
        if self.mode == "fill":
            return FoldData(real + synthetic.samples, labels + synthetic.labels, notes=notes)
        if self.mode == "pretrain":
            return FoldData(
                real,
                labels,
                pretrain=synthetic.samples,
                pretrain_labels=synthetic.labels,
                pretrain_key=synthetic.key,
                pretrain_epochs=self.pretrain_epochs,
                notes=notes,
            )
        return FoldData(synthetic.samples, synthetic.labels, notes=notes)


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


# --------------------------------------------------------------------------- synthesis


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


def _bank(source: SyntheticData, context: FoldContext) -> tuple[TemplateBank, set[str]]:
    """The fold's template bank and the subjects whose annotations it was mined from."""
    recipe = source.synthesis
    train_subjects = {str(s.subject) for s in context.train}
    mining = "mined" in recipe.templates.sources
    records = (source.template_records or tuple(context.train)) if mining else ()
    subjects = None if source.template_records else train_subjects
    try:
        bank = recipe.build_bank(records=records, subjects=subjects)
    except RecipeError as err:
        raise SynthesisError(f"fold {getattr(context.fold, 'index', '?')}: {err}") from err
    mined_from = set()
    if any(t.source == "mined" for t in bank.templates):
        mined_from = {
            str(r.subject)
            for r in records
            if (subjects is None or r.subject in subjects) and getattr(r, "aus", "")
        }
    return bank, mined_from


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _onset_faces(context: FoldContext, folder: Path) -> dict[str, str]:
    """Write the onset (first stored) frame of one clip per training subject into ``folder``;
    returns ``{identity name: subject}``."""
    import cv2

    from recognizer.data.frame_source import RawFrames

    source = RawFrames()
    folder.mkdir(parents=True, exist_ok=True)
    subjects: dict[str, str] = {}
    for sample in context.train:
        subject = str(sample.subject)
        if subject in subjects.values():
            continue
        name = _safe(subject)
        path = folder / f"{name}.png"
        if not path.is_file():
            first = source.frame_numbers(sample)[0]
            frame = source.read(sample, [first])[0]
            cv2.imwrite(str(path), np.ascontiguousarray(frame[:, :, ::-1]))
        subjects[name] = subject
    return subjects


def _identities(source: SyntheticData, context: FoldContext) -> tuple[IdentitySet, dict[str, str]]:
    """The fold's identities and ``{identity name: subject}`` for faces of dataset subjects."""
    recipe = source.synthesis
    if recipe.identities.source == "onset":
        folder = Path(source.cache_dir) / "onset_faces"
        owners = _onset_faces(context, folder)
        loaded = recipe.build_identities([folder / f"{name}.png" for name in owners])
    else:
        owners = dict(source.identity_subjects)
        loaded = recipe.build_identities()
    mapping = {}
    for face in loaded.identities:
        base = face.name.split("~aug", 1)[0]
        if base in owners:
            mapping[face.name] = owners[base]
    return loaded, mapping


def _plan(source: SyntheticData, context: FoldContext, emotions: Sequence[str]) -> BalancePlan:
    seed = source.synthesis.seed
    names = list(context.class_names)
    if source.mode == "fill":
        counts = np.bincount(np.asarray(context.train_labels, int), minlength=len(names))
        real = {n: int(counts[i]) for i, n in enumerate(names)}
        add = resolve_sampling_strategy(source.strategy, real)
        return BalancePlan({n: (add[n] if n in emotions else 0) for n in names}, seed)
    return BalancePlan({n: (source.n_per_class if n in emotions else 0) for n in names}, seed)


def synthesize_for_fold(source: SyntheticData, context: FoldContext) -> SyntheticSet:
    """Make (or reuse) the fold's synthetic store and load it with provenance."""
    recipe = source.synthesis
    _scheme_index(context.class_names, recipe.scheme)
    bank, mined_from = _bank(source, context)
    faces, face_subjects = _identities(source, context)
    parts = recipe.build(identities=faces, bank=bank)
    plan = _plan(source, context, bank.emotions)
    subject_data = bool(mined_from or face_subjects)
    train_subjects = sorted({str(s.subject) for s in context.train})
    record = {
        "template_subjects": sorted(mined_from),
        "identity_subjects": face_subjects,
        "train_subjects": train_subjects if subject_data else None,
    }
    key = config_hash({"inputs": recipe.content(parts, plan), "provenance": record})
    root = Path(source.cache_dir) / key
    made = not (root / PROVENANCE).is_file()
    if plan.total:
        run_recipe(recipe, plan, root, parts=parts, progress=False)
    root.mkdir(parents=True, exist_ok=True)
    (root / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")
    if not plan.total:
        return SyntheticSet(root, key, [], [], made)
    loaded = load_synthetic(root, context.class_names)
    return replace(loaded, key=key, made=made)


def load_synthetic(root: str | Path, class_names: Sequence[str]) -> SyntheticSet:
    """Load a clip store's samples with the provenance in its ``provenance.json`` (none: the
    store carries no subject data), and their class indices in ``class_names``.

    Raises:
        SynthesisError: a clip's label is not among ``class_names``.
    """
    from recognizer.datasets import load

    root = Path(root)
    record = {}
    if (root / PROVENANCE).is_file():
        record = json.loads((root / PROVENANCE).read_text())
    index = {c: i for i, c in enumerate(class_names)}
    faces = record.get("identity_subjects") or {}
    samples, labels = [], []
    for sample in load("mesynth", root).samples:
        if sample.emotion not in index:
            raise SynthesisError(
                f"{root}: clip {sample.clip} has label {sample.emotion!r}, not one of "
                f"{list(class_names)}"
            )
        extra = provenance(
            template_subjects=record.get("template_subjects") or (),
            identity_subject=faces.get(sample.identity or ""),
            train_subjects=record.get("train_subjects"),
        )
        samples.append(replace(sample, extra={**sample.extra, **extra}))
        labels.append(index[sample.emotion])
    return SyntheticSet(root, root.name, samples, labels, made=False)
