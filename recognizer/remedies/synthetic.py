"""Synthetic remedies: per-fold, leak-free synthesis with :mod:`mesynth`.

``synth_fill``
    generate clips for the deficit classes of the fold's real training data (a
    :func:`mesynth.generation.balance.fill`/sampling-strategy plan) and train on real + synthetic.
``synth_pretrain``
    pretrain on a balanced synthetic set, then fine-tune on the fold's real training data.
``synth_only``
    train on a balanced synthetic set only; validate and test on real data.

Everything a fold synthesises comes from that fold's training side only:

- templates: ``mined`` from the fold's real training samples
  (:meth:`TemplateBank.mined` with ``subjects=`` the training subjects), optionally combined
  with ``expert`` tables and ``macro_onset`` CSVs (:meth:`TemplateBank.combine`);
- identities: the built-in portraits (optionally augmented), a folder of faces, or ``onset``:
  the onset frames of the fold's real training clips, so a test subject's face is never used.

Caching: a fold's store lives in ``<cache_dir>/<key>`` where ``key`` hashes the store's inputs
(plan, template bank content, identity images, generator settings) and, when the inputs hold
subject data (mined templates, onset faces), the fold's training subjects. A fold, a seed or a
model whose inputs are the same reuses the clips; ``synth_pretrain`` with subject-free inputs
builds one store (and one pretrained model) for every fold.

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

from recognizer.leakage import provenance
from recognizer.remedies.base import FoldContext, FoldData, LossChoice, Remedy
from recognizer.remedies.registry import register_remedy

MODES = ("fill", "pretrain", "only")
TEMPLATE_SOURCES = ("mined", "expert", "macro_onset")
IDENTITY_SOURCES = ("builtin", "onset")
PROVENANCE = "provenance.json"


class SynthesisError(ValueError):
    """Synthesis settings or data that cannot make a store; the message says which."""


@dataclass(frozen=True)
class SynthesisSettings:
    """How a synthetic remedy makes its clips (plain values, so Hydra can build it).

    Attributes:
        cache_dir: folder of the per-input-hash stores.
        scheme: label scheme of the templates (the run's class names must be its labels).
        templates: template sources, any of ``mined`` (the fold's real training samples),
            ``expert`` and ``macro_onset``.
        template_weights: share of each source within an emotion (default equal).
        expert_tables: expert tables (``None``: the scheme's defaults).
        macro_onset_csvs, macro_onset_labels: OpenFace CSVs and their emotions.
        identities: ``builtin`` (the two portraits), ``onset`` (onset frames of the fold's
            training clips), or a folder/image of faces.
        identity_subjects: for a folder of faces: ``{identity name: dataset-qualified subject}``
            of faces that belong to a dataset subject (recorded as provenance).
        identity_copies: augmented copies per identity (mirror, shape, colour jitter).
        size: identity crop size = rendered frame size (pixels).
        landmark_backend: landmark backend for faces without landmark files.
        face_crops: the face images are tight face crops (e.g. a release's cropped frames):
            when no face is detected, fit the landmarks in the whole image.
        apex_iod: motion calibration: largest landmark displacement of a typical single-AU ME
            at apex, in inter-ocular distances.
        fps: frame rate of the synthetic time course.
        num_frames: key frames stored per clip.
        sampling: ``uniform`` or ``adaptive`` key frames.
        head_motion, blinks, noise, flicker, jpeg: realism effects.
        strategy: ``synth_fill`` plan: an imbalanced-learn style sampling strategy name
            (``all``, ``not majority``, ``minority``...) or a float ratio in (0, 1].
        n_per_class: clips per class of the balanced ``synth_pretrain``/``synth_only`` set.
        seed: generation seed.
        batch_size: clips rendered per batch (speed only).
        device: rendering device (``auto``, ``cpu``, ``cuda``).
    """

    cache_dir: str = ".cache/synthetic"
    scheme: str = "dfme7"
    templates: tuple[str, ...] = ("mined", "expert")
    template_weights: tuple[float, ...] | None = None
    expert_tables: tuple[str, ...] | None = None
    macro_onset_csvs: tuple[str, ...] = ()
    macro_onset_labels: tuple[str, ...] = ()
    identities: str = "builtin"
    identity_subjects: Mapping[str, str] = field(default_factory=dict)
    identity_copies: int = 0
    size: int = 64
    landmark_backend: str = "auto"
    face_crops: bool = False
    apex_iod: float = 0.03
    fps: float = 200.0
    num_frames: int = 8
    sampling: str = "uniform"
    head_motion: bool = False
    blinks: bool = False
    noise: bool = False
    flicker: bool = False
    jpeg: bool = False
    strategy: str | float = "all"
    n_per_class: int = 50
    seed: int = 0
    batch_size: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("templates", "macro_onset_csvs", "macro_onset_labels"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        if self.template_weights is not None:
            weights = tuple(float(w) for w in self.template_weights)
            object.__setattr__(self, "template_weights", weights)
        if self.expert_tables is not None:
            object.__setattr__(self, "expert_tables", tuple(map(str, self.expert_tables)))
        object.__setattr__(self, "identity_subjects", dict(self.identity_subjects))
        unknown = sorted(set(self.templates) - set(TEMPLATE_SOURCES))
        if not self.templates or unknown:
            raise SynthesisError(
                f"templates must name sources among {TEMPLATE_SOURCES}, got {list(self.templates)}"
            )
        if self.template_weights is not None and len(self.template_weights) != len(self.templates):
            raise SynthesisError(
                f"{len(self.template_weights)} template_weights for {len(self.templates)} sources"
            )
        if "macro_onset" in self.templates and not self.macro_onset_csvs:
            raise SynthesisError("templates include macro_onset but macro_onset_csvs is empty")
        if self.n_per_class < 1 or self.size < 16 or self.num_frames < 2:
            raise SynthesisError(
                f"need n_per_class >= 1, size >= 16, num_frames >= 2; got {self.n_per_class}, "
                f"{self.size}, {self.num_frames}"
            )


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
        synthesis: how the clips are made.
        pretrain_epochs: ``synth_pretrain`` epochs on the synthetic set (``None``: the
            trainer's).
        store: a ready store to use instead of synthesising (``synth_pretrain``/``synth_only``);
            its ``provenance.json`` is checked like a fresh one.
        template_records: records to mine templates from instead of the fold's training
            samples (e.g. another dataset's annotations); mining the evaluated dataset's test
            subjects this way is a leak the checker refuses.
    """

    mode: str = "fill"
    synthesis: SynthesisSettings = field(default_factory=SynthesisSettings)
    pretrain_epochs: int | None = None
    store: str | None = None
    template_records: tuple = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SynthesisError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.store is not None and self.mode == "fill":
            raise SynthesisError("synth_fill synthesises per fold; a ready store cannot fill")

    def settings(self) -> dict[str, object]:
        """Plain settings; ``template_records`` are summarised by their subjects."""
        subjects = sorted({str(r.subject) for r in self.template_records})
        return {
            "mode": self.mode,
            "synthesis": asdict(self.synthesis),
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
    pretrain_epochs: int | None = None,
    store: str | None = None,
    template_records: Sequence[object] = (),
    **settings: object,
) -> Remedy:
    """Build a synthetic remedy from flat keywords (those of :class:`SynthesisSettings` plus
    the loss options), as ``mesynth/configs/remedy/synth_*.yaml`` give them."""
    try:
        synthesis = SynthesisSettings(**settings)  # type: ignore[arg-type]
    except TypeError as err:
        raise TypeError(f"remedy {name!r}: {err}") from err
    data = SyntheticData(
        mode=mode,
        synthesis=synthesis,
        pretrain_epochs=pretrain_epochs,
        store=store,
        template_records=tuple(template_records),
    )
    loss = LossChoice(class_balanced=class_balanced, gamma=gamma, beta=beta)
    return Remedy(name, loss=loss, data=data)


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


def _bank(source: SyntheticData, context: FoldContext, motion: object) -> tuple[object, set[str]]:
    """The fold's template bank and the subjects whose annotations it was mined from."""
    from mesynth.templates.bank import TemplateBank

    cfg = source.synthesis
    train_subjects = {str(s.subject) for s in context.train}
    banks, weights, mined_from = [], [], set()
    for i, kind in enumerate(cfg.templates):
        if kind == "mined":
            records = source.template_records or tuple(context.train)
            subjects = None if source.template_records else train_subjects
            bank = TemplateBank.mined(records, cfg.scheme, subjects=subjects)
            if len(bank):
                mined_from |= {
                    str(r.subject)
                    for r in records
                    if (subjects is None or r.subject in subjects) and getattr(r, "aus", "")
                }
        elif kind == "expert":
            bank = TemplateBank.expert(cfg.scheme, cfg.expert_tables)
        else:
            bank = TemplateBank.macro_onset(
                cfg.macro_onset_csvs, cfg.macro_onset_labels, cfg.scheme
            )
        bank = bank.restrict_codes(motion.known_codes)  # type: ignore[attr-defined]
        if len(bank):
            banks.append(bank)
            weights.append(cfg.template_weights[i] if cfg.template_weights else 1.0)
    if not banks:
        raise SynthesisError(
            f"fold {getattr(context.fold, 'index', '?')}: no usable template from "
            f"{list(cfg.templates)} (mined records without AUs?)"
        )
    return TemplateBank.combine(banks, weights), mined_from


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


def _identities(source: SyntheticData, context: FoldContext) -> tuple[list, dict[str, str]]:
    """The fold's identities and ``{identity name: subject}`` for faces of dataset subjects."""
    from mesynth.face.identities import IdentityAugmentation, load_identities

    cfg = source.synthesis
    augmentation = IdentityAugmentation(copies=cfg.identity_copies)
    options = {
        "size": cfg.size,
        "augmentation": augmentation,
        "seed": cfg.seed,
        "backend": cfg.landmark_backend,
        "cache_dir": Path(cfg.cache_dir) / "landmarks",
        "whole_image_fallback": cfg.face_crops,
    }
    if cfg.identities == "onset":
        folder = Path(cfg.cache_dir) / "onset_faces"
        owners = _onset_faces(context, folder)
        loaded = load_identities([folder / f"{name}.png" for name in owners], **options)
    else:
        owners = dict(cfg.identity_subjects)
        loaded = load_identities(cfg.identities, **options)
    faces = list(loaded.identities)
    mapping = {}
    for face in faces:
        base = face.name.split("~aug", 1)[0]
        if base in owners:
            mapping[face.name] = owners[base]
    return faces, mapping


def _plan(source: SyntheticData, context: FoldContext, emotions: Sequence[str]) -> object:
    from mesynth.generation.balance import BalancePlan, resolve_sampling_strategy

    cfg = source.synthesis
    names = list(context.class_names)
    if source.mode == "fill":
        counts = np.bincount(np.asarray(context.train_labels, int), minlength=len(names))
        real = {n: int(counts[i]) for i, n in enumerate(names)}
        add = resolve_sampling_strategy(cfg.strategy, real)
        return BalancePlan({n: (add[n] if n in emotions else 0) for n in names}, cfg.seed)
    return BalancePlan({n: (cfg.n_per_class if n in emotions else 0) for n in names}, cfg.seed)


def synthesize_for_fold(source: SyntheticData, context: FoldContext) -> SyntheticSet:
    """Make (or reuse) the fold's synthetic store and load it with provenance."""
    from mesynth.generation.pipeline import generate, generation_config
    from mesynth.generation.store import config_hash
    from mesynth.motion.au_basis import MotionModel
    from mesynth.motion.timing import TimingSampler
    from mesynth.render.effects import EffectsConfig

    cfg = source.synthesis
    _scheme_index(context.class_names, cfg.scheme)
    motion = MotionModel.expert(apex_iod=cfg.apex_iod)
    bank, mined_from = _bank(source, context, motion)
    faces, face_subjects = _identities(source, context)
    plan = _plan(source, context, bank.emotions)
    timing = TimingSampler(fps=cfg.fps)
    realism = EffectsConfig(
        head_motion=cfg.head_motion,
        blinks=cfg.blinks,
        noise=cfg.noise,
        flicker=cfg.flicker,
        jpeg=cfg.jpeg,
    )
    settings = {"mode": "keyframes", "num_frames": cfg.num_frames, "sampling": cfg.sampling}
    inputs = generation_config(
        faces, bank, motion, timing, plan, realism=realism, inverse_iterations=1, **settings
    )
    subject_data = bool(mined_from or face_subjects)
    train_subjects = sorted({str(s.subject) for s in context.train})
    record = {
        "template_subjects": sorted(mined_from),
        "identity_subjects": face_subjects,
        "train_subjects": train_subjects if subject_data else None,
    }
    key = config_hash({"inputs": inputs, "provenance": record})
    root = Path(cfg.cache_dir) / key
    made = not (root / PROVENANCE).is_file()
    if plan.total:
        generate(
            faces,
            bank,
            motion,
            timing,
            plan,
            root,
            realism=realism,
            device=cfg.device,
            batch_size=cfg.batch_size,
            progress=False,
            **settings,
        )
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
