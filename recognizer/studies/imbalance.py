"""A self-contained imbalance study on a synthetic stand-in for a real dataset.

The *target* domain plays the real dataset: clips made by the generator with DFME's 7-class
imbalance (counts proportional to DFME's Table 1), with a motion calibration (``apex_iod``) and
realism settings that the *source* domain (what the synthetic remedies generate) does not
share. Each target identity (an augmented copy of a built-in portrait) is one subject; its
person is the portrait it was copied from, and the source animates the same two portraits.
So the folds are person-independent (:func:`recognizer.protocols.by_person`: with two
portraits, two folds, each training on one person's copies and testing on the other's), and
each fold's synthetic pool leaves out the test person's face. The remedies are compared on the
same folds and seeds with :func:`recognizer.experiments.runner.run_protocol`, and
:func:`recognizer.evaluation.grid.collect` writes the table and figures; :func:`fold_persons` says
what the folds and pools kept apart, from what was run.

The target is synthetic: the study shows how the remedies behave under a domain gap and a
known imbalance, not how they do on real micro-expressions.

Run it with ``make study`` (``python -m recognizer.studies.imbalance``); ``make demo`` runs a
tiny version.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mesynth.render.effects import EffectsConfig
from recognizer.evaluation.grid import Collected, collect
from recognizer.runtime import use_threads_for_process

if TYPE_CHECKING:
    from mesynth.generation.recipe import GenerationRecipe

#: Clips per emotion in DFME (Table 1, parts A + B + C, the 7 labelled classes).
DFME_COUNTS = {
    "anger": 619,
    "contempt": 401,
    "disgust": 2528,
    "fear": 892,
    "happiness": 992,
    "sadness": 635,
    "surprise": 1208,
}
SCHEME = "dfme7"


def proportional_counts(total: int, reference: dict[str, int] = DFME_COUNTS) -> dict[str, int]:
    """``{class: count}`` summing to ``total`` in the proportions of ``reference`` (largest
    remainders; every class keeps at least one clip)."""
    if total < len(reference):
        raise ValueError(f"total {total} must be at least the {len(reference)} classes")
    shares = np.asarray(list(reference.values()), dtype=float)
    exact = shares / shares.sum() * total
    counts = np.maximum(np.floor(exact).astype(int), 1)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    i = 0
    while counts.sum() < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > total:
        counts[int(np.argmax(counts))] -= 1
    return dict(zip(reference, counts.tolist()))


@dataclass
class StudyConfig:
    """Settings of a study (defaults: ``make study``, under 30 minutes on 2 CPU cores).

    Attributes:
        out_dir: runs, stores and the collected report.
        total_clips: clips of the target domain (DFME proportions).
        target_copies: augmented copies per built-in portrait; the copies (not the originals)
            are the target's subjects.
        target_realism: realism effects of the target (:class:`mesynth.render.effects.EffectsConfig`
            switches); the source uses flicker only.
        target_apex_iod, source_apex_iod: motion calibration of each domain.
        size: generated crop size (pixels); the model sees ``input_size``.
        num_frames: key frames per clip.
        input_size: frame size the model sees.
        remedies: remedies compared (names of :func:`recognizer.remedies.create_remedy`).
        seeds: training seeds.
        n_splits: person-independent folds (at most the number of persons: two portraits
            give two folds).
        epochs: training epochs per fold (pretraining: ``pretrain_epochs``).
        pretrain_epochs: epochs on the synthetic set for ``synth_pretrain``.
        pretrain_per_class: clips per class of the ``synth_pretrain`` set.
        widths: R3D-18 channel widths.
        stem: R3D stem (``torchvision``: 3×7×7, no max-pool, keeps small inputs' detail).
        lr: SGD learning rate.
        batch_size: clips per step.
        pretrain_store: a ready balanced store for ``synth_pretrain`` (``None``: synthesise).
        title: the report's title.
        report_dir: where the collected report goes (``None``: ``out_dir/report``).
        log_every: the trainer prints a line every this many epochs (``0``: never; fold lines
            print either way).
        threads: the trainer's intra-op threads (``"auto"``: :mod:`recognizer.runtime`).
    """

    out_dir: Path = Path("study_out")
    total_clips: int = 140
    target_copies: int = 4
    target_realism: tuple[str, ...] = ("blinks", "noise", "jpeg")
    target_apex_iod: float = 0.3
    source_apex_iod: float = 0.2
    size: int = 48
    num_frames: int = 8
    input_size: int = 48
    remedies: tuple[str, ...] = ("none", "resample", "cb", "focal", "synth_fill", "synth_pretrain")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_splits: int = 3
    epochs: int = 15
    pretrain_epochs: int = 3
    pretrain_per_class: int = 16
    widths: tuple[int, ...] = (8, 16, 24, 32)
    stem: str = "torchvision"
    lr: float = 0.01
    batch_size: int = 16
    pretrain_store: Path | None = None
    title: str = "Imbalance study on a synthetic stand-in for DFME"
    report_dir: Path | None = None
    log_every: int = 0
    threads: int | str = "auto"


def make_target(cfg: StudyConfig) -> tuple[list, list[int], list[str]]:
    """Generate (or reuse) the target domain; returns ``(samples, labels, class_names)``.

    Target samples are marked ``source="real"`` with ``dataset="target"`` and subject
    ``target/<identity>``: to the pipeline they are the real data.
    """
    from mesynth.generation.balance import BalancePlan
    from mesynth.generation.recipe import run_recipe
    from mesynth.labels.emotions import scheme_labels
    from recognizer.datasets import load

    names = list(scheme_labels(SCHEME))
    recipe = target_recipe(cfg)
    faces = recipe.build_identities()
    copies = [f for f in faces.identities if f.person != f.name]  # the augmented copies
    counts = proportional_counts(cfg.total_clips)
    store = cfg.out_dir / "target_store"
    run_recipe(
        recipe,
        BalancePlan({n: counts[n] for n in names}, seed=1234),
        store,
        parts=recipe.build(identities=copies),
        progress=False,
    )
    samples = [
        dataclasses.replace(s, dataset="target", subject=f"target/{s.identity}", source="real")
        for s in load("mesynth", store).samples
    ]
    return samples, [names.index(s.emotion) for s in samples], names


def target_recipe(cfg: StudyConfig) -> GenerationRecipe:
    """How the target domain is made: augmented built-in portraits (the copies are its
    subjects), ``target_apex_iod`` and ``target_realism``."""
    from mesynth.generation.recipe import GenerationRecipe

    return GenerationRecipe(
        scheme=SCHEME,
        identities={
            "copies": cfg.target_copies,
            "shape_jitter": 0.05,
            "cache_dir": str(cfg.out_dir / "landmarks"),
        },
        motion={"apex_iod": cfg.target_apex_iod},
        effects=EffectsConfig(**dict.fromkeys(cfg.target_realism, True)),
        frames={"num_frames": cfg.num_frames},
        size=cfg.size,
        device="cpu",
        seed=11,
    )


def source_recipe(cfg: StudyConfig) -> GenerationRecipe:
    """What the synthetic remedies generate: the two original portraits, templates mined from
    each fold's training subjects plus the expert tables, ``source_apex_iod``, flicker only."""
    from mesynth.generation.recipe import GenerationRecipe

    return GenerationRecipe(
        scheme=SCHEME,
        identities={"cache_dir": str(cfg.out_dir / "synthetic" / "landmarks")},
        templates={"sources": ("mined", "expert")},
        motion={"apex_iod": cfg.source_apex_iod},
        effects=EffectsConfig(flicker=True),
        frames={"num_frames": cfg.num_frames},
        size=cfg.size,
        device="cpu",
    )


def study_protocol(cfg: StudyConfig, samples: Sequence[object]) -> object:
    """The study's protocol: ``kfold`` over the target's persons (:func:`by_person`), with
    ``min(n_splits, persons)`` folds."""
    from recognizer.protocols import by_person
    from recognizer.protocols.leakage import subject_persons

    persons = len(set(subject_persons(samples).values()))
    splits = max(2, min(cfg.n_splits, persons))
    return by_person("kfold", samples, n_splits=splits, val_fraction=0.0)


def fold_persons(run: Path, samples: Sequence[object]) -> dict[str, object]:
    """What a finished run kept apart, read from its ``folds.json`` and its folds'
    ``class_counts.json``: ``folds`` (per fold the test and training persons and, for a
    synthetic remedy, the persons whose faces its synthetic clips show), ``person_independent``
    (no fold trains on a person it tests, in real or synthetic data) and ``shared`` (the test
    persons any fold's training data shows)."""
    import json

    from recognizer.protocols.leakage import subject_persons

    persons = subject_persons(samples)
    folds, shared = [], set()
    for fold in json.loads((Path(run) / "folds.json").read_text()):
        test = {persons.get(s, s) for s in fold["test_subjects"]}
        train = {persons.get(s, s) for s in fold["train_subjects"] + fold["val_subjects"]}
        counts = Path(run) / f"fold_{fold['index']:02d}" / "class_counts.json"
        report = json.loads(counts.read_text()).get("remedy", {}) if counts.is_file() else {}
        synthetic = set(report.get("synthetic_persons", {}))
        shared |= test & (train | synthetic)
        folds.append({"index": fold["index"], "test": sorted(test), "train": sorted(train),
                      "synthetic": sorted(synthetic)})  # fmt: skip
    return {"folds": folds, "person_independent": not shared, "shared": sorted(shared)}


def describe_folds(checked: dict[str, object]) -> str:
    """One sentence from :func:`fold_persons`: what the folds hold apart, as checked."""
    folds = checked["folds"]
    parts = [
        f"fold {f['index']} tests {', '.join(f['test'])} and trains on {', '.join(f['train'])}"
        + (f" (synthetic faces: {', '.join(f['synthetic'])})" if f["synthetic"] else "")
        for f in folds
    ]
    if checked["person_independent"]:
        verdict = (
            f"{len(folds)} person-independent folds, checked on the folds run: no fold's "
            "training data, real or synthetic, shows a person it tests on"
        )
    else:
        verdict = (
            f"the folds are NOT person-independent: training data shows test person(s) "
            f"{', '.join(checked['shared'])}"
        )
    return f"{verdict} ({'; '.join(parts)})."


def _remedy(name: str, cfg: StudyConfig) -> object:
    from recognizer.remedies import create_remedy

    if not name.startswith("synth_"):
        return create_remedy(name)
    if name == "synth_pretrain" and cfg.pretrain_store is not None:
        return create_remedy(
            name, store=str(cfg.pretrain_store), pretrain_epochs=cfg.pretrain_epochs
        )
    options: dict[str, object] = {
        "cache_dir": str(cfg.out_dir / "synthetic"),
        "synthesis": source_recipe(cfg),
        "n_per_class": cfg.pretrain_per_class,
    }
    if name == "synth_pretrain":
        options["pretrain_epochs"] = cfg.pretrain_epochs
    return create_remedy(name, **options)


def run_study(cfg: StudyConfig, *, log: bool = True) -> Collected:
    """Generate the target, run every (remedy, seed) on the same folds, collect the report."""
    from recognizer.data.representations import KeyFrameClip
    from recognizer.data.torch_dataset import ClipDataset
    from recognizer.experiments.runner import run_protocol
    from recognizer.models import create_model
    from recognizer.training.trainer import TrainerConfig

    start = time.perf_counter()
    samples, labels, names = make_target(cfg)
    if log:
        counts = np.bincount(labels, minlength=len(names))
        print(f"target: {len(samples)} clips, {len({s.subject for s in samples})} subjects, "
              f"per class {dict(zip(names, counts.tolist()))}")  # fmt: skip
    protocol = study_protocol(cfg, samples)
    representation = KeyFrameClip(num_frames=cfg.num_frames, size=cfg.input_size, flip=True)
    splits = protocol.inner.n_splits if hasattr(protocol, "inner") else protocol.n_splits
    runs = []
    arms = [(remedy_name, seed) for remedy_name in cfg.remedies for seed in cfg.seeds]
    for arm, (remedy_name, seed) in enumerate(arms, 1):
        if log:
            print(f"[arm {arm}/{len(arms)}] {remedy_name}, seed {seed}: {splits} folds × "
                  f"{cfg.epochs} epochs · study {time.perf_counter() - start:.0f} s so far",
                  flush=True)  # fmt: skip

        def factory(subset, subset_labels, train, seed=seed):
            return ClipDataset(subset, subset_labels, representation, train=train, seed=seed)

        out = cfg.out_dir / "runs" / remedy_name / f"seed{seed}"
        t0 = time.perf_counter()
        result = run_protocol(
            samples,
            labels,
            protocol=protocol,
            dataset_factory=factory,
            model_factory=lambda k: create_model("r3d18", k, widths=cfg.widths, stem=cfg.stem),
            remedy=_remedy(remedy_name, cfg),
            trainer_config=TrainerConfig(
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                step_size=max(cfg.epochs // 2, 1),
                device="cpu",
                progress=False,
                seed=seed,
                log_every=cfg.log_every if log else 0,
                threads=cfg.threads,
            ),
            out_dir=out,
            num_classes=len(names),
            class_names=names,
            metadata={"model": "r3d18-tiny", "data": "synthetic target (DFME imbalance)"},
        )
        runs.append(out)
        if log:
            pooled = result.summary["pooled"]
            print(f"{remedy_name:15s} seed {seed}: UF1 {pooled['uf1']:.3f} "
                  f"UAR {pooled['uar']:.3f} ({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    collected = collect(runs, cfg.report_dir or cfg.out_dir / "report", title=cfg.title)
    checked = [fold_persons(run, samples) for run in runs]
    sentence = describe_folds(_merge_checks(checked))
    (cfg.out_dir / "folds_checked.txt").write_text(sentence + "\n")
    if log:
        print(f"folds: {sentence}")
    if log:
        print(f"study done in {time.perf_counter() - start:.0f} s: {collected.report}")
    return collected


def _merge_checks(checked: Sequence[dict[str, object]]) -> dict[str, object]:
    """One :func:`fold_persons` result for every run of a study (same folds; synthetic faces
    of every remedy pooled)."""
    folds = [dict(f) for f in checked[0]["folds"]]
    for other in checked[1:]:
        for fold, more in zip(folds, other["folds"]):
            fold["synthetic"] = sorted(set(fold["synthetic"]) | set(more["synthetic"]))
    shared = sorted({p for c in checked for p in c["shared"]})
    return {"folds": folds, "person_independent": not shared, "shared": shared}


STUDY_FIGURES = ("metrics.png", "class_distribution.png")


def write_study_page(collected: Collected, cfg: StudyConfig, page: Path, seconds: float) -> Path:
    """Write the docs page of a study: settings, the measured table, figures (copied next to
    the page under ``img/study/``) and the plain statement that the target is synthetic."""
    import shutil

    from recognizer.evaluation.grid import mean_std, per_class_display, per_class_summary
    from recognizer.evaluation.report import markdown_table

    images = page.parent / "img" / "study"
    images.mkdir(parents=True, exist_ok=True)
    figures = [
        *STUDY_FIGURES,
        "per_class_f1_r3d18-tiny_kfold.png",
        *(f"{kind}_r3d18-tiny_kfold_{r}.png" for kind in ("confusion", "curves")
          for r in cfg.remedies),
    ]  # fmt: skip
    for name in figures:
        if (collected.report.parent / name).is_file():
            shutil.copy(collected.report.parent / name, images / name)
    order = {name: i for i, name in enumerate(cfg.remedies)}
    table = collected.summary.sort_values("remedy", key=lambda c: c.map(order)).reset_index()
    shown = table[["remedy", "seeds", "N"]].copy()
    seeds = table["seeds"]
    for metric in ("UF1", "UAR", "ACC"):
        shown[f"{metric} pooled"] = [
            mean_std(m, s, n, 3) for m, s, n in zip(table[metric], table[f"{metric} std"], seeds)
        ]
        shown[f"{metric} per-fold"] = [
            mean_std(m, s, n, 3)
            for m, s, n in zip(
                table[f"{metric} fold mean"], table[f"{metric} fold mean std"], seeds
            )
        ]
    several = len(cfg.seeds) > 1
    classes = per_class_summary(collected.runs)
    counts = proportional_counts(cfg.total_clips)
    best = table.loc[table["UF1"].idxmax()]
    checked = cfg.out_dir / "folds_checked.txt"
    folds_text = checked.read_text().strip() if checked.is_file() else "(folds not checked)"
    lines = [
        "# Imbalance study (synthetic stand-in)",
        "",
        '> **The target domain is synthetic.** The "real" data of this study is a synthetic '
        "stand-in made by the generator, not real micro-expressions. The numbers show how the "
        "remedies behave under a known imbalance and a domain gap between the generated "
        "training clips and the target; they say nothing about accuracy on CASME II, SAMM or "
        "DFME. For those, run the study on the real releases "
        "([tutorial](tutorials/imbalance_study.md)).",
        "",
        "Made by `make study` (`python -m recognizer.studies.imbalance --docs docs/study.md`) in "
        f"{seconds / 60:.0f} minutes on a shared 2-core CPU.",
        "",
        "## Setup",
        "",
        f"- **Target** (plays the real dataset): {cfg.total_clips} clips with DFME's 7-class "
        "imbalance (Table 1 proportions: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"); identities: {cfg.target_copies} augmented copies (mirror, shape, colour jitter) "
        "of each built-in portrait, one subject each, whose person is the portrait; motion "
        "calibration "
        f"`apex_iod={cfg.target_apex_iod}`; realism: {', '.join(cfg.target_realism) or 'none'}.",
        "- **Source** (what `synth_fill`/`synth_pretrain` generate): the two original portraits "
        "(the same two persons as the target; each fold's pool leaves out its test person's "
        "face); "
        f"`apex_iod={cfg.source_apex_iod}`; realism: flicker only; templates mined from each "
        "fold's training subjects plus the expert tables.",
        "- The target's clips come from the expert template tables and carry their AU codes; "
        "mining the training subjects' annotations recovers those combinations, so the two "
        "domains differ in face augmentation, motion size and realism, not in which AUs move "
        "or whose faces they are. Real data, whose AU coding is noisier, is harder.",
        f"- **Motion is exaggerated**: `apex_iod` {cfg.target_apex_iod} and "
        f"{cfg.source_apex_iod} are about ten times the apex size of real MEs (0.01-0.03 IOD), "
        "so that a tiny model trained for a few epochs on small clips learns anything within "
        "the time budget. At real ME sizes use real-size inputs, more epochs and a GPU.",
        "- **Protocol**: k-fold over persons (same folds for every remedy and seed), seeds "
        f"{list(cfg.seeds)}: {folds_text}",
        f"- **Model**: R3D-18 with widths {list(cfg.widths)}, {cfg.num_frames} frames × "
        f"{cfg.input_size}² px, SGD lr {cfg.lr}, {cfg.epochs} epochs "
        f"(`synth_pretrain`: {cfg.pretrain_epochs} pretraining epochs on "
        f"{cfg.pretrain_per_class} clips per class first).",
        "",
        "## Results",
        "",
        ("Mean ± std over seeds" if several else "One seed")
        + "; *pooled* over all test predictions, *per-fold* the mean over folds.",
        "",
        markdown_table(shown),
        "",
        "![UF1 and UAR per remedy](img/study/metrics.png)",
        "",
        "![Training clips per class before and after each remedy]"
        "(img/study/class_distribution.png)",
        "",
    ]
    if len(classes):
        lines += [
            "### Per class",
            "",
            "Precision (P), recall (R) and F1 of the pooled test predictions"
            + (", mean over seeds" if several else "")
            + "; *support*: target clips of the class.",
            "",
            markdown_table(per_class_display(classes), 3),
            "",
        ]
        if (images / "per_class_f1_r3d18-tiny_kfold.png").is_file():
            lines += ["![F1 per class](img/study/per_class_f1_r3d18-tiny_kfold.png)", ""]
    for remedy in cfg.remedies:
        name = f"confusion_r3d18-tiny_kfold_{remedy}.png"
        if (images / name).is_file():
            lines += [f"![confusion matrix, {remedy}](img/study/{name})", ""]
    curves = [f"curves_r3d18-tiny_kfold_{r}.png" for r in cfg.remedies]
    if any((images / name).is_file() for name in curves):
        lines += ["### Training curves (first seed, one line per fold)", ""]
        lines += [f"![training curves](img/study/{name})\n" for name in curves
                  if (images / name).is_file()]  # fmt: skip
    base = table.loc[table["remedy"] == "none"]
    over = " over seeds" if several else ", one seed"
    lines += [
        "## Reading it",
        "",
        f"Highest pooled UF1: `{best['remedy']}` "
        f"({mean_std(best['UF1'], best['UF1 std'], best['seeds'], 3)}{over})"
        + (
            "; without a remedy: "
            f"{mean_std(base['UF1'].iloc[0], base['UF1 std'].iloc[0], best['seeds'], 3)}."
            if len(base)
            else "."
        ),
        "",
        "The model is tiny and trained for a few epochs on a few hundred clips, so differences "
        "of a few points are within the spread over seeds. Re-run with more clips, epochs and "
        "seeds (`python -m recognizer.studies.imbalance --help`) before drawing conclusions, "
        "and use the real datasets for any claim about micro-expression recognition.",
        "",
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return page


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("study_out"), help="work folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(StudyConfig.seeds))
    parser.add_argument("--epochs", type=int, default=StudyConfig.epochs)
    parser.add_argument("--clips", type=int, default=StudyConfig.total_clips)
    parser.add_argument("--folds", type=int, default=StudyConfig.n_splits)
    parser.add_argument("--docs", type=Path, default=None, help="also write this docs page")
    args = parser.parse_args(argv)
    threads = use_threads_for_process("auto")
    print(f"threads: {threads.threads} ({threads.reason})")
    cfg = StudyConfig(
        out_dir=args.out,
        seeds=tuple(args.seeds),
        epochs=args.epochs,
        total_clips=args.clips,
        n_splits=args.folds,
    )
    start = time.perf_counter()
    collected = run_study(cfg)
    print(collected.report.read_text().split("## ", 1)[0])
    if args.docs is not None:
        page = write_study_page(collected, cfg, args.docs, time.perf_counter() - start)
        print(f"docs page: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
