"""The balanced 10k preset and mining from a release's own sheets: ``mer annotations`` writes a
fake CASME II's and SAMM's xlsx rows as annotation records, ``mesynth generate`` mines them
through ``recipe.templates.annotation_tables`` (``+preset=balanced10k`` composes to a 10,000+
clip plan), and the synthetic remedies refuse such whole-release tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from mesynth.cli.app import config_dir
from mesynth.cli.main import main as mesynth_main
from mesynth.generation.recipe import GenerationRecipe, RecipeError
from recognizer.cli import main as mer_main
from recognizer.datasets import load
from recognizer.remedies import create_remedy
from recognizer.remedies.synthetic import SynthesisError
from tests.recognizer.fake_releases import fake_casme2, fake_samm


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("releases")
    out = {}
    for name, make in (("casme2", fake_casme2), ("samm", fake_samm)):
        release = make(root / name)
        csv = root / "aus" / f"{name}.csv"
        argv = ["annotations", f"data={name}", f"data.loader.root={release}", f"out={csv}"]
        assert mer_main(argv) == 0
        out[name] = csv
        out[f"{name}_release"] = release
    return out


def test_annotation_tables_hold_the_release_rows_with_aus(tables: dict[str, Path]) -> None:
    for name in ("casme2", "samm"):
        table = pd.read_csv(tables[name], dtype=str, keep_default_na=False)
        assert list(table.columns) == ["subject", "clip", "emotion", "aus", "dataset"]
        samples = load(name, tables[f"{name}_release"]).samples
        expected = {(s.subject, s.clip, s.emotion, s.aus) for s in samples if s.aus.strip()}
        assert set(zip(*(table[c] for c in ("subject", "clip", "emotion", "aus")))) == expected
        assert set(table.dataset) == {name}
    casme2 = pd.read_csv(tables["casme2"], dtype=str, keep_default_na=False)
    # an AU cell stored as a number in the sheet arrives as its text
    assert "12" in set(casme2.aus) and all(s.startswith("casme2/") for s in casme2.subject)


def test_mer_annotations_needs_out_and_aus(tmp_path: Path, capsys) -> None:
    assert mer_main(["annotations", "data=casme2", f"data.loader.root={tmp_path}"]) != 0
    assert "out=" in capsys.readouterr().err


def test_generate_mines_templates_from_the_tables(tables: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "store"
    argv = [
        "generate", "+preset=balanced10k", "mesynth.plan.n_per_class=2", "recipe.size=32",
        "recipe.frames.num_frames=4", "recipe.identities.copies=0", "recipe/effects=none",
        "recipe.device=cpu", "progress=false", f"out_dir={out}",
        f"recipe.templates.annotation_tables=[{tables['casme2']},{tables['samm']}]",
    ]  # fmt: skip
    assert mesynth_main(argv) == 0
    params = [json.loads(p.read_text()) for p in sorted((out / "params").glob("*.json"))]
    assert len(params) == 14  # 7 dfme7 classes x 2
    subjects = set(pd.read_csv(tables["casme2"], dtype=str).subject) | set(
        pd.read_csv(tables["samm"], dtype=str).subject
    )
    mined = [p["template"] for p in params if p["template"]["source"].startswith("mined")]
    assert mined, "no clip animated a template mined from the tables"
    assert all(set(t["subjects"]) and set(t["subjects"]) <= subjects for t in mined)


def test_the_preset_composes_to_a_balanced_10k_plan() -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose(config_name="generate", overrides=["+preset=balanced10k"])
    classes = 7
    assert cfg.mesynth.plan.n_per_class * classes >= 10_000
    assert list(cfg.recipe.templates.sources) == ["mined", "expert"]
    assert cfg.recipe.size == 112 and cfg.recipe.effects.noise and cfg.recipe.effects.head_motion


def test_mined_without_records_or_tables_says_what_to_give(tmp_path: Path) -> None:
    recipe = GenerationRecipe(templates={"sources": ["mined"]})
    with pytest.raises(RecipeError, match="annotation_tables"):
        recipe.build_bank()
    empty = tmp_path / "empty.csv"
    empty.write_text("subject,emotion,aus\n")
    recipe = GenerationRecipe(templates={"sources": ["mined"], "annotation_tables": [str(empty)]})
    with pytest.raises(RecipeError, match="hold none"):
        recipe.build_bank()
    with pytest.raises(RecipeError, match="annotation_tables"):
        GenerationRecipe(templates={"sources": ["expert"], "annotation_tables": [str(empty)]})


def test_remedies_refuse_whole_release_tables(tables: dict[str, Path], tmp_path: Path) -> None:
    from recognizer.data.representations import ApexFlow
    from recognizer.protocols import Fold
    from recognizer.remedies.base import FoldContext

    templates = {"sources": ["mined", "expert"], "annotation_tables": [str(tables["casme2"])]}
    remedy = create_remedy(
        "synth_fill",
        synthesis={"scheme": "casme2_5", "size": 32, "device": "cpu", "templates": templates},
        cache_dir=str(tmp_path / "cache"),
    )
    samples = load("casme2", tables["casme2_release"]).samples
    kept = [s for s in samples if s.emotion in ("happiness", "disgust")]
    names = ["happiness", "surprise", "disgust", "repression", "others"]
    subjects = frozenset(s.subject for s in kept)
    test = sorted(subjects)[0]
    train = [s for s in kept if s.subject != test]
    context = FoldContext(
        Fold(0, subjects - {test}, frozenset(), frozenset([test])),
        train,
        [names.index(s.emotion) for s in train],
        names,
        tmp_path / "fold_00",
    )
    source = remedy.data.for_representation(ApexFlow(size=28, render_size=32))
    with pytest.raises(SynthesisError, match="annotation_tables"):
        source.fold_data(context)
