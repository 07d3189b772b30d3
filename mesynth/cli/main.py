"""``mesynth``: the generator's command line (Hydra over ``mesynth/configs/``)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from mesynth.calibration.adversarial import AdversarialSearchError
from mesynth.calibration.calibrate import CalibrationError
from mesynth.calibration.flow_images import FlowCalibrationError
from mesynth.calibration.profile import ProfileError
from mesynth.cli.app import Command, run_command
from mesynth.cli.calibrate import (
    calibrate_adversarial_command,
    calibrate_command,
    calibrate_flows_command,
    realism_command,
)
from mesynth.environment import environment_report, format_report
from mesynth.evaluation.realism_report import ReportError
from mesynth.face.frame_files import FrameNumberError
from mesynth.face.framing import FramingError
from mesynth.face.identities import IdentityError
from mesynth.face.image_io import ImageReadError
from mesynth.face.landmarks import LandmarkError
from mesynth.generation.balance import PlanError
from mesynth.generation.recipe import RecipeError
from mesynth.generation.store import StoreArgumentError, StoreError
from mesynth.labels.emotions import UnknownLabelError
from mesynth.motion.au_basis import MotionModelError
from mesynth.motion.timing import TimingError
from mesynth.records import RecordReadError
from mesynth.templates.bank import TemplateBank
from mesynth.templates.mining import read_annotation_table
from mesynth.templates.types import TemplateError

#: errors of the mesynth commands that are the user's to fix: one line, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    AdversarialSearchError,
    CalibrationError,
    FlowCalibrationError,
    FrameNumberError,
    FramingError,
    IdentityError,
    ImageReadError,
    LandmarkError,
    MotionModelError,
    PlanError,
    ProfileError,
    RecipeError,
    RecordReadError,
    ReportError,
    StoreArgumentError,
    StoreError,
    TemplateError,
    TimingError,
    UnknownLabelError,
)


def env_command(cfg: DictConfig) -> None:
    """Print versions, devices and which landmark / optical-flow backends are usable."""
    print(format_report(environment_report()))


def _plan(cfg: DictConfig, scheme: str, seed: int):
    """The balance plan of ``cfg.mesynth.plan`` seeded with ``seed``; ``classes: null`` means
    the classes of ``scheme``."""
    from hydra.utils import instantiate

    from mesynth.labels.emotions import scheme_labels

    node = cfg.mesynth.plan
    extra: dict[str, object] = {"seed": seed}
    if "classes" in node and node.classes is None:
        extra["classes"] = list(scheme_labels(scheme))
    return instantiate(node, _convert_="all")(**extra)


def _check_before_faces(cfg: DictConfig, recipe, plan) -> None:
    """The store arguments and the plan's classes, checked before the identities are loaded
    (which may detect landmarks and fill the landmark cache).

    Raises:
        StoreArgumentError: a bad ``format``, ``image_format`` or ``jpeg_quality``.
        PlanError: a class the recipe's scheme does not have (it has no templates).
    """
    from mesynth.generation.store import check_store_arguments
    from mesynth.labels.emotions import scheme_labels

    check_store_arguments(list(cfg.format), recipe.frames.mode, cfg.image_format, cfg.jpeg_quality)
    known = list(scheme_labels(recipe.scheme))
    unknown = sorted(c for c, n in plan.counts.items() if n and c not in known)
    if unknown:
        raise PlanError(
            f"mesynth.plan classes {unknown} are no classes of scheme {recipe.scheme!r}, so no "
            f"template makes them (its classes: {known})"
        )


def generate_command(cfg: DictConfig) -> None:
    """Generate a class-balanced synthetic clip store with ``cfg.recipe`` (resumable; sharded
    under torchrun)."""
    from hydra.utils import instantiate

    from mesynth.generation.recipe import run_recipe

    recipe = instantiate(cfg.recipe, _convert_="all")
    plan = _plan(cfg, recipe.scheme, recipe.seed)
    if plan.total == 0:
        raise PlanError(
            "mesynth.plan asks for 0 clips of every class: nothing to generate; "
            "set mesynth.plan.n_per_class (or the fill target) above 0"
        )
    _check_before_faces(cfg, recipe, plan)
    parts = recipe.build()
    print(parts.identities.summary())
    print(f"plan: {plan.total} clips " + ", ".join(f"{k}={v}" for k, v in plan.counts.items()))
    summary = run_recipe(
        recipe,
        plan,
        cfg.out_dir,
        parts=parts,
        formats=list(cfg.format),
        image_format=cfg.image_format,
        jpeg_quality=int(cfg.jpeg_quality),
        progress=bool(cfg.progress),
    )
    print(summary)


def preview_command(cfg: DictConfig) -> None:
    """Write a GIF per chosen clip, a labelled contact sheet, a per-frame sharpness trace and a
    motion-outside-the-face map."""
    from mesynth.evaluation.preview import preview_store

    clips = OmegaConf.to_container(cfg.clips) if cfg.clips is not None else None
    paths = preview_store(
        cfg.store,
        [str(c) for c in clips] if clips else None,
        cfg.out_dir,
        max_frames=int(cfg.max_frames),
        gif_fps=float(cfg.gif_fps),
        magnify=float(cfg.magnify),
    )
    print("\n".join(str(p) for p in paths))


def stats_command(cfg: DictConfig) -> None:
    """Print per-class statistics and AU frequencies of a store and plot its class histogram and
    timings."""
    from pathlib import Path

    from mesynth.evaluation.stats import au_frequencies, plot_stats, store_table, summarize

    table = store_table(cfg.store)
    print(summarize(table).round(2).to_string())
    print("\nAU frequencies (% of each class's clips)")
    print(au_frequencies(table).round(0).astype(int).to_string())
    out = cfg.out_dir or Path(cfg.store) / "stats"
    print("\n".join(str(p) for p in plot_stats(table, out)))


def templates_command(cfg: DictConfig) -> None:
    """Build the template bank from the configured sources and print its per-emotion summary."""
    sources = None if cfg.sources is None else list(cfg.sources)
    banks = [TemplateBank.expert(cfg.scheme, sources)]
    weights = [cfg.expert_weight]
    if cfg.mined.table:
        subjects = None if cfg.mined.subjects is None else list(cfg.mined.subjects)
        records = read_annotation_table(cfg.mined.table)
        banks.append(TemplateBank.mined(records, cfg.scheme, subjects=subjects))
        weights.append(cfg.mined.weight)
    if cfg.macro.csvs:
        banks.append(
            TemplateBank.macro_onset(
                list(cfg.macro.csvs),
                list(cfg.macro.labels),
                cfg.scheme,
                fraction=tuple(cfg.macro.fraction),
                divisor=cfg.macro.divisor,
            )
        )
        weights.append(cfg.macro.weight)
    bank = TemplateBank.combine(banks, weights)
    print(f"AU templates, scheme {cfg.scheme}")
    for report in bank.reports:
        print(report)
    print(bank.summary().to_string())
    if cfg.details:
        print(bank.to_frame().drop(columns="citation").to_string(index=False))


#: ``env``, shared by both tools (``mer env`` reports the same environment).
ENV_COMMAND = Command(
    "env", env_command, "show versions, devices and available backends", run_dir=False
)

COMMANDS: dict[str, Command] = {
    "env": ENV_COMMAND,
    "generate": Command(
        "generate",
        generate_command,
        "generate a balanced synthetic clip store",
        resumable=True,
        groups=("preset",),
    ),
    "preview": Command(
        "preview",
        preview_command,
        "GIFs, contact sheet, sharpness and outside-face motion",
        run_dir=False,
    ),
    "stats": Command(
        "stats",
        stats_command,
        "clips per class, AU frequencies, durations and intensities",
        run_dir=False,
    ),
    "templates": Command(
        "templates", templates_command, "print the AU template bank", run_dir=False
    ),
    "calibrate": Command(
        "calibrate", calibrate_command, "measure a real dataset into a calibration profile"
    ),
    "calibrate-adversarial": Command(
        "calibrate_adversarial",
        calibrate_adversarial_command,
        "search realism settings until a domain classifier cannot tell synthetic from real",
        resumable=True,
    ),
    "calibrate-flows": Command(
        "calibrate_flows",
        calibrate_flows_command,
        "calibrate from apex-flow images and face crops (the MEGC2019 composite)",
    ),
    "realism": Command(
        "realism", realism_command, "report the synthetic-to-real gap (domain classifier test)"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return run_command("mesynth", COMMANDS, argv, user_errors=USER_ERRORS)


if __name__ == "__main__":
    sys.exit(main())
