"""Every config file is composed, and every `_target_` in it instantiated.

Primary configs (top-level YAML files) are composed as they are; every option of every group a
primary config's defaults list names is composed into that primary and its `_target_` nodes are
instantiated. A group file that no primary config reaches is an error: it could never be used.
Experiment files (`@package _global_`) are composed with `+experiment=NAME`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from mesynth.cli.app import config_dir

CONFIG_DIR = config_dir()
PRIMARIES = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _defaults_groups(primary: str) -> list[str]:
    raw = OmegaConf.load(CONFIG_DIR / f"{primary}.yaml")
    groups = []
    for entry in raw.get("defaults", []):
        if isinstance(entry, DictConfig):
            for key in entry:
                name = str(key).removeprefix("override ").lstrip("+").lstrip("/")
                if not name.startswith("hydra") and (CONFIG_DIR / name).is_dir():
                    groups.append(name)
    return groups


def _compose(primary: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name=primary, overrides=overrides, return_hydra_config=True)


def _targets(node: object, path: str = "") -> list[tuple[str, DictConfig]]:
    """All sub-configs with a `_target_`, outermost first (inner ones are built by their parent)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            return [(path, node)]
        out = []
        for key in node:
            if key == "hydra" and not path:
                continue
            out += _targets(node[key], f"{path}.{key}" if path else str(key))
        return out
    if isinstance(node, ListConfig):
        out = []
        for i, item in enumerate(node):
            out += _targets(item, f"{path}[{i}]")
        return out
    return []


CASES = [(primary, None, None) for primary in PRIMARIES]
for _primary in PRIMARIES:
    for _group in _defaults_groups(_primary):
        CASES += [(_primary, _group, option) for option in _group_options(_group)]
#: groups of `@package _global_` files added with `+group=option` (each names its primary)
GLOBAL_GROUPS = ("experiment", "preset")
for _group in GLOBAL_GROUPS:
    CASES += [("(its primary)", _group, o) for o in _group_options(_group)]


@pytest.mark.parametrize(("primary", "group", "option"), CASES)
def test_compose_and_instantiate(primary: str, group: str | None, option: str | None) -> None:
    overrides = []
    if group in GLOBAL_GROUPS:
        primary = _global_primary(group, option)
        overrides = [f"+{group}={option}"]
    elif group is not None:
        overrides = [f"{group}={option}"]
    cfg = _compose(primary, overrides)
    HydraConfig.instance().set_config(cfg)
    selected = OmegaConf.select(cfg, str(group).replace("/", ".")) if group else None
    node = cfg if group in (None, *GLOBAL_GROUPS) else selected
    for path, target_cfg in _targets(node):
        obj = instantiate(target_cfg)
        assert obj is not None, f"{primary}:{group}={option} {path} instantiated to None"


def _global_primary(group: str, option: str) -> str:
    text = (CONFIG_DIR / group / f"{option}.yaml").read_text()
    for line in text.splitlines():
        if line.startswith("# primary:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{group}/{option}.yaml must say '# primary: <config>' on a line")


def test_every_group_file_is_reachable() -> None:
    reachable = {"hydra", *GLOBAL_GROUPS}
    for primary in PRIMARIES:
        reachable.update(_defaults_groups(primary))
    groups = {p.parent.relative_to(CONFIG_DIR).as_posix() for p in CONFIG_DIR.glob("*/**/*.yaml")}
    groups = {g for g in groups if not g.startswith("hydra/")}  # Hydra's own (hydra/launcher)
    assert groups <= reachable, f"groups no primary config uses: {sorted(groups - reachable)}"


def test_hydra_leaves_working_directory_alone() -> None:
    for primary in PRIMARIES:
        cfg = _compose(primary, [])
        assert cfg.hydra.job.chdir is False, primary
        assert "paths" in cfg, f"{primary} must take the paths group"


def test_config_dir_is_the_repository_folder() -> None:
    assert CONFIG_DIR == Path(__file__).resolve().parents[1] / "mesynth" / "configs"


@pytest.mark.parametrize("plan", ["fill", "ratio", "sampling_strategy"])
def test_real_counts_of_a_plan_are_given_on_the_command_line(plan: str) -> None:
    """`mesynth.plan.real_counts='{...}'` replaces the option's empty default (a `{}` default
    refused every key: "Could not override")."""
    GlobalHydra.instance().clear()
    counts = "mesynth.plan.real_counts={happiness: 30, surprise: 25, fear: 4}"
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("generate", overrides=[f"mesynth/plan={plan}", counts])
    made = instantiate(cfg.mesynth.plan, _convert_="all")(seed=0)
    assert sum(made.counts.values()) > 0
    assert made.counts["fear"] >= made.counts["surprise"] >= made.counts["happiness"]
    if plan == "fill":
        assert made.counts == {"happiness": 0, "surprise": 5, "fear": 26}
