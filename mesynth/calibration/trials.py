"""The resumable optuna trial loop of the adversarial and the utility search.

Like the clip store: ``out_dir/search.json`` holds a SHA-256 of each top-level setting (a folder
of other settings is refused, naming them), each finished trial is written atomically to
``out_dir/trials/trial_NNNN.json`` and read back on reopening, and trial ``n``'s sampler is
seeded with ``(seed, n)`` and told every finished trial, so a search interrupted and resumed
proposes the same trials as an uninterrupted one; a larger budget extends it.

Convention:
    An objective maps ``(trial number, {parameter: value})`` to a JSON-serialisable record
    holding the value to optimise under ``"objective"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

SAMPLERS = ("tpe", "random")
DIRECTIONS = ("minimize", "maximize")
#: ``(trial number, parameters) -> record`` with the value under ``"objective"``
Objective = Callable[[int, dict[str, object]], Mapping[str, object]]


class TrialSettingsError(ValueError):
    """A search folder made with other settings.

    Attributes:
        differ: the top-level settings whose hashes differ (sorted).
        described: the settings stored in the folder's ``search.json``.
    """

    def __init__(self, message: str, differ: Sequence[str], described: Mapping[str, object]):
        super().__init__(message)
        self.differ = tuple(differ)
        self.described = dict(described)


def write_json(path: Path, value: object) -> None:
    """Write ``value`` as JSON atomically: a reader never sees half a file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(temporary, path)


def _hash(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _sampler(name: str, seed: int, number: int, startup: int) -> optuna.samplers.BaseSampler:
    trial_seed = int(np.random.SeedSequence([seed, number]).generate_state(1)[0])
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=trial_seed)


class TrialSearch:
    """A resumable seeded optuna search in ``out_dir`` (module docs).

    Args:
        out_dir: the search folder (created): ``search.json`` and ``trials/``.
        settings: what must match to continue the folder (compared per top-level key).
        distributions: ``{name: optuna distribution}`` of the searched parameters.
        seed, sampler, startup_trials: trial ``n``'s sampler (``tpe`` or ``random``) is seeded
            with ``(seed, n)``; TPE draws ``startup_trials`` random trials first.
        direction: ``minimize`` or ``maximize`` the objective.

    Attributes:
        trial_dir: ``out_dir/trials``.
        rows: the finished trials' records, trial ``i`` at ``rows[i]``.
        resumed: trials read back when the folder was opened.

    Raises:
        ValueError: an unknown ``sampler`` or ``direction``.
        TrialSettingsError: ``out_dir`` holds a search with other settings.
    """

    def __init__(
        self,
        out_dir: str | Path,
        settings: Mapping[str, object],
        distributions: Mapping[str, optuna.distributions.BaseDistribution],
        *,
        seed: int,
        sampler: str = "tpe",
        startup_trials: int = 8,
        direction: str = "minimize",
    ) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.out_dir = Path(out_dir)
        self.distributions = dict(distributions)
        self.seed, self.sampler, self.startup_trials = int(seed), sampler, int(startup_trials)
        self.direction = direction
        self.trial_dir = self.out_dir / "trials"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._check_settings(dict(settings))
        self.trial_dir.mkdir(exist_ok=True)
        self.rows: list[dict] = []
        while self.trial_path(len(self.rows)).is_file():
            self.rows.append(json.loads(self.trial_path(len(self.rows)).read_text()))
        self.resumed = len(self.rows)

    def trial_path(self, number: int, suffix: str = ".json") -> Path:
        """``trials/trial_NNNN<suffix>``: trial ``number``'s record (or a side file of it)."""
        return self.trial_dir / f"trial_{number:04d}{suffix}"

    def _check_settings(self, settings: dict[str, object]) -> None:
        path = self.out_dir / "search.json"
        hashed = {key: _hash(value) for key, value in settings.items()}
        if path.is_file():
            stored = json.loads(path.read_text())
            old = stored.get("settings", {})
            differ = sorted(k for k in set(hashed) | set(old) if hashed.get(k) != old.get(k))
            if differ:
                raise TrialSettingsError(
                    f"{self.out_dir} holds a search made with other settings (differ: "
                    f"{', '.join(differ)}); use a new out_dir or the same settings to continue it",
                    differ,
                    stored.get("described", {}),
                )
            return
        write_json(path, {"settings": hashed, "described": settings})

    def run(
        self,
        objective: Objective,
        trials: int,
        *,
        stop: Callable[[Sequence[dict]], bool] | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Run trials ``len(rows), ..., trials - 1`` (none when as many are finished).

        Args:
            objective: scores one trial (module docs).
            trials: the trial budget.
            stop: asked with the finished rows before each new trial; true ends the search.
            progress: called with each new row once it is written.

        Returns:
            :attr:`rows`: ``{"trial", "params", **record, "seconds"}`` per finished trial
            (``seconds``: the objective's wall time).
        """
        # the sampler is replaced before every trial; finished trials are told as they were
        study = optuna.create_study(
            direction=self.direction, sampler=optuna.samplers.RandomSampler()
        )
        for row in self.rows:
            done = {"params": row["params"], "value": row["objective"]}
            study.add_trial(optuna.trial.create_trial(distributions=self.distributions, **done))
        for number in range(len(self.rows), trials):
            if stop is not None and stop(self.rows):
                break
            study.sampler = _sampler(self.sampler, self.seed, number, self.startup_trials)
            trial = study.ask(self.distributions)
            tick = time.perf_counter()
            record = dict(objective(number, trial.params))
            study.tell(trial, record["objective"])
            seconds = time.perf_counter() - tick
            row = {"trial": number, "params": trial.params, **record, "seconds": seconds}
            write_json(self.trial_path(number), row)
            self.rows.append(row)
            if progress is not None:
                progress(row)
        return self.rows

    def best(self) -> int | None:
        """The number of the best finished trial (the first of ties), ``None`` before any."""
        if not self.rows:
            return None
        values = [float(r["objective"]) for r in self.rows]
        chosen = min(values) if self.direction == "minimize" else max(values)
        return values.index(chosen)


def history_frame(rows: Sequence[Mapping[str, object]], fields: Sequence[str]) -> pd.DataFrame:
    """One row per trial: ``trial``, the record ``fields``, ``seconds``, then one column per
    parameter (sorted by name)."""
    return pd.DataFrame(
        [
            {
                "trial": r["trial"],
                **{name: r[name] for name in fields},
                "seconds": r["seconds"],
                **{name: r["params"][name] for name in sorted(r["params"])},
            }
            for r in rows
        ]
    )
