"""The shared trial runner (mesynth.calibration.trials): a search killed mid-way and resumed
proposes the same trials as an uninterrupted one, a folder of other settings is refused by
name, and a larger budget extends a search without rerunning its trials."""

from __future__ import annotations

import json

import optuna
import pytest

from mesynth.calibration.trials import TrialSearch, TrialSettingsError, history_frame

SPACE = {
    "x": optuna.distributions.FloatDistribution(-2.0, 2.0),
    "size": optuna.distributions.CategoricalDistribution([16, 32, 64]),
}
SETTINGS = {"data": [1, 2, 3], "search": {"seed": 0}}


def _objective(calls: list[int]):
    def objective(number: int, params: dict) -> dict[str, float]:
        calls.append(number)
        return {"objective": (params["x"] - 0.5) ** 2 + params["size"] / 64, "extra": number}

    return objective


def _search(folder, **changes) -> TrialSearch:
    options = {"seed": 3, "sampler": "tpe", "startup_trials": 2, **changes}
    settings = options.pop("settings", SETTINGS)
    return TrialSearch(folder, settings, SPACE, **options)


def _params(rows: list[dict]) -> list[dict]:
    return [{k: r[k] for k in ("trial", "params", "objective", "extra")} for r in rows]


class KilledError(Exception):
    """The process died mid-trial."""


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_killed_and_resumed_search_proposes_the_same_trials(tmp_path, sampler):
    whole = _search(tmp_path / "whole", sampler=sampler).run(_objective([]), 6)

    def dies_at_trial_4(number: int, params: dict) -> dict:
        if number == 4:
            raise KilledError
        return _objective([])(number, params)

    with pytest.raises(KilledError):
        _search(tmp_path / "killed", sampler=sampler).run(dies_at_trial_4, 6)
    assert not (tmp_path / "killed" / "trials" / "trial_0004.json").exists()
    calls: list[int] = []
    resumed = _search(tmp_path / "killed", sampler=sampler)
    assert resumed.resumed == 4
    rows = resumed.run(_objective(calls), 6)
    assert calls == [4, 5]
    assert _params(rows) == _params(whole)
    # the records on disk are the rows, read back exactly
    on_disk = json.loads((tmp_path / "killed" / "trials" / "trial_0005.json").read_text())
    assert on_disk == rows[5]
    # the proposals depend on the seed
    other = _search(tmp_path / "seed_4", sampler=sampler, seed=4).run(_objective([]), 6)
    assert [r["params"] for r in other] != [r["params"] for r in whole]


def test_other_settings_are_refused_naming_the_setting(tmp_path):
    _search(tmp_path).run(_objective([]), 1)
    changed = {**SETTINGS, "search": {"seed": 1}}
    with pytest.raises(TrialSettingsError, match=r"differ: search\)") as err:
        _search(tmp_path, settings=changed)
    assert err.value.differ == ("search",)
    assert err.value.described == SETTINGS  # what the folder was made with
    with pytest.raises(TrialSettingsError, match=r"differ: data, new\)"):
        _search(tmp_path, settings={"data": [1], "search": {"seed": 0}, "new": 1})
    assert _search(tmp_path).resumed == 1  # the same settings still open it


def test_a_larger_budget_extends_the_search_and_stop_ends_it(tmp_path):
    calls: list[int] = []
    first = _search(tmp_path).run(_objective(calls), 3)
    stamp = (tmp_path / "trials" / "trial_0000.json").stat().st_mtime_ns
    assert calls == [0, 1, 2] and len(first) == 3
    assert _search(tmp_path).run(_objective(calls), 3) == first and calls == [0, 1, 2]
    rows = _search(tmp_path).run(_objective(calls), 5, stop=lambda done: len(done) >= 4)
    assert calls == [0, 1, 2, 3] and [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert (tmp_path / "trials" / "trial_0000.json").stat().st_mtime_ns == stamp
    search = _search(tmp_path)
    search.run(_objective(calls), 5)
    assert calls == [0, 1, 2, 3, 4]
    values = [r["objective"] for r in search.rows]
    assert search.best() == values.index(min(values))
    maximised = _search(tmp_path / "max", direction="maximize")
    assert maximised.best() is None
    maximised.run(_objective([]), 4)
    values = [r["objective"] for r in maximised.rows]
    assert maximised.best() == values.index(max(values))
    history = history_frame(search.rows, ("objective",))
    assert list(history.columns) == ["trial", "objective", "seconds", "size", "x"]
    assert list(history["trial"]) == [0, 1, 2, 3, 4]


def test_bad_sampler_and_direction_are_named(tmp_path):
    with pytest.raises(ValueError, match="sampler must be one of"):
        _search(tmp_path, sampler="grid")
    with pytest.raises(ValueError, match="direction must be one of"):
        _search(tmp_path, direction="up")
