"""Task functions of ``mesynth calibrate`` and ``mesynth realism`` (Hydra at the edge only).

Sample sets come from config nodes (``_target_`` + ``_partial_``) such as
``recognizer.datasets.load``; a node's call may return the records or an object with
``.samples`` (and a printable ``.report``). mesynth never imports the loader itself.
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mesynth.calibration.calibrate import calibrate
from mesynth.evaluation.calibration_comparison import (
    calibration_comparison,
    search_history_path,
)
from mesynth.evaluation.realism_report import realism_report
from mesynth.labels.emotions import record_label


def load_records(node: DictConfig, what: str, limit: int | None = None) -> list[object]:
    """Call a loader node and return its records (at most ``limit``)."""
    result = instantiate(node)()
    records = list(getattr(result, "samples", result))
    report = getattr(result, "report", None)
    if report is not None:
        print(f"{what}: {report}")
    return records[:limit] if limit else records


def settings(cfg: DictConfig, names: str) -> dict[str, object]:
    """The config values named in ``names`` (space-separated) as keyword arguments."""
    return {name: cfg[name] for name in names.split()}


def calibrate_command(cfg: DictConfig) -> None:
    """Measure the configured dataset and write its calibration profile."""
    samples = load_records(cfg.data.loader, "real clips", cfg.limit)
    options = "backend tracking flow_method max_frames min_fit_samples min_clips_per_au ridge"
    profile = calibrate(samples, **settings(cfg, f"{options} progress"))
    path = profile.save(cfg.out)
    print(
        f"measured {profile.source['n_measured']} clips ({profile.source['n_skipped']} skipped); "
        f"apex size median {profile.apex_peak_iod.median:.4f} IOD, noise "
        f"{profile.noise_sigma.median:.2f} grey levels, motion basis {profile.motion_kind}"
    )
    print(f"profile: {Path(path).resolve()}")


def realism_command(cfg: DictConfig) -> None:
    """Compare the configured real and synthetic sets and write the realism report."""
    real = load_records(cfg.data.loader, "real clips", cfg.limit)
    synthetic = load_records(cfg.synthetic, "synthetic clips", cfg.limit)
    scheme = cfg.scheme

    def label_of(record: object) -> str:
        if getattr(record, "source", "real") == "synthetic" or not scheme:
            return str(getattr(record, "emotion", "") or "all")
        return record_label(record, scheme) or "excluded"

    options = settings(cfg, "size pool n_splits n_permutations seed history")
    options["representation"] = cfg.input  # `representation=` would name the config group
    if cfg.history is not None:  # a search's out_dir or its history.csv
        options["history"] = search_history_path(cfg.history)
    if cfg.get("calibrated") is not None:
        node = cfg.calibrated
        if isinstance(node, str):  # a root for the synthetic set's loader
            node = OmegaConf.merge(cfg.synthetic, {"root": node})
        calibrated = load_records(node, "calibrated synthetic clips", cfg.limit)
        comparison = calibration_comparison(
            real, synthetic, calibrated, cfg.out_dir, label_of=label_of, **options
        )
        for name, test in comparison.domain.items():
            print(f"domain classifier, real vs {name}: balanced accuracy {test.accuracy:.3f}")
        print(f"report: {comparison.markdown.resolve()}")
        return
    result = realism_report(real, synthetic, cfg.out_dir, label_of=label_of, **options)
    domain = result.domain
    print(
        f"domain classifier: balanced accuracy {domain.accuracy:.3f} (0.5 = indistinguishable), "
        f"binomial p {domain.binomial_p:.3g}, permutation p {domain.permutation_p:.3g}"
    )
    print(f"report: {result.markdown.resolve()}")


def calibrate_adversarial_command(cfg: DictConfig) -> None:
    """Search realism settings against the configured real clips and write the best profile."""
    from hydra.utils import instantiate

    from mesynth.calibration.adversarial import adversarial_calibration

    real = load_records(cfg.data.loader, "real clips", cfg.limit)
    recipe = instantiate(cfg.recipe, _convert_="all")
    search = "trials out_dir seed clips size pool n_splits c flow_method sampler startup_trials"
    search += " num_frames keyframe_sampling"
    # `representation` is a config group of the `mer` commands: the key here is `input`
    result = adversarial_calibration(
        real, recipe, representation=cfg.input, **settings(cfg, f"{search} progress")
    )
    print(
        f"{len(result.history)} trials ({result.resumed} resumed, {result.seconds:.1f} s now); "
        f"best trial {result.best_trial}: balanced accuracy {result.best_accuracy:.3f}"
    )
    print(f"profile: {result.profile_path.resolve()}")
    print(f"history: {result.history_path.resolve()}")


def calibrate_flows_command(cfg: DictConfig) -> None:
    """Measure apex-flow images + face crops into a profile; optionally search the rest."""
    from hydra.utils import instantiate

    from mesynth.calibration.adversarial import DEFAULT_SPACE, adversarial_calibration
    from mesynth.calibration.flow_images import calibrate_from_flows, read_flow_records
    from mesynth.calibration.framing_search import FRAMING_SPACE

    rows = load_records(cfg.data.loader, "real apex-flow images", cfg.limit)
    flows = read_flow_records(rows)
    subjects = None if cfg.subjects is None else [str(s) for s in cfg.subjects]
    profile = calibrate_from_flows(
        flows,
        subjects=subjects,
        exclude=[str(s) for s in cfg.exclude],
        backend=cfg.backend,
        apex_peak_iod=cfg.apex_peak_iod,
    )
    out_dir = Path(cfg.out_dir)
    measured = profile.save(out_dir / "measured.yaml")
    stats = profile.source["flow_statistics"]
    shares = ", ".join(f"{k} {v:.2f}" for k, v in stats["region_share"].items())
    strain = stats["strain"]
    print(
        f"measured {profile.source['n_real']} flow images of "
        f"{len(profile.source['real_subjects'])} subjects, {profile.source['n_faces']} face "
        f"crops; region energy share: {shares}; strain p5/p50/p95 {strain['p5']:.3f}/"
        f"{strain['p50']:.3f}/{strain['p95']:.3f}"
    )
    print(f"measured profile: {measured.resolve()}")
    if cfg.trials <= 0:
        return
    chosen = set(profile.source["real_subjects"])
    keep = [i for i, s in enumerate(flows.subjects) if s in chosen]
    space = dict(DEFAULT_SPACE) | (dict(FRAMING_SPACE) if cfg.search_framing else {})
    search = "trials seed clips pool n_splits c flow_method sampler startup_trials progress"
    result = adversarial_calibration(
        None,
        instantiate(cfg.recipe, _convert_="all"),
        out_dir=out_dir,
        base=profile,
        space=space,
        size=flows.images.shape[1],
        real_flows=flows.images[keep],
        real_subjects=[flows.subjects[i] for i in keep],
        **settings(cfg, search),
    )
    print(
        f"{len(result.history)} trials ({result.resumed} resumed, {result.seconds:.1f} s now); "
        f"best trial {result.best_trial}: balanced accuracy {result.best_accuracy:.3f}"
    )
    print(f"profile: {result.profile_path.resolve()}")
