"""Utility calibration: choose the generator's settings by the recognition they buy.

``remedy.calibration.method=utility`` (:class:`recognizer.remedies.calibration.FoldCalibration`)
searches, inside each calibration scope (a subject group or a fold: training subjects only),
the settings of the synthetic pool by what they do to the run's own recognizer:

1. the scope's real subjects are split into ``n_splits`` inner subject-grouped folds
   (:func:`inner_folds`, stratified by label where possible);
2. each optuna trial (seeded TPE, one sampler seeded with ``(seed, trial)`` per trial, run by
   the shared :class:`mesynth.calibration.trials.TrialSearch`) proposes apex size, effect
   strengths (head motion, skin motion, noise, blinks), the share of mined templates, the
   synthetic share per class (a fill ratio) and the render size (:data:`UTILITY_SPACE`,
   :func:`trial_settings`);
3. for every inner fold the pool is rendered with those settings from the scope's own faces and
   templates only (cached by content, so inner folds and reruns share it), clips touching the
   inner held-out subjects are left out, the run's model is trained (``inner_epochs``) on inner
   real + synthetic and predicts the inner held-out *real* subjects
   (:attr:`recognizer.remedies.base.FoldContext.inner_score`);
4. the objective is the mean of pooled UF1 and UAR over the inner held-out subjects; the same
   score without synthetic clips is the scope's baseline.

The best trial is used only when it beats the baseline; otherwise the fold trains on its real
samples alone and says so. Every trial records the subjects it used (inner training and
held-out subjects, the faces and templates of its clips, its profile's subjects), and
:func:`recognizer.protocols.leakage.check_fold` refuses a fold whose test subject is among them.

Files under ``<calibration dir>/<scope>/``: ``measured/`` (the ``flows`` measurement the
profiles start from), ``search/search.json`` (settings hash: another setting restarts the
search), ``search/baseline.json``, ``search/trials/trial_NNNN.json`` and ``.yaml`` (written
atomically; a rerun re-reads them and continues up to ``trials``), ``history.csv``,
``history.png``, ``profile.yaml`` (the chosen trial's) and ``utility.json`` (the record).

Convention:
    Scores are pooled over the inner held-out subjects' real samples: UF1 and UAR of
    :mod:`recognizer.evaluation.metrics` on the concatenated predictions of every inner fold.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import optuna

from mesynth.calibration.adversarial import profile_from_parameters
from mesynth.calibration.profile import CalibrationProfile
from mesynth.calibration.trials import TrialSearch, TrialSettingsError, history_frame, write_json
from recognizer.evaluation.metrics import uar, uf1
from recognizer.protocols.leakage import check_fold
from recognizer.remedies.base import FoldContext, FoldData
from recognizer.remedies.calibration import (
    CalibrationScope,
    FoldCalibrationError,
    _differing,
    calibrate_scope,
)

#: searched dimensions: ``(low, high, log)`` floats; ``render_size`` is a categorical of
#: ``render_sizes``. Head rotation and scale follow the translation (``HEAD_RATIOS``).
UTILITY_SPACE: dict[str, tuple[float, float, bool]] = {
    "apex_peak_iod": (0.01, 0.3, True),
    "head_translation_iod": (1e-3, 0.1, True),
    "residual_rms_iod": (1e-3, 0.1, True),
    "noise_sigma": (0.1, 12.0, True),
    "blink_rate_per_s": (0.0, 1.0, False),
    "mined_share": (0.05, 0.95, False),
    "fill_ratio": (0.25, 1.0, False),
}
#: the range of ``synthetic_weight`` (log-uniform) with ``search_weight``
WEIGHT_RANGE = (0.1, 2.0)
#: the range of ``mixup`` (the probability of same-class mixup, uniform) with ``search_mixup``
MIXUP_RANGE = (0.0, 1.0)
#: head rotation (degrees) and scale change per IOD of head translation (the ratios of the
#: upper ends of :data:`mesynth.calibration.adversarial.DEFAULT_SPACE`)
HEAD_RATIOS = {"head_rotation_deg": 40.0, "head_scale": 0.3}
#: the effect switch (:class:`mesynth.calibration.profile_effects.ProfileSwitches`) of a
#: searched effect: a switched-off effect is not searched
SWITCH = {
    "head_translation_iod": "head_motion",
    "residual_rms_iod": "skin_motion",
    "noise_sigma": "noise",
    "blink_rate_per_s": "blinks",
}
PROFILE_PARAMETERS = ("apex_peak_iod", "head_translation_iod", "residual_rms_iod", "noise_sigma")


# --------------------------------------------------------------------------- inner folds


def inner_folds(
    subjects: Sequence[str], labels: Sequence[int], n_splits: int, seed: int
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Subject-grouped inner folds, stratified by label where possible
    (scikit-learn's ``StratifiedGroupKFold``, shuffled with ``seed``).

    Args:
        subjects: ``(N,)`` subject of each sample.
        labels: ``(N,)`` their class indices.
        n_splits: folds (capped at the number of subjects).

    Returns:
        ``[(inner training subjects, inner held-out subjects)]``, each sorted; every subject is
        held out exactly once and never on both sides.

    Raises:
        FoldCalibrationError: fewer than two subjects.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.asarray([str(s) for s in subjects], dtype=object)
    names = sorted(set(groups))
    if len(names) < 2:
        raise FoldCalibrationError(
            f"remedy.calibration.method=utility: a scope needs >= 2 subjects for inner folds, "
            f"got {names}"
        )
    splitter = StratifiedGroupKFold(
        n_splits=min(int(n_splits), len(names)), shuffle=True, random_state=int(seed)
    )
    out = []
    with warnings.catch_warnings():  # a class rarer than n_splits: stratified where possible
        warnings.simplefilter("ignore", UserWarning)
        for train, held in splitter.split(np.zeros(len(groups)), np.asarray(labels), groups):
            out.append((tuple(sorted(set(groups[train]))), tuple(sorted(set(groups[held])))))
    return out


@dataclass(frozen=True)
class InnerFold:
    """An inner fold as a remedy sees a fold: the inner held-out subjects are its validation
    subjects (no synthetic clip may touch them) and the outer fold's test subjects stay its
    test subjects (the profile check runs against them)."""

    index: int
    train_subjects: frozenset[str]
    val_subjects: frozenset[str]
    test_subjects: frozenset[str]


# --------------------------------------------------------------------------- trial settings


@dataclass(frozen=True)
class TrialSettings:
    """What one trial's parameters set (:func:`trial_settings`).

    Attributes:
        profile: the effects profile (``base`` with the searched medians).
        strategy: the fill ratio (synthetic share per class, a ``strategy`` float).
        render_size: side the synthetic faces are rendered at.
        template_weights: ``templates.weights`` (mined vs expert), ``None``: the recipe's.
        synthetic_weight: the synthetic samples' loss weight (``None``: the remedy's).
        domain_bn: domain-specific BatchNorm (``None``: the remedy's).
        mixup: the probability of same-class mixup (``None``: the remedy's).
    """

    profile: CalibrationProfile
    strategy: float
    render_size: int
    template_weights: tuple[float, ...] | None
    synthetic_weight: float | None = None
    domain_bn: bool | None = None
    mixup: float | None = None

    def report(self) -> dict[str, object]:
        p = self.profile
        return {
            "apex_peak_iod": p.apex_peak_iod.median,
            "head_translation_iod": p.head_translation_iod.median,
            "head_rotation_deg": p.head_rotation_deg.median,
            "head_scale": p.head_scale.median,
            "residual_rms_iod": p.residual_rms_iod.median,
            "noise_sigma": p.noise_sigma.median,
            "blink_rate_per_s": p.blink_rate_per_s,
            "strategy": self.strategy,
            "render_size": self.render_size,
            "template_weights": None
            if self.template_weights is None
            else list(self.template_weights),
            "synthetic_weight": self.synthetic_weight,
            **({} if self.domain_bn is None else {"domain_bn": self.domain_bn}),
            **({} if self.mixup is None else {"mixup": self.mixup}),
        }


def search_space(
    render_sizes: Sequence[int],
    sources: Sequence[str],
    switches: Mapping[str, bool],
    weight: bool = False,
    domain_bn: bool = False,
    mixup: bool = False,
) -> dict[str, optuna.distributions.BaseDistribution]:
    """The trial distributions: :data:`UTILITY_SPACE` without switched-off effects (and without
    ``mined_share`` unless ``sources`` has both ``mined`` and ``expert``), plus ``render_size``,
    with ``weight`` ``synthetic_weight`` (:data:`WEIGHT_RANGE`), with ``domain_bn`` the
    categorical ``domain_bn`` (false, true) and with ``mixup`` the probability ``mixup``
    (:data:`MIXUP_RANGE`)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, (low, high, log) in UTILITY_SPACE.items():
        if name in SWITCH and not switches.get(SWITCH[name], True):
            continue
        if name == "mined_share" and not {"mined", "expert"} <= set(sources):
            continue
        out[name] = optuna.distributions.FloatDistribution(low, high, log=log)
    out["render_size"] = optuna.distributions.CategoricalDistribution(
        [int(s) for s in render_sizes]
    )
    if weight:
        out["synthetic_weight"] = optuna.distributions.FloatDistribution(*WEIGHT_RANGE, log=True)
    if domain_bn:
        out["domain_bn"] = optuna.distributions.CategoricalDistribution([False, True])
    if mixup:
        out["mixup"] = optuna.distributions.FloatDistribution(*MIXUP_RANGE)
    return out


def trial_settings(
    base: CalibrationProfile,
    parameters: Mapping[str, object],
    sources: Sequence[str],
    default_size: int,
) -> TrialSettings:
    """The pool settings of one trial's ``parameters`` (names of :func:`search_space`).

    Profile medians come from :func:`mesynth.calibration.adversarial.profile_from_parameters`
    on ``base`` (head rotation and scale follow the translation by :data:`HEAD_RATIOS`), the
    blink rate replaces ``base``'s; ``mined_share`` weighs mined against expert templates in
    ``sources`` order; ``fill_ratio`` is the ``synth_fill`` strategy (every class up to that
    share of the largest); a missing ``render_size`` is ``default_size``; a missing
    ``synthetic_weight``, ``domain_bn`` or ``mixup`` leaves the remedy's.
    """
    spreads = {k: float(parameters[k]) for k in PROFILE_PARAMETERS if k in parameters}
    if "head_translation_iod" in spreads:
        for name, ratio in HEAD_RATIOS.items():
            spreads[name] = spreads["head_translation_iod"] * ratio
    profile = profile_from_parameters(base, spreads)
    if "blink_rate_per_s" in parameters:
        profile = dataclasses.replace(
            profile, blink_rate_per_s=float(parameters["blink_rate_per_s"])
        )
    weights = None
    if "mined_share" in parameters:
        share = float(parameters["mined_share"])
        weights = tuple(
            share if s == "mined" else (1.0 - share) if s == "expert" else 1.0 for s in sources
        )
    return TrialSettings(
        profile=profile,
        strategy=float(parameters.get("fill_ratio", 1.0)),
        render_size=int(parameters.get("render_size", default_size)),
        template_weights=weights,
        synthetic_weight=(
            float(parameters["synthetic_weight"]) if "synthetic_weight" in parameters else None
        ),
        domain_bn=bool(parameters["domain_bn"]) if "domain_bn" in parameters else None,
        mixup=float(parameters["mixup"]) if "mixup" in parameters else None,
    )


def trial_source(source: object, settings: TrialSettings, profile_path: Path) -> object:
    """``source`` (a :class:`recognizer.remedies.synthetic.SyntheticData`) rendering with a
    trial's settings: its profile (``profile_path``) as effects and apex size, its template
    weights, render size and fill ratio, and the searched training options (loss weight,
    domain BatchNorm, mixup) where it sets them."""
    synthesis = source.synthesis
    templates = synthesis.templates
    if settings.template_weights is not None:
        templates = replace(templates, weights=settings.template_weights)
    synthesis = replace(
        synthesis,
        effects=replace(synthesis.effects, path=str(profile_path)),
        motion=replace(synthesis.motion, apex_iod="profile"),
        templates=templates,
    )
    frames = source.frames
    if frames is not None:
        frames = replace(frames, size=settings.render_size)
    weight = (
        source.synthetic_weight if settings.synthetic_weight is None else settings.synthetic_weight
    )
    training = {
        key: getattr(settings, key)
        for key in ("domain_bn", "mixup")
        if getattr(settings, key) is not None
    }
    return replace(
        source, synthesis=synthesis, frames=frames, strategy=settings.strategy,
        synthetic_weight=weight, **training,
    )  # fmt: skip


# --------------------------------------------------------------------------- the search


@dataclass(frozen=True)
class UtilityChoice:
    """A scope's utility calibration (what :meth:`SyntheticData.calibrated` returns for it).

    Attributes:
        scope: what was searched on.
        path: the chosen trial's ``profile.yaml`` (``None`` when no trial beat the baseline).
        made: trials ran in this call (else everything was read back).
        changed: settings that differed from an earlier search it replaced.
        use_synthetic: the best trial beat the no-synthetic baseline.
        record: the scope's record (``utility.json``; also the fold's report entry).
        searched_subjects: ``{"<scope> utility trial N": subjects it used}`` (and the baseline).
    """

    scope: CalibrationScope
    path: Path | None
    made: bool
    changed: tuple[str, ...]
    use_synthetic: bool
    record: dict[str, object]
    searched_subjects: dict[str, list[str]]

    def report(self) -> dict[str, object]:
        """The fold's ``results.json`` entry for its calibration."""
        return {
            "scope": self.scope.name,
            "group": self.scope.group,
            "profile": None if self.path is None else str(self.path),
            "real_subjects": list(self.scope.subjects),
            "made": self.made,
            **self.record,
        }


def _pooled(scores: Sequence[Mapping[str, object]], truths: Sequence[Sequence[int]]) -> dict:
    true = [int(y) for t in truths for y in t]
    predicted = [int(y) for s in scores for y in s["predicted"]]
    f1, recall = uf1(true, predicted), uar(true, predicted)
    return {"uf1": f1, "uar": recall, "objective": (f1 + recall) / 2.0}


def calibrate_utility(
    source: object,
    context: FoldContext,
    scope: CalibrationScope,
    samples: Sequence[object],
    labels: Sequence[int],
    root: str | Path,
) -> tuple[object, UtilityChoice]:
    """Search (or resume, or reuse) ``scope``'s utility calibration under ``root/<scope>/``.

    Args:
        source: the remedy's :class:`recognizer.remedies.synthetic.SyntheticData` (bound to
            the representation; calibration ``utility``).
        context: the outer fold (its ``inner_score``, test subjects, class names, seed).
        scope: the scope; only the samples of ``scope.subjects`` are used.
        samples, labels: real samples to choose from (the run's pool or the fold's training
            samples) and their class indices.
        root: the calibration folder.

    Returns:
        ``(source with the chosen settings, the choice)``; with no trial beating the baseline
        the source is returned unchanged (``choice.use_synthetic`` false).

    Raises:
        FoldCalibrationError: no ``inner_score`` on ``context``, too few subjects, or a scope
            subject without samples.
    """
    calibration = source.calibration
    scorer = context.inner_score
    if scorer is None:
        raise FoldCalibrationError(
            "remedy.calibration.method=utility trains the run's model on inner folds: run it "
            "through recognizer.experiments.run_protocol (FoldContext.inner_score is not set)"
        )
    wanted = set(scope.subjects)
    chosen = [(s, int(y)) for s, y in zip(samples, labels) if str(s.subject) in wanted]
    real = [s for s, _ in chosen]
    real_labels = [y for _, y in chosen]
    missing = sorted(wanted - {str(s.subject) for s in real})
    if missing:
        raise FoldCalibrationError(
            f"remedy.calibration: scope {scope.name} has no real samples of {missing[:5]}"
        )
    folder = Path(root) / scope.name
    measured = calibrate_scope(
        replace(calibration, method="flows"),
        replace(scope, name="measured"),
        real,
        source.frames,
        folder,
    ).profile
    splits = inner_folds([s.subject for s in real], real_labels, calibration.n_splits,
                         calibration.seed)  # fmt: skip
    tested = frozenset(str(s) for s in getattr(context.fold, "test_subjects", ()))
    epochs = calibration.inner_epochs
    if epochs is None:  # a quarter of the run's epochs
        epochs = max(1, int(getattr(getattr(scorer, "trainer_config", None), "epochs", 4)) // 4)
    recipe = source.recipe()
    space = search_space(
        calibration.render_sizes,
        recipe.templates.sources,
        asdict(recipe.effects),
        weight=calibration.search_weight and source.mode == "fill",
        domain_bn=calibration.search_domain_bn and source.mode == "fill",
        mixup=calibration.search_mixup and source.mode == "fill",
    )
    budgets = ("trials", "time_budget_s")  # a larger budget continues the search
    described = {k: v for k, v in source.settings().items() if k != "calibration"}
    settings = {
        "calibration": {k: v for k, v in calibration.settings().items() if k not in budgets},
        "scope": asdict(scope),
        "real": [[str(getattr(s, "uid", s.subject)) for s in real], real_labels],
        "measured": measured.to_dict(),
        "source": described,
        "scorer": scorer.settings() if hasattr(scorer, "settings") else repr(scorer),
        "epochs": epochs,
        "classes": list(context.class_names),
        "space": {k: repr(v) for k, v in space.items()},
    }  # fmt: skip
    settings = json.loads(json.dumps(settings, default=str))
    changed: tuple[str, ...] = ()

    def open_search() -> TrialSearch:
        return TrialSearch(folder / "search", settings, space, seed=calibration.seed,
                           sampler=calibration.sampler, startup_trials=calibration.startup_trials,
                           direction="maximize")  # fmt: skip

    try:
        search = open_search()
    except TrialSettingsError as err:  # another setting restarts the search
        changed = _differing(err.described, settings)
        shutil.rmtree(folder / "search")
        search = open_search()

    def run_inner(trial_source_: object | None, label: str) -> tuple[dict, list[dict], set]:
        """Score one setting (``None``: real only) over the inner folds."""
        scores, truths, used, counts = [], [], set(), []
        for k, (train_subjects, held) in enumerate(splits):
            train = [s for s in real if str(s.subject) in set(train_subjects)]
            train_y = [y for s, y in chosen if str(s.subject) in set(train_subjects)]
            test = [s for s in real if str(s.subject) in set(held)]
            test_y = [y for s, y in chosen if str(s.subject) in set(held)]
            data = FoldData(train, train_y)
            if trial_source_ is not None:
                inner = FoldContext(
                    fold=InnerFold(k, frozenset(train_subjects), frozenset(held), tested),
                    train=train,
                    train_labels=train_y,
                    class_names=context.class_names,
                    fold_dir=context.fold_dir,
                    seed=context.seed,
                    pool=real,
                    pool_labels=real_labels,
                )
                data = trial_source_._fold_data(inner)
                # nothing of the inner held-out subjects reaches the inner training
                check_fold(f"{label} inner {k}", data.train, test, test_subjects=held)
            used |= {str(s.subject) for s in train} | set(held)
            for sample in data.train:
                extra = getattr(sample, "extra", None) or {}
                for key in ("template_subjects", "identity_subject"):
                    used |= {s for s in str(extra.get(key, "")).split(";") if s}
            counts.append(len(data.train) - len(train))
            scores.append(
                scorer(data.train, data.train_labels, test, test_y, epochs=epochs,
                       seed=int(np.random.SeedSequence([calibration.seed, k]).generate_state(1)[0]),
                       sample_weights=data.train_weights, domains=data.train_domains,
                       mixing=data.mixing)
            )  # fmt: skip
            truths.append(test_y)
        return _pooled(scores, truths), counts, used

    made = False
    start = time.perf_counter()
    baseline_path = search.out_dir / "baseline.json"
    if baseline_path.is_file():
        baseline = json.loads(baseline_path.read_text())
    else:
        scores, _, used = run_inner(None, f"{scope.name} utility baseline")
        baseline = {**scores, "subjects": sorted(used)}
        write_json(baseline_path, baseline)
        made = True

    sources = recipe.templates.sources

    def objective(number: int, parameters: dict) -> dict[str, object]:
        chosen_settings = trial_settings(measured, parameters, sources, source.frames.size)
        profile_path = search.trial_path(number, ".yaml")
        temporary = chosen_settings.profile.save(
            profile_path.with_name(f".tmp-{profile_path.name}")
        )
        temporary.replace(profile_path)
        label = f"{scope.name} utility trial {number}"
        scores, counts, used = run_inner(trial_source(source, chosen_settings, profile_path), label)
        used |= {str(s) for s in chosen_settings.profile.source.get("real_subjects") or ()}
        return {"settings": chosen_settings.report(), **scores,
                "synthetic_per_inner_fold": counts, "subjects": sorted(used)}  # fmt: skip

    def spent(done: Sequence[dict]) -> bool:
        """The time budget is spent (the baseline counts; the first trial always runs)."""
        budget = calibration.time_budget_s
        return budget is not None and bool(done) and time.perf_counter() - start > budget

    resumed = len(search.rows)
    done = search.run(objective, calibration.trials, stop=spent)
    made = made or len(done) > resumed
    history = history_frame(done, ("uf1", "uar", "objective"))
    history.to_csv(folder / "history.csv", index=False)
    from mesynth.evaluation.figures import plot_utility_history

    figure = plot_utility_history(history, baseline["objective"], folder / "history.png")
    best = search.best()
    use = best is not None and done[best]["objective"] > baseline["objective"]
    path = None
    out = source
    if use:
        best_settings = trial_settings(measured, done[best]["params"], sources, source.frames.size)
        path = folder / "profile.yaml"
        best_settings.profile.save(folder / ".tmp-profile.yaml").replace(path)
        out = trial_source(source, best_settings, path)
    record = {
        "method": "utility",
        "baseline": {k: baseline[k] for k in ("uf1", "uar", "objective")},
        "trials": [
            {k: r[k] for k in ("trial", "uf1", "uar", "objective", "settings",
                               "synthetic_per_inner_fold")}
            for r in done
        ],
        "best_trial": best,
        "use_synthetic": use,
        "chosen": done[best]["settings"] if use else None,
        "inner_folds": [list(held) for _, held in splits],
        "inner_epochs": epochs,
        "history": str(folder / "history.csv"),
        "figure": str(figure),
    }  # fmt: skip
    write_json(folder / "utility.json", record)
    searched = {f"{scope.name} utility baseline": list(baseline["subjects"])}
    searched |= {f"{scope.name} utility trial {r['trial']}": list(r["subjects"]) for r in done}
    choice = UtilityChoice(scope, path, made, changed, use, record, searched)
    return out, choice
