"""``mesynth``: the generator's command line (Hydra over ``configs/``)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from mesynth.calibrate_cli import calibrate_command, realism_command
from mesynth.cli_app import Command, run_command
from mesynth.environment import environment_report, format_report
from mesynth.mining import read_annotation_table
from mesynth.templates import TemplateBank


def env_command(cfg: DictConfig) -> None:
    """Print versions, devices and which landmark / optical-flow backends are usable."""
    print(format_report(environment_report()))


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


COMMANDS: dict[str, Command] = {
    "env": Command("env", env_command, "show versions, devices and available backends"),
    "templates": Command("templates", templates_command, "print the AU template bank"),
    "calibrate": Command(
        "calibrate", calibrate_command, "measure a real dataset into a calibration profile"
    ),
    "realism": Command(
        "realism", realism_command, "report the synthetic-to-real gap (domain classifier test)"
    ),
}


def main(argv: list[str] | None = None) -> int:
    return run_command("mesynth", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
