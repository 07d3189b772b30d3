"""``make demo``: generate a balanced set from the built-in identities, then run a tiny
imbalance study (``none`` vs ``synth_fill``, one seed) and write ``demo_out/report.md``.

About a minute on an idle 2-core CPU (53 s measured). The "real" data of the study is a
synthetic stand-in with DFME's class imbalance (see :mod:`recognizer.studies.imbalance`);
``make study`` runs the full version.

The report says first what the demo can and cannot show (:func:`limits_section`: the chance
level of UF1, UAR and ACC for the target's label distribution, and whether its folds are
person-independent, checked on the folds run), then the generated balanced set (a showcase of
generation: clips per class as a table and a histogram, and the onset, apex and magnified
difference of one clip per class), the synthetic clips ``synth_fill`` actually trained on in
each fold (:func:`used_synthetic_section`, from the run's ``class_counts.json`` and its pool
store), the comparison (:func:`comparison_section`) and the study's table, per-class scores,
confusion matrices and training curves. Progress prints throughout: the
generation every few clips, then per arm (remedy) the folds with the time left, and inside each
fold a line every few epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mesynth.environment import environment_report, format_report

#: generated clip size (pixels) and key frames per clip
SIZE = 48
FRAMES = 8
#: frame size the model sees: R3D-tiny with the torchvision stem costs about 2.7 times less
#: per step at 32² than at 48² on a 2-core CPU (measured), and the demo is a smoke test
INPUT_SIZE = 32
#: training epochs per fold (a trainer line every LOG_EVERY epochs)
EPOCHS = 12
LOG_EVERY = 4
#: balanced clips per class
PER_CLASS = 20


def clip_progress(total: int, label: str, lines: int = 5) -> Callable[[object], None]:
    """An ``on_clip`` callback for :func:`mesynth.generation.recipe.run_recipe` that prints
    ``label: done/total clips`` with the time left about ``lines`` times over ``total`` clips."""
    step = max(1, -(-total // lines))
    start = time.perf_counter()
    done = 0

    def on_clip(_params: object) -> None:
        nonlocal done
        done += 1
        if done % step == 0 or done == total:
            seconds = time.perf_counter() - start
            left = seconds / done * (total - done)
            print(f"{label}: {done}/{total} clips · {seconds:.1f} s, about {left:.0f} s left",
                  flush=True)  # fmt: skip

    return on_clip


def generate_balanced_set(out: Path, per_class: int) -> Path:
    """A balanced DFME-7 clip store from the two built-in portraits (2 augmented copies each),
    ``per_class`` clips per class of ``FRAMES`` key frames at ``SIZE``² px."""
    from mesynth.generation.balance import equal
    from mesynth.generation.recipe import GenerationRecipe, run_recipe
    from mesynth.generation.store import StoreNotFoundError, iter_manifest
    from mesynth.labels.emotions import scheme_labels
    from mesynth.render.effects import EffectsConfig

    recipe = GenerationRecipe(
        scheme="dfme7",
        identities={"copies": 2, "cache_dir": str(out.parent / "landmarks")},
        motion={"apex_iod": 0.2},
        effects=EffectsConfig(blinks=True, flicker=True),
        frames={"num_frames": FRAMES},
        size=SIZE,
        device="cpu",
    )
    parts = recipe.build()
    print(parts.identities.summary())
    plan = equal(per_class, list(scheme_labels(recipe.scheme)), seed=recipe.seed)
    try:
        there = sum(1 for _ in iter_manifest(out))
    except StoreNotFoundError:
        there = 0
    todo = max(plan.total - there, 0)
    summary = run_recipe(
        recipe, plan, out, parts=parts, progress=False, on_clip=clip_progress(todo, "generate")
    )
    print(summary)
    return out


def describe_balanced_set(
    store: Path,
    out_dir: Path,
    report_dir: Path,
    *,
    heading: str = "## The generated balanced set (a generation showcase, not trained on)",
    what: str = "",
) -> list[str]:
    """Figures of a clip store in ``out_dir`` (``class_histogram.png``, and ``key_frames.png``:
    onset, apex and ``|apex - onset|`` of the first clip of every class) and the Markdown lines
    that show them with the per-class counts (links relative to ``report_dir``), under
    ``heading``; ``what`` says what the store is."""
    from mesynth.evaluation.preview import choose_clips, key_frame_sheet
    from mesynth.evaluation.stats import plot_stats, store_table, summarize
    from mesynth.labels.emotions import scheme_labels
    from recognizer.evaluation.report import markdown_table

    table = store_table(store)
    histogram = plot_stats(table, out_dir)[0]
    rows = choose_clips(store)
    order = {name: i for i, name in enumerate(scheme_labels("dfme7"))}
    rows.sort(key=lambda row: order.get(row["label"], len(order)))
    sheet = key_frame_sheet(store, rows, out_dir / "key_frames.png")
    per_class = summarize(table).reset_index()
    per_class = per_class.sort_values("label", key=lambda c: c.map(order)).rename(
        columns={"label": "class", "duration_ms": "duration (ms)",
                 "onset_to_apex_ms": "onset→apex (ms)", "mean_intensity": "mean AU intensity"}
    )  # fmt: skip
    link = {p: p.relative_to(report_dir).as_posix() for p in (histogram, sheet)}
    what = what or (
        "the two built-in portraits and augmented copies; the study below renders its own "
        "pool per run"
    )
    return [
        heading,
        "",
        f"`{store}`: {len(table)} clips from {table['identity'].nunique()} identities ({what}), "
        f"{FRAMES} key frames of {SIZE}×{SIZE} px each.",
        "",
        markdown_table(per_class, 1),
        "",
        f"![clips per class]({link[histogram]})",
        "",
        "One clip per class: the onset frame, the apex frame and their difference (magnified "
        "8 times; the motion itself is a few pixels).",
        "",
        f"![onset, apex and difference per class]({link[sheet]})",
        "",
    ]


def chance_levels(counts: Sequence[int]) -> dict[str, dict[str, float]]:
    """UF1, UAR and ACC of label-blind predictors on a test set with ``counts`` clips per class
    (``K`` classes, shares ``p_k``): ``uniform`` guesses a class at random (UAR ``1/K``, ACC
    ``1/K``, expected F1 of class k ``2 p_k / (1 + K p_k)``), ``majority`` always answers the
    largest class (UAR ``1/K``, ACC ``max p_k``, UF1 ``2 p_max / (1 + p_max) / K``).
    Any label-blind predictor has expected UAR ``1/K``."""
    shares = np.asarray(counts, dtype=float)
    shares = shares / shares.sum()
    k = len(shares)
    top = float(shares.max())
    return {
        "uniform": {
            "UF1": float(np.mean(2 * shares / (1 + k * shares))),
            "UAR": 1.0 / k,
            "ACC": 1.0 / k,
        },
        "majority": {"UF1": 2 * top / (1 + top) / k, "UAR": 1.0 / k, "ACC": top},
    }


def limits_section(counts: Mapping[str, int], folds_sentence: str) -> list[str]:
    """What the demo can and cannot show: chance levels of its label distribution (``counts``,
    ``{class: clips}``, every clip tested once) and its folds as checked."""
    chance = chance_levels(list(counts.values()))
    k = len(counts)
    rows = "\n".join(
        f"| {name} | {v['UF1']:.3f} | {v['UAR']:.3f} | {v['ACC']:.3f} |"
        for name, v in (("random guess", chance["uniform"]), ("always the largest class",
                                                               chance["majority"]))
    )  # fmt: skip
    return [
        "## What this demo can and cannot show",
        "",
        f"- **Chance level.** The target has {sum(counts.values())} clips in {k} classes "
        f"({', '.join(f'{c} {n}' for c, n in counts.items())}). A predictor that ignores the "
        f"clip has expected UAR 1/K = 1/{k} = {1 / k:.3f}; UF1 and ACC at chance depend on "
        "the guess:",
        "",
        "| label-blind predictor | UF1 | UAR | ACC |",
        "|---|---|---|---|",
        rows,
        "",
        f"- **Folds.** {folds_sentence}",
        "- **What it cannot show.** The target is synthetic (the generator's clips on copies of "
        "two portraits), there is one seed and two persons, and the model is tiny: it is a "
        "smoke test of the pipeline and of the leakage rules, not evidence that a remedy helps "
        "on real micro-expressions. A difference between the arms smaller than the spread over "
        "seeds and persons says nothing.",
        "",
    ]


def used_synthetic_section(run: Path, out_dir: Path, report_dir: Path) -> list[str]:
    """The synthetic clips a ``synth_fill`` run trained on, per fold: clips per class (training
    minus real counts of its ``class_counts.json``), the persons whose faces they show, what was
    left out, and a key-frame preview of the pool store they came from (in ``out_dir``)."""
    folds = sorted(Path(run).glob("fold_*/class_counts.json"))
    if not folds:
        return []
    from mesynth.labels.emotions import scheme_labels

    names = list(scheme_labels("dfme7"))
    header = "| fold | " + " | ".join(names) + " | total | faces of | left out |"
    lines = [
        "## The synthetic clips synth_fill trained on",
        "",
        "Each fold takes what it needs from one pool rendered for the run, after leaving out "
        "every clip that touches a held-out subject or shows a held-out person (templates mined "
        "from them, their faces). Clips added per class, from each fold's `class_counts.json`:",
        "",
        header,
        "|" + "---|" * (len(names) + 4),
    ]
    store = None
    for path in folds:
        counts = json.loads(path.read_text())
        added = [t - r for t, r in zip(counts["train"], counts["real"])]
        report = counts.get("remedy", {})
        store = report.get("synthetic_store", store)
        persons = ", ".join(f"{p} {n}" for p, n in report.get("synthetic_persons", {}).items())
        cells = " | ".join(str(a) for a in added)
        lines.append(
            f"| {path.parent.name[5:]} | {cells} | {sum(added)} | {persons or '-'} | "
            f"{report.get('synthetic_excluded_clips', 0)} of {report.get('synthetic_pool', 0)} |"
        )
    lines.append("")
    if store and Path(store).is_dir():
        lines += describe_balanced_set(
            Path(store), out_dir, report_dir, heading="### Its pool store",
            what="the pool the folds drew from (all its faces; each fold used only the faces "
            "listed above)",
        )  # fmt: skip
    return lines


def comparison_section(runs_dir: Path, baseline: str = "none") -> list[str]:
    """The comparison of the study's arms (the runs under ``runs_dir``): per arm the pooled
    UF1, UAR and ACC against chance, and the paired difference to ``baseline`` with its
    bootstrap interval over the test subjects (:mod:`recognizer.evaluation.compare`; one seed,
    so seed noise is not in it, and the reading says so)."""
    from mesynth.face.identities import person_of
    from recognizer.evaluation.compare import CompareError, arms_from_runs, compare_arms

    lines = ["## The comparison", ""]
    try:
        arms = arms_from_runs([runs_dir])
        subjects = {str(s) for a in arms for t in a.runs.values() for s in t["subject"]}
        persons = {s: person_of(s.rpartition("/")[2]) for s in subjects}
        comparison = compare_arms(arms, baseline, unit_of=persons)
    except CompareError as err:
        return [*lines, f"No paired comparison: {err}", ""]
    return [
        *lines,
        comparison.markdown(),
        f"The resampled units are the {comparison.subjects} persons the test subjects are copies "
        "of, not the subjects (copies of one face are not independent). With so few persons, "
        "one seed and a tiny model, the interval cannot show that a remedy helps: the demo "
        "shows how the comparison reads, not a result.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    from recognizer.runtime import use_threads_for_process
    from recognizer.studies.imbalance import StudyConfig, proportional_counts, run_study

    threads = use_threads_for_process("auto")
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--per-class", type=int, default=PER_CLASS, help="balanced clips per class")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="training epochs per fold")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    print("== installation")
    print(format_report(environment_report()))
    print(f"threads: {threads.threads} ({threads.reason})")

    print("\n== 1. a balanced synthetic set from the built-in identities", flush=True)
    store = generate_balanced_set(args.out / "balanced_store", args.per_class)
    balanced = describe_balanced_set(store, args.out / "balanced_set", args.out)
    print(f"figures: {args.out / 'balanced_set'} ({time.perf_counter() - start:.0f} s so far)")

    print("\n== 2. a tiny imbalance study: none vs synth_fill (per-fold synthetic balancing)")
    cfg = StudyConfig(
        out_dir=args.out / "study",
        report_dir=args.out,
        size=SIZE,
        num_frames=FRAMES,
        input_size=INPUT_SIZE,
        remedies=("none", "synth_fill"),
        seeds=(0,),
        epochs=args.epochs,
        log_every=LOG_EVERY,
        title="mesynth demo: none vs synth_fill on a synthetic DFME-like target",
    )
    collected = run_study(cfg)
    report = collected.report
    text = report.read_text()
    intro = (
        f"A balanced set generated from the built-in identities ({args.per_class} clips per "
        "class, below), then a tiny study. The study's target is a synthetic stand-in with "
        "DFME's imbalance, not real data; one seed of a model this small "
        f"(R3D-tiny, {FRAMES} frames × {INPUT_SIZE}² px, {args.epochs} epochs) is a smoke "
        "test, not a result (docs/study.md has the full study: six remedies, three seeds).\n\n"
    )
    counts = proportional_counts(cfg.total_clips)
    folds_sentence = (cfg.out_dir / "folds_checked.txt").read_text().strip()
    limits = limits_section(counts, folds_sentence)
    used = used_synthetic_section(
        cfg.out_dir / "runs" / "synth_fill" / "seed0", args.out / "synthetic_used", args.out
    )
    comparison = comparison_section(cfg.out_dir / "runs")
    title, _, rest = text.partition("\n\n")
    study = "## The study: none vs synth_fill\n\n"
    parts = [*limits, *balanced, *used, *comparison]
    report.write_text(f"{title}\n\n{intro}" + "\n".join(parts) + f"\n{study}{rest}")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s")
    print(f"report: {report.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
