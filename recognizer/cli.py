"""``mer``: micro-expression recognition from the command line (Hydra over ``configs/``)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from mesynth.cli import env_command
from mesynth.cli_app import Command, run_command


def prepare_command(cfg: DictConfig) -> None:
    """``mer prepare``: load a dataset, print its load report, preprocess it into the cache and
    write apex-flow images when ``write_apex_flow=true``."""
    from hydra.utils import instantiate

    from recognizer.data.preprocess import CachedFrames, preprocess
    from recognizer.data.representations import ApexFlow
    from recognizer.prepare import write_apex_flow_images

    result = instantiate(cfg.data.loader)()
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


COMMANDS: dict[str, Command] = {
    "env": Command("env", env_command, "show versions, devices and available backends"),
    "prepare": Command(
        "prepare", prepare_command, "load a dataset, report it, preprocess it into the cache"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return run_command("mer", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
