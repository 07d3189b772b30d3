"""The generation recipe: built from Hydra's nested config, named errors, explicit motion
calibration, one store whichever way it is run, and the shared device helper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mesynth.calibration.profile_effects import ProfileEffects, calibrated_motion
from mesynth.environment import resolve_device
from mesynth.generation.balance import equal
from mesynth.generation.pipeline import generate
from mesynth.generation.recipe import (
    FramesRecipe,
    GenerationRecipe,
    IdentitiesRecipe,
    MotionRecipe,
    ProfileSource,
    RecipeError,
    TemplatesRecipe,
    TimingRecipe,
    run_recipe,
)
from mesynth.labels.emotions import scheme_labels
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.render.effects import EffectsConfig
from mesynth.templates.bank import TemplateBank
from tests.profile_fixtures import EXAMPLE_PROFILE as PROFILE
from tests.profile_fixtures import textured_face

SIZE = 32


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mesynth.cli.app import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose(config_name="generate", overrides=overrides)


def test_recipe_from_the_nested_config_equals_the_hand_built_one() -> None:
    from hydra.utils import instantiate

    cfg = _compose(
        [
            "paths.root_dir=/data",
            "paths.user_cache_dir=/data/.cache",  # landmarks: a per-user cache by default
            "recipe.size=112",
            "recipe.identities.copies=2",
            "recipe.templates.sources=[expert,macro_onset]",
            "recipe.templates.macro_onset_csvs=[a.csv]",
            "recipe.templates.macro_onset_labels=[happiness]",
            "recipe.frames.mode=full",
            "recipe/effects=profile",
            "recipe.effects.path=p.yaml",
            "recipe.effects.noise=false",
            "recipe.motion.apex_iod=profile",
        ]
    )
    built = GenerationRecipe(
        identities=IdentitiesRecipe(copies=2, cache_dir="/data/.cache/landmarks"),
        templates=TemplatesRecipe(
            sources=("expert", "macro_onset"),
            macro_onset_csvs=("a.csv",),
            macro_onset_labels=("happiness",),
        ),
        motion=MotionRecipe(apex_iod="profile"),
        timing=TimingRecipe(fps=200),
        effects=ProfileSource("p.yaml", noise=False),
        frames=FramesRecipe(mode="full"),
        size=112,
    )
    assert instantiate(cfg.recipe, _convert_="all") == built
    assert instantiate(cfg.recipe) == built  # nested parts as DictConfig / ListConfig
    plain = {"identities": {"copies": 2, "cache_dir": "/data/.cache/landmarks"}}
    assert GenerationRecipe(**plain).identities == built.identities


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"size": 8}, "recipe.size"),
        ({"scheme": "dfme9"}, "recipe.scheme"),
        ({"identities": {"copiez": 2}}, "recipe.identities: unknown keys ['copiez']"),
        ({"identities": {"copies": -1}}, "recipe.identities.copies"),
        ({"templates": {"sources": ["expert", "guessed"]}}, "recipe.templates.sources"),
        ({"templates": {"sources": ["macro_onset"]}}, "recipe.templates.macro_onset_csvs"),
        ({"motion": {"apex_iod": -0.1}}, "recipe.motion.apex_iod"),
        ({"motion": {"apex_iod": "profile"}}, "recipe.motion.apex_iod 'profile' needs"),
        ({"frames": {"mode": "keyframe"}}, "recipe.frames.mode"),
        ({"timing": {"fps": 0}}, "recipe.timing.fps"),
        ({"effects": 3}, "recipe.effects"),
    ],
)
def test_a_bad_value_names_its_key(kwargs, key) -> None:
    with pytest.raises(RecipeError) as err:
        GenerationRecipe(**kwargs)
    assert key in str(err.value)


def test_mined_templates_and_onset_faces_need_what_only_a_fold_has() -> None:
    recipe = GenerationRecipe(templates={"sources": ["mined"]}, identities={"source": "onset"})
    with pytest.raises(RecipeError, match="no annotation records"):
        recipe.build_bank()
    for source in ("onset", "data"):
        with pytest.raises(RecipeError, match=f"'{source}' needs the faces of a dataset's"):
            recipe.build_identities(source=source)


def test_generate_uses_the_callers_motion_model_even_with_a_profile(tmp_path) -> None:
    motion = MotionModel.expert(apex_iod=0.05)
    summary = generate(
        [textured_face("anna", 1, SIZE)],
        TemplateBank.expert("dfme7"),
        motion,
        TimingSampler(fps=60),
        equal(1, ["happiness"], seed=3),
        tmp_path / "store",
        num_frames=3,
        effects=PROFILE,
        device="cpu",
        progress=False,
    )
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    assert motion.apex_iod == 0.05 and summary.apex_iod == 0.05
    assert meta["config"]["motion"]["apex_iod"] == 0.05


def test_recipe_calibrates_the_motion_only_when_asked(tmp_path) -> None:
    path = str(PROFILE.save(tmp_path / "profile.yaml"))
    bank = TemplateBank.expert("dfme7")
    fixed = GenerationRecipe(effects=path, motion={"apex_iod": 0.05})
    calibrated = GenerationRecipe(effects=path, motion={"apex_iod": "profile"})
    effects = calibrated.build_effects()
    assert isinstance(effects, ProfileEffects) and effects.path == path
    assert fixed.build_motion(bank, effects).apex_iod == 0.05
    expected = calibrated_motion(MotionModel.expert(), PROFILE, bank).apex_iod
    assert calibrated.build_motion(bank, effects).apex_iod == pytest.approx(expected)
    assert expected != pytest.approx(0.05)


def _store_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".npy", ".json", ".csv")
    }


def test_command_line_and_python_api_make_the_same_store(tmp_path, capsys) -> None:
    from mesynth.cli.main import main

    cli_store, api_store = tmp_path / "cli", tmp_path / "api"
    args = [
        "generate",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path}/run",
        "recipe.size=32",
        "recipe.frames.num_frames=4",
        "recipe.device=cpu",
        "recipe.seed=5",
        "recipe/effects=full",
        "mesynth.plan.n_per_class=1",
        "progress=false",
        f"out_dir={cli_store}",
    ]
    assert main(args) == 0
    recipe = GenerationRecipe(
        identities={"cache_dir": str(tmp_path / ".cache" / "landmarks")},
        effects="full",
        frames={"num_frames": 4},
        size=32,
        device="cpu",
        batch_size=3,  # never changes a clip
        seed=5,
    )
    run_recipe(recipe, equal(1, list(scheme_labels("dfme7")), seed=5), api_store, progress=False)
    cli, api = _store_files(cli_store), _store_files(api_store)
    assert sum(k.endswith(".npy") for k in cli) == 7
    assert cli == api
    assert EffectsConfig() != recipe.effects  # the effects were on in both


def test_resolve_device_names_a_bad_setting() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'gpu0'"):
        resolve_device("gpu0")
