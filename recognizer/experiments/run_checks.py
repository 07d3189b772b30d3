"""Checks of a training run's whole configuration before anything is written.

``mer train`` (and :func:`check_run` for any caller of
:func:`recognizer.experiments.runner.run_protocol`) refuses a run that cannot work before its output
folder exists: trainer settings (learning rate, device), the protocol against the subjects
actually loaded, the output folder itself and, with ``data_path="memory"``, the header of every
file the run will read. Each refusal is a :class:`RunInputError` whose one-line message names
the key, file or row to fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recognizer.datasets.checks import media_problem


class RunInputError(ValueError):
    """A run's input or setting cannot work (the message names the key, file or row)."""


def check_trainer(config: object, model_name: str) -> None:
    """Refuse trainer settings that would fail only once training starts.

    Args:
        config: a :class:`recognizer.training.trainer.TrainerConfig`.
        model_name: the registered model name (``cfg.model.name``), for its default
            learning rate.

    Raises:
        RunInputError: ``lr`` is no positive number, or is ``None`` for a model without a
            default; ``momentum``/``weight_decay``/``gamma`` out of range; ``device`` names no
            usable device (CUDA asked for on a machine without it).
    """
    from mesynth.environment import resolve_device
    from recognizer.models.registry import default_learning_rate

    lr = getattr(config, "lr", None)
    if lr is None:
        if default_learning_rate(model_name) is None:
            hint = " or trainer=ststnet (Adam, lr 5e-5)" if model_name == "ststnet" else ""
            raise RunInputError(
                f"model {model_name!r} has no default learning rate for "
                f"optimizer={getattr(config, 'optimizer', 'sgd')!r}: set trainer.lr=<number>{hint}"
            )
    else:
        _positive_number("trainer.lr", lr)
    for key, low in (("momentum", 0.0), ("weight_decay", 0.0)):
        value = _number(f"trainer.{key}", getattr(config, key, 0.0))
        if value < low:
            raise RunInputError(f"trainer.{key} must be >= {low:g}, got {value:g}")
    _positive_number("trainer.gamma", getattr(config, "gamma", 1.0))
    device = str(getattr(config, "device", "auto"))
    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as err:
        raise RunInputError(
            f"trainer.device={device}: {err}; use trainer.device=auto or trainer.device=cpu"
        ) from err


def _number(key: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RunInputError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise RunInputError(f"{key} must be a finite number, got {value!r}")
    return number


def _positive_number(key: str, value: object) -> float:
    number = _number(key, value)
    if number <= 0:
        raise RunInputError(f"{key} must be > 0, got {value!r}")
    return number


def check_loaded(loaded: object, kept: object, scheme: str) -> None:
    """Refuse a load that leaves nothing to train on, saying why.

    Args:
        loaded: the :class:`recognizer.datasets.report.LoadResult` of the data loader.
        kept: the same after :meth:`LoadResult.select_scheme` (the samples the run uses).
        scheme: the label scheme (``cfg.data.scheme``).

    Raises:
        RunInputError: no sample remains: the annotation file has no data row, every row was
            skipped (the reasons are in the load report, printed before), or no sample has a
            class of ``scheme``.
    """
    if kept.samples:  # type: ignore[attr-defined]
        return
    report = loaded.report  # type: ignore[attr-defined]
    source = report.source or report.dataset
    if report.rows_read == 0:
        why = "it has no data row (only a header, or nothing)"
    elif report.skipped and not loaded.samples:  # type: ignore[attr-defined]
        reasons = sorted({row.reason for row in report.skipped})
        shown = "; ".join(reasons[:2]) + (
            f"; {len(reasons) - 2} other reasons" if len(reasons) > 2 else ""
        )
        why = f"all {report.rows_read} rows were skipped ({shown}; each row is in the report above)"
    else:
        found = sorted({str(s.emotion) for s in loaded.samples})  # type: ignore[attr-defined]
        why = f"no sample has a class of scheme {scheme!r} (classes found: {found})"
    raise RunInputError(f"no usable rows remain in {source}: {why}")


def check_samples(samples: Sequence[object], labels: Sequence[int], source: str) -> None:
    """Refuse a run with nothing to train on (the check of callers without a load report).

    Raises:
        RunInputError: no sample, or a sample without a class of the scheme.
    """
    if len(samples) == 0:
        raise RunInputError(f"no usable rows remain in {source}")
    labels_arr = np.asarray(labels, dtype=np.int64)
    if labels_arr.size != len(samples) or labels_arr.min() < 0:
        raise RunInputError(f"{source}: some samples have no class of the label scheme")


def check_protocol(protocol: object, samples: Sequence[object], labels: Sequence[int]) -> None:
    """Split the subjects actually loaded as the run will, so that a protocol that cannot
    (one subject under k-fold, more folds than subjects) is refused before any write.

    Raises:
        RunInputError: the protocol's own message, with the key to change.
    """
    subjects = [str(getattr(s, "subject", "")) for s in samples]
    datasets = [str(getattr(s, "dataset", "")) for s in samples]
    try:
        protocol.split(subjects, np.asarray(labels, dtype=np.int64), datasets)  # type: ignore[attr-defined]
    except ValueError as err:
        name = getattr(protocol, "name", type(protocol).__name__)
        raise RunInputError(
            f"protocol={name} cannot split the subjects loaded: {err}; change protocol (or "
            "protocol.n_splits) or load more subjects"
        ) from err


def check_remedy(remedy: object, num_classes: int) -> None:
    """Build the remedy's loss once, as every fold will, so that a bad setting (``cb`` with
    ``beta=2``, ``focal`` with ``gamma=abc``) is refused before any write.

    Raises:
        RunInputError: the remedy's own message, with the remedy named.
    """
    name = getattr(remedy, "name", type(remedy).__name__)
    try:
        remedy.criterion([1] * max(int(num_classes), 1))  # type: ignore[attr-defined]
    except ValueError as err:
        raise RunInputError(f"remedy={name}: {err}") from err
    except TypeError as err:  # a setting of the wrong type: show them all
        settings = getattr(remedy, "settings", dict)()
        raise RunInputError(
            f"remedy={name}: a setting has the wrong type ({err}): {settings}"
        ) from err


def check_out_dir(out_dir: str | Path) -> None:
    """Refuse an output folder that cannot be made or written.

    Raises:
        RunInputError: ``out_dir`` (or a folder above it) is a file, or the nearest existing
            folder is not writable.
    """
    path = Path(out_dir)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "out_dir" if parent == path else f"{parent} (above out_dir)"
                raise RunInputError(f"out_dir={out_dir}: {what} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise RunInputError(f"out_dir={out_dir}: folder {parent} is not writable")
            return


def check_media(samples: Sequence[object]) -> None:
    """Check the header of every file the samples will read (their frames from onset to offset
    and their clip array), as the in-memory data path reads them all up front.

    Raises:
        RunInputError: the first unreadable file, with its sample.
    """
    for sample in samples:
        paths = list(sample.frames_between(sample.onset, sample.offset))  # type: ignore[attr-defined]
        if getattr(sample, "array_path", None) is not None:
            paths.append(sample.array_path)  # type: ignore[attr-defined]
        for path in paths:
            problem = media_problem(path)
            if problem:
                uid = getattr(sample, "uid", "")
                raise RunInputError(
                    f"sample {uid}: {problem} (trainer.data_path=memory reads every file first; "
                    "fix or remove it, or drop such clips with `mer prepare verify=true`)"
                )


def check_run(
    *,
    samples: Sequence[object],
    labels: Sequence[int],
    source: str,
    protocol: object,
    trainer_config: object,
    model_name: str,
    out_dir: str | Path,
    remedy: object | None = None,
    num_classes: int = 0,
) -> None:
    """Every check above, in the order a user fixes them: data, protocol, remedy, trainer,
    folder, media (only with ``trainer_config.data_path == "memory"``).

    Raises:
        RunInputError: the first problem found.
    """
    check_samples(samples, labels, source)
    check_protocol(protocol, samples, labels)
    if remedy is not None:
        check_remedy(remedy, num_classes or int(np.max(labels)) + 1)
    check_trainer(trainer_config, model_name)
    check_out_dir(out_dir)
    if getattr(trainer_config, "data_path", "auto") == "memory":
        check_media(samples)
