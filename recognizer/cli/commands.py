"""``mer``: micro-expression recognition from the command line (Hydra over ``mesynth/configs/``).

``mer train`` runs one model under one protocol and remedy, ``mer evaluate`` re-predicts a
finished run from its saved weights, ``mer report`` tabulates result folders, ``mer
experiment`` runs a grid of model × remedy × protocol × seed (Hydra multirun: joblib locally,
submitit on SLURM) and ``mer experiment-report`` collects a grid into one report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mesynth.cli.app import Command, run_command
from mesynth.cli.main import ENV_COMMAND
from recognizer.data.input_config import InputConfig


def prepare_command(cfg: DictConfig) -> None:
    """``mer prepare``: load a dataset (checking its media when ``verify=true``), print its load
    report, preprocess it into the cache and write apex-flow images when
    ``write_apex_flow=true``."""
    from hydra.utils import instantiate

    from recognizer.data.export import write_apex_flow_images
    from recognizer.data.preprocess import CachedFrames, preprocess
    from recognizer.data.representations import ApexFlow
    from recognizer.datasets.checks import verify_media

    result = instantiate(cfg.data.loader)()
    if cfg.verify:
        result = verify_media(result)
    print(result.report)
    if cfg.select_scheme:
        result = result.select_scheme(cfg.data.scheme)
        print(f"{len(result.samples)} samples in scheme {cfg.data.scheme}")
    settings = instantiate(cfg.preprocess)
    done = preprocess(
        result.samples, cfg.paths.cache_dir, settings, n_jobs=cfg.n_jobs, progress=cfg.progress
    )
    print(done)
    print(f"cache: {cfg.paths.cache_dir}/{settings.key}")
    if cfg.write_apex_flow:
        representation = instantiate(cfg.representation)
        if not isinstance(representation, ApexFlow):
            representation = ApexFlow()
        kept = [s for s in result.samples if s.uid in done.cached]
        labels = dict(zip((s.uid for s in result.samples), result.scheme_labels(cfg.data.scheme)))
        manifest = write_apex_flow_images(
            kept,
            [str(labels[s.uid] or s.emotion) for s in kept],
            cfg.apex_flow_dir,
            CachedFrames(cfg.paths.cache_dir, settings),
            representation,
        )
        print(f"apex-flow images: {manifest}")


def annotations_command(cfg: DictConfig) -> None:
    """``mer annotations``: load a release (group ``data``) and write its annotation records
    with AUs as a CSV (``out``) for ``mesynth generate`` to mine templates from."""
    from hydra.utils import instantiate

    from recognizer.data.export import write_annotation_table

    if not cfg.out:
        raise CommandArgumentError(
            "mer annotations needs out=<file.csv>: where to write the annotation records"
        )
    result = instantiate(cfg.data.loader)()
    print(result.report)
    try:
        path, rows = write_annotation_table(result.samples, cfg.out)
    except ValueError as err:
        raise CommandArgumentError(f"mer annotations data={cfg.data.loader.name}: {err}") from err
    print(f"annotation records: {rows} rows with AUs -> {path}")


class CommandArgumentError(ValueError):
    """A command lacks a required argument (the message says which and how to give it)."""


class DataConfigError(ValueError):
    """The composed config lacks the data side (the ``data``/``representation`` groups)."""


class DataSide(NamedTuple):
    """What :func:`build_data` returns."""

    samples: list
    labels: list[int]
    dataset_factory: Callable
    class_names: list[str]
    input_config: InputConfig
    representation: object


def build_data(cfg: DictConfig) -> DataSide:
    """The data side of ``mer train``/``mer evaluate`` (CONTRACTS.md C), kept in one place.

    ``cfg.data.loader`` is a partial of ``recognizer.datasets.load`` (or ``megc2019``) and
    ``cfg.data.scheme`` the label scheme; ``cfg.representation`` builds the clip representation
    for :class:`recognizer.data.torch_dataset.ClipDataset`, normalised as ``cfg.model``
    declares (:func:`build_representation`). Samples whose emotion the scheme excludes are
    dropped.
    """
    from hydra.utils import instantiate

    if "data" not in cfg or "representation" not in cfg:
        raise DataConfigError(
            "this config has no `data`/`representation` groups yet: add them to the defaults "
            "list (e.g. `+data=casme2 +representation=clip`)"
        )
    from mesynth.labels.emotions import scheme_labels
    from recognizer.experiments.run_checks import check_loaded

    loaded = instantiate(cfg.data.loader)()
    print(loaded.report)
    scheme = str(cfg.data.scheme)
    names = list(scheme_labels(scheme))
    kept = loaded.select_scheme(scheme)
    check_loaded(loaded, kept, scheme)  # nothing left to train on is said here, with why
    samples, labels = kept.samples, kept.label_indices(scheme)
    representation, input_config = build_representation(cfg, len(names))
    dataset_factory = clip_dataset_factory(representation, int(cfg.trainer.seed))
    return DataSide(samples, labels, dataset_factory, names, input_config, representation)


def clip_dataset_factory(representation: object, seed: int) -> Callable:
    """``(subset, labels, train) -> ClipDataset`` of ``representation`` whose augmentation
    draws from ``seed`` (the dataset factory of a ``mer train`` run with that seed)."""
    from recognizer.data.torch_dataset import ClipDataset

    def dataset_factory(subset, subset_labels, train: bool):
        return ClipDataset(subset, subset_labels, representation, train=train, seed=seed)

    return dataset_factory


def build_representation(cfg: DictConfig, num_classes: int) -> tuple[object, InputConfig]:
    """``cfg.representation`` normalised as ``cfg.model`` declares.

    The model is built once to read its ``default_cfg``; its statistics and pixel scaling go
    to the representation, except the settings the representation config gives explicitly
    (``size``, ``num_frames``, and ``mean``/``std``/``input_scale`` when set), which win.

    Returns:
        ``(representation, the resolved InputConfig)``.
    """
    from hydra.utils import instantiate

    from recognizer.data.input_config import resolve_input_config
    from recognizer.experiments.run_checks import RunInputError

    try:
        model = instantiate(cfg.model)(num_classes=num_classes)
    except (ValueError, TypeError) as err:  # a keyword the builder refuses (`+model.dropout=2`)
        raise RunInputError(f"model={cfg.model.name}: {err}") from err
    keys = ("mean", "std", "input_scale", "size", "num_frames")
    overrides = {k: cfg.representation.get(k) for k in keys}
    try:
        config = resolve_input_config(model, overrides)
        return instantiate(cfg.representation).with_input_config(config), config
    except (ValueError, TypeError) as err:  # representation.size=abc, num_frames=0
        given = {k: v for k, v in overrides.items() if v is not None}
        raise RunInputError(f"representation {given}: {err}") from err


def _model_factory(cfg: DictConfig) -> Callable:
    from hydra.utils import instantiate

    from recognizer.models import load_pretrained

    build = instantiate(cfg.model)
    pretrained = cfg.get("pretrained")

    def factory(num_classes: int):
        model = build(num_classes=num_classes)
        if pretrained:
            print(load_pretrained(model, pretrained))
        return model

    return factory


def join_submitit_tasks() -> int:
    """Make the tasks of one submitit job (``hydra.launcher.tasks_per_node`` > 1, e.g. one per
    GPU of a SLURM node) the ranks of one DDP run; returns the number of tasks.

    Each task runs the whole command. Outside torchrun nothing tells the trainer it has
    partners, so every task would train alone and all would write the same folder; this sets
    torch's ``env://`` variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``) from the job's environment, as torchrun would. Nothing changes outside a
    submitit job, under torchrun, or with one task.
    """
    import os

    if "SUBMITIT_EXECUTOR" not in os.environ or "RANK" in os.environ:
        return 1
    import submitit

    tasks = submitit.JobEnvironment().num_tasks
    if tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return tasks


def trainer_config_of(cfg: DictConfig):
    """``cfg.trainer`` built; a value the trainer refuses (``trainer.epochs=0``) is one
    :class:`~recognizer.experiments.run_checks.RunInputError` naming the key, not Hydra's
    wrapper."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from recognizer.experiments.run_checks import RunInputError

    try:
        return instantiate(cfg.trainer)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError)):
            raise RunInputError(f"trainer: {cause}") from err
        raise


def check_run_config(
    cfg: DictConfig, samples, labels, protocol, trainer_config, remedy, num_classes: int
) -> None:
    """The whole run checked before its folder is made
    (:func:`recognizer.experiments.run_checks.check_run`)."""
    from recognizer.experiments.run_checks import check_run

    check_run(
        samples=samples,
        labels=labels,
        source=str(cfg.data.loader.get("root", cfg.data.loader.get("name", "the data"))),
        protocol=protocol,
        trainer_config=trainer_config,
        model_name=str(cfg.model.name),
        out_dir=cfg.out_dir,
        remedy=remedy,
        num_classes=num_classes,
    )


def train_command(cfg: DictConfig) -> None:
    """Train and test ``cfg.model`` under ``cfg.protocol`` with ``cfg.remedy``; the input
    (model statistics, size, clip length) goes to ``results.json`` under ``settings.input``.
    The remedy is bound to the representation (:meth:`Remedy.for_representation`: synthetic
    remedies render what it needs). With ``trainer.seeds=[...]``, one run per seed under
    ``out_dir/seed_<s>/`` (:func:`recognizer.experiments.runner.run_protocol_seeds`) and a table of
    the pooled metrics per seed."""
    from dataclasses import asdict

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from recognizer.evaluation.report import markdown_table, results_table
    from recognizer.experiments.runner import run_protocol, run_protocol_seeds
    from recognizer.training.trainer import distributed_env

    join_submitit_tasks()
    samples, labels, dataset_factory, names, input_config, representation = build_data(cfg)
    protocol, trainer_config = instantiate(cfg.protocol), trainer_config_of(cfg)
    remedy = instantiate(cfg.remedy).for_representation(representation)
    check_run_config(cfg, samples, labels, protocol, trainer_config, remedy, len(names))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    first = distributed_env()[0] == 0  # under torchrun, rank 0 speaks for the run
    if first:
        print(
            f"results: {cfg.out_dir}\n"
            f"(if this run is interrupted, the same command with out_dir={cfg.out_dir} resumes it)"
        )
    common = {
        "protocol": protocol,
        "model_factory": _model_factory(cfg),
        "remedy": remedy,
        "trainer_config": trainer_config,
        "out_dir": cfg.out_dir,
        "overwrite": bool(cfg.get("overwrite", False)),
        "num_classes": len(names),
        "class_names": names,
        "metadata": {
            "model": cfg.model.name,
            "data": data,
            "pretrained": cfg.get("pretrained"),
            "input": asdict(input_config),
        },
    }
    if trainer_config.seeds is None:
        run_protocol(
            samples, labels, dataset_factory=dataset_factory,
            dataset_factory_for_seed=lambda seed: clip_dataset_factory(representation, seed),
            **common,
        )  # fmt: skip
        if not protocol.has_test:
            if first:
                _write_final_model(cfg, cfg.out_dir, names, representation, input_config,
                                   trainer_config.seed, len(samples))  # fmt: skip
            return
        if first:
            print(markdown_table(results_table([cfg.out_dir])))
        return
    result = run_protocol_seeds(
        samples,
        labels,
        dataset_factory_for_seed=lambda seed: clip_dataset_factory(representation, seed),
        **common,
    )
    if first and not protocol.has_test:
        for seed, run in zip(result.seeds, result.runs):
            _write_final_model(cfg, result.out_dir / run, names, representation, input_config,
                               seed, len(samples))  # fmt: skip
    elif first:
        print(markdown_table(results_table([result.out_dir / run for run in result.runs])))
        print(f"pooled over each seed's folds:\n{result.markdown()}")


def _write_final_model(
    cfg: DictConfig, run_dir, names, representation, input_config, seed: int, n: int
) -> None:
    """``final.pt`` of a ``protocol=all`` run (:mod:`recognizer.training.final_model`)."""
    from omegaconf import OmegaConf

    from recognizer.training.final_model import save_final_model

    model = OmegaConf.to_container(cfg.model, resolve=True)
    kwargs = {k: v for k, v in model.items() if k not in ("_target_", "_partial_", "name")}
    path = save_final_model(
        run_dir,
        model_name=str(cfg.model.name),
        model_kwargs=kwargs,
        num_classes=len(names),
        classes=names,
        scheme=str(cfg.data.scheme),
        representation=representation,
        input_config=input_config,
        selection=str(cfg.trainer.selection),
        seed=int(seed),
        trained_on={"num_samples": n, "data": OmegaConf.to_container(cfg.data, resolve=True)},
    )
    print(f"final model (protocol=all: trained on all {n} samples, no test score): {path}")


def evaluate_command(cfg: DictConfig) -> None:
    """Re-predict the test folds of ``cfg.run_dir`` from its saved weights."""
    from hydra.utils import instantiate

    from recognizer.evaluation.report import markdown_table, results_table
    from recognizer.experiments.runner import evaluate_run

    if not cfg.get("run_dir"):
        raise CommandArgumentError("mer evaluate needs run_dir=<a `mer train` output folder>")
    samples, labels, dataset_factory, *_ = build_data(cfg)
    evaluate_run(
        samples,
        labels,
        run_dir=cfg.run_dir,
        dataset_factory=dataset_factory,
        model_factory=_model_factory(cfg),
        trainer_config=instantiate(cfg.trainer),
        out_dir=cfg.out_dir,
    )
    print(markdown_table(results_table([cfg.out_dir])))


def predict_command(cfg: DictConfig) -> None:
    """Predict ``cfg.input`` (a clip, or every row of a manifest CSV) with the final model of
    ``cfg.run_dir`` (:mod:`recognizer.inference.prediction`,
    :mod:`recognizer.inference.manifest_input`)."""
    from recognizer.inference.manifest_input import is_manifest
    from recognizer.inference.prediction import predict

    if not cfg.get("run_dir") or not cfg.get("input"):
        raise CommandArgumentError(
            "mer predict needs run_dir=<a `mer train protocol=all` folder> and "
            "input=<a video file, a folder of frames, a .npy clip or a manifest CSV>"
        )
    options = {
        "fps": cfg.fps, "max_duration": cfg.max_duration,
        "landmark_backend": str(cfg.landmark_backend), "crop_size": int(cfg.crop_size),
        "whole_image_fallback": bool(cfg.whole_image_fallback),
    }  # fmt: skip
    if is_manifest(cfg.input):
        _predict_manifest_command(cfg, options)
        return
    table = predict(
        cfg.run_dir, [cfg.input], cfg.out_dir, preview=bool(cfg.preview), onset=cfg.onset,
        apex=cfg.apex, offset=cfg.offset, **options,
    )  # fmt: skip
    print(table.to_string(index=False))
    print(f"written: {cfg.out_dir}/predictions.csv")


def _predict_manifest_command(cfg: DictConfig, options: dict[str, object]) -> None:
    """``mer predict input=<clips.csv>``: every row; exits 2 when a row failed."""
    from recognizer.inference.manifest_input import ClipsFailedError, predict_manifest

    given = [key for key in ("onset", "apex", "offset") if cfg.get(key) is not None]
    if given:
        raise CommandArgumentError(
            f"mer predict input={cfg.input}: {', '.join(f'{k}=' for k in given)} applies to one "
            "clip; a manifest gives the times of each row in its onset, apex and offset columns"
        )
    result = predict_manifest(
        cfg.run_dir, cfg.input, cfg.out_dir, preview=bool(cfg.preview),
        overwrite=bool(cfg.overwrite), progress=bool(cfg.progress), **options,
    )  # fmt: skip
    print(result)
    print(f"written: {result.path}")
    if len(result.failed):
        raise ClipsFailedError(
            f"{len(result.failed)} of {len(result.table)} clips failed (see {result.path})"
        )


def report_command(cfg: DictConfig) -> None:
    """Write ``report.md`` and confusion-matrix PNGs for ``cfg.runs`` into ``cfg.out_dir``."""
    from recognizer.evaluation.report import write_report

    runs = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs or [])
    if not runs:
        raise CommandArgumentError("mer report needs runs=[<result folder>, ...]")
    report = write_report(runs, cfg.out_dir)
    print(report.read_text())
    print(f"written: {report}")


def compare_command(cfg: DictConfig) -> None:
    """Write ``compare.md``, ``compare.csv`` and ``compare.png`` for ``cfg.arms`` (``{name:
    folder}``) or ``cfg.runs`` (grouped into arms by settings) into ``cfg.out_dir``."""
    from recognizer.evaluation.compare import (
        arms_from_mapping,
        arms_from_runs,
        compare_arms,
        write_comparison,
    )

    runs = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs or [])
    mapping = dict(cfg.arms or {})
    if bool(mapping) == bool(runs):
        raise CommandArgumentError(
            "mer compare needs either 'arms={<name>: <folder>, ...}' or 'runs=[<folder>, ...]'"
        )
    arms = arms_from_mapping(mapping) if mapping else arms_from_runs(runs)
    comparison = compare_arms(
        arms,
        cfg.baseline,
        confidence=float(cfg.confidence),
        n_resamples=int(cfg.n_resamples),
        seed=int(cfg.seed),
    )
    written = write_comparison(comparison, cfg.out_dir)
    print(written["markdown"].read_text())
    print(f"written: {', '.join(str(p) for p in written.values())}")


def experiment_command(cfg: DictConfig) -> None:
    """One job of ``mer experiment``: a ``mer train`` run in the grid's sub-folder."""
    train_command(cfg)


def experiment_report_command(cfg: DictConfig) -> None:
    """Collect ``cfg.runs`` (grid folders) into tables, figures and ``report.md``."""
    from recognizer.evaluation.grid import collect

    runs = [cfg.runs] if isinstance(cfg.runs, str) else list(cfg.runs or [])
    if not runs:
        raise CommandArgumentError(
            "mer experiment-report needs runs=[<mer experiment sweep folder>, ...]"
        )
    collected = collect(runs, cfg.out_dir, title=str(cfg.title))
    print(collected.report.read_text().split("## ", 1)[0])
    print(f"written: {collected.report}")


class CollectResults(Callback):
    """Hydra callback of ``mer experiment``: after the grid, collect the sweep folder into
    ``<sweep dir>/report`` (see :mod:`recognizer.evaluation.grid`)."""

    def __init__(self, enabled: bool = True, title: str = "Experiment") -> None:
        self.enabled = enabled
        self.title = title

    def on_multirun_end(self, config: DictConfig, **kwargs: object) -> None:
        from recognizer.evaluation.grid import collect

        if not self.enabled:
            return
        sweep = config.hydra.sweep.dir
        collected = collect([sweep], f"{sweep}/report", title=self.title)
        print(f"experiment report: {collected.report}")


COMMANDS: dict[str, Command] = {
    "env": ENV_COMMAND,
    "prepare": Command(
        "prepare",
        prepare_command,
        "load a dataset, report it, preprocess it into the cache",
        resumable=True,
    ),
    "train": Command(
        "train", train_command, "train and test a model under a protocol", resumable=True
    ),
    "annotations": Command(
        "annotations", annotations_command, "write a release's AU annotations as a CSV to mine"
    ),
    "evaluate": Command("evaluate", evaluate_command, "re-predict a finished run's test folds"),
    "predict": Command(
        "predict", predict_command, "a final model on your own clips", resumable=True
    ),
    "report": Command("report", report_command, "Markdown table + confusion matrices of runs"),
    "compare": Command(
        "compare", compare_command, "paired intervals of arms over seeds and subjects"
    ),
    "experiment": Command(
        "experiment",
        experiment_command,
        "grid of model × remedy × protocol × seed (multirun)",
        resumable=True,
        groups=("experiment",),
    ),
    "experiment-report": Command(
        "experiment_report", experiment_report_command, "collect a grid into tables and plots"
    ),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """The mesynth user errors plus the recognizer's: one line, no traceback."""
    from mesynth.cli.main import USER_ERRORS
    from recognizer.data.safe_paths import UnsafePathError
    from recognizer.datasets.errors import DatasetError
    from recognizer.evaluation.compare import CompareError
    from recognizer.experiments.run_checks import RunInputError
    from recognizer.experiments.runner import RunConfigError
    from recognizer.inference.clip_input import PredictInputError
    from recognizer.models.registry import UnknownModelError
    from recognizer.models.weights import WeightLoadError
    from recognizer.protocols import UnknownProtocolError
    from recognizer.protocols.leakage import LeakageError
    from recognizer.remedies.registry import UnknownRemedyError
    from recognizer.remedies.synthetic import SynthesisError
    from recognizer.training.final_model import FinalModelError
    from recognizer.training.trainer import CheckpointMismatchError, CheckpointReadError

    return (
        *USER_ERRORS,
        CommandArgumentError,
        CompareError,
        CheckpointMismatchError,
        CheckpointReadError,
        FinalModelError,
        PredictInputError,
        RunConfigError,
        RunInputError,
        DataConfigError,
        DatasetError,
        LeakageError,
        SynthesisError,
        UnknownModelError,
        UnknownProtocolError,
        UnknownRemedyError,
        UnsafePathError,
        WeightLoadError,
    )


def main(argv: list[str] | None = None) -> int:
    return run_command("mer", COMMANDS, argv, user_errors=_user_errors())


if __name__ == "__main__":
    sys.exit(main())
