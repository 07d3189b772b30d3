"""Synthetic remedies: per-fold synthesis from the training side only, caching, and each
planted leak caught by the checker inside run_protocol."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mesynth.face.identities import IdentityAugmentation, builtin_images, load_identities
from mesynth.generation.balance import BalancePlan
from mesynth.generation.pipeline import generate
from mesynth.motion.au_basis import MotionModel
from mesynth.motion.timing import TimingSampler
from mesynth.templates.bank import TemplateBank
from recognizer.data.representations import KeyFrameClip
from recognizer.data.torch_dataset import ClipDataset
from recognizer.datasets import load
from recognizer.experiments.runner import run_protocol
from recognizer.models import create_model
from recognizer.protocols import Fold, by_person, create_protocol
from recognizer.protocols.leakage import LeakageError, check_fold, find_leaks
from recognizer.remedies import FoldContext, FoldData, Remedy, create_remedy, synthetic_pool
from recognizer.remedies.synthetic import SynthesisError, load_synthetic, synthesize_pool
from recognizer.training.trainer import TrainerConfig

NAMES = ["anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise"]
SIZE = 32


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> tuple[list, list[int]]:
    """A small 'real' dataset: generated clips of 6 faces relabelled as real subjects."""
    root = tmp_path_factory.mktemp("target")
    faces = load_identities(
        "builtin", size=SIZE, augmentation=IdentityAugmentation(copies=2), cache_dir=root / "lm"
    )
    plan = BalancePlan({"happiness": 12, "surprise": 6, "disgust": 3}, seed=7)
    generate(faces, TemplateBank.expert("dfme7"), MotionModel.expert(0.05), TimingSampler(),
             plan, root / "store", num_frames=4, device="cpu", progress=False)  # fmt: skip
    samples = [
        dataclasses.replace(s, dataset="target", subject=f"target/{s.identity}", source="real")
        for s in load("mesynth", root / "store").samples
    ]
    return samples, [NAMES.index(s.emotion) for s in samples]


def _context(samples, labels, train_subjects, tmp_path, pool=False) -> FoldContext:
    keep = [i for i, s in enumerate(samples) if s.subject in train_subjects]
    test = frozenset(s.subject for s in samples) - set(train_subjects)
    fold = Fold(0, frozenset(train_subjects), frozenset(), test)
    return FoldContext(fold, [samples[i] for i in keep], [labels[i] for i in keep], NAMES,
                       tmp_path / "fold", 0, pool=samples if pool else (),
                       pool_labels=labels if pool else ())  # fmt: skip


def _remedy(name: str, cache: Path, *, templates=("mined", "expert"), identities="builtin",
            face_crops=False, scheme="dfme7", **kw) -> Remedy:  # fmt: skip
    synthesis = {
        "scheme": scheme,
        "identities": {"source": identities, "face_crops": face_crops,
                       "cache_dir": str(cache / "landmarks")},
        "templates": {"sources": templates},
        "frames": {"num_frames": 4},
        "size": SIZE,
        "device": "cpu",
    }  # fmt: skip
    return create_remedy(name, synthesis=synthesis, cache_dir=str(cache), **kw)


def _run(samples, labels, remedy, out: Path):
    representation = KeyFrameClip(num_frames=4, size=16, flip=False)

    def factory(subset, subset_labels, train):
        return ClipDataset(subset, subset_labels, representation, train=train)

    return run_protocol(
        samples, labels,
        # the six faces are two persons: hold out whole persons (each fold: three subjects)
        protocol=by_person(create_protocol("kfold", n_splits=2, stratified=False,
                                           val_fraction=0.0), samples),
        dataset_factory=factory,
        model_factory=lambda k: create_model("r3d18", k, widths=(4, 4, 4, 4)),
        remedy=remedy,
        trainer_config=TrainerConfig(epochs=1, batch_size=8, lr=0.01, device="cpu",
                                     progress=False),
        out_dir=out, num_classes=len(NAMES), class_names=NAMES,
    )  # fmt: skip


def test_synth_fill_renders_one_pool_and_balances_each_fold_from_it(
    target, tmp_path, monkeypatch
) -> None:
    samples, labels = target
    cache = tmp_path / "cache"
    renders = []
    run_recipe = synthetic_pool.run_recipe
    monkeypatch.setattr(
        synthetic_pool, "run_recipe", lambda *a, **k: renders.append(a[2]) or run_recipe(*a, **k)
    )
    remedy = _remedy("synth_fill", cache, templates=["mined", "expert"], pool_margin=1.0)
    result = _run(samples, labels, remedy, tmp_path / "run")
    stores = sorted(p.parent for p in cache.glob("*/provenance.json"))
    assert len(stores) == 1 and renders == stores  # one pool for both folds
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    for fold, entry in zip(result.folds, summary["fold_data"]):
        counts = json.loads((tmp_path / "run" / f"fold_{fold.index:02d}" / "class_counts.json")
                            .read_text())  # fmt: skip
        real = np.bincount([labels[i] for i, s in enumerate(samples)
                            if s.subject in fold.train_subjects], minlength=7)  # fmt: skip
        assert counts["real"] == real.tolist()
        assert counts["train"] == [int(real.max())] * 7  # every class topped up to the largest
        assert entry["synthetic_train"] == sum(counts["train"]) - sum(counts["real"])
        assert set(entry["excluded_subjects"]) <= fold.test_subjects
        assert entry["synthetic_excluded_clips"] > 0  # templates mined from test subjects
    pool = load_synthetic(stores[0], NAMES).samples
    mined = {s.extra["template_subjects"] for s in pool} - {""}
    assert mined and all(";" not in m for m in mined)  # one source subject per template
    assert all(s.source == "synthetic" and s.extra["identity_subject"] == "" for s in pool)
    # a second run with the same inputs reuses the pool
    _run(samples, labels, dataclasses.replace(remedy), tmp_path / "run2")
    assert sorted(p.parent for p in cache.glob("*/provenance.json")) == stores
    notes = json.loads((tmp_path / "run2" / "fold_00" / "class_counts.json").read_text())["notes"]
    assert "(reused)" in notes[0]


def test_synth_pretrain_shares_one_store_and_pretrains_per_person_held_out(
    target, tmp_path
) -> None:
    samples, labels = target
    cache = tmp_path / "cache"
    remedy = _remedy("synth_pretrain", cache, templates=["expert"], n_per_class=2,
                     pretrain_epochs=1, pool_margin=1.0)  # fmt: skip
    result = _run(samples, labels, remedy, tmp_path / "run")
    assert len(list(cache.glob("*/provenance.json"))) == 1
    # the built-in portraits are the target's two persons: each fold pretrains on the face of
    # the person it does not test, so the two folds cannot share one pretrained model
    assert len(list((tmp_path / "run" / "pretrain").iterdir())) == 2
    for fold in result.folds:
        counts = json.loads((tmp_path / "run" / f"fold_{fold.index:02d}" / "class_counts.json")
                            .read_text())  # fmt: skip
        assert counts["train"] == counts["real"] and counts["pretrain"] == [2] * 7
        tested = {s.split("/")[1].split("~")[0] for s in fold.test_subjects}
        assert set(counts["remedy"]["synthetic_persons"]).isdisjoint(tested)


def test_synth_only_trains_on_synthetic_clips_alone(target, tmp_path) -> None:
    samples, labels = target
    subjects = sorted({s.subject for s in samples})[:4]
    remedy = _remedy("synth_only", tmp_path / "cache", templates=["expert"], n_per_class=1)
    data = remedy.fold_data(_context(samples, labels, subjects, tmp_path))
    assert len(data.train) == 7 and all(s.source == "synthetic" for s in data.train)
    assert sorted(data.train_labels) == list(range(7))
    with pytest.raises(SynthesisError, match="not labels of scheme"):
        _remedy("synth_only", tmp_path / "c2", scheme="megc3").fold_data(
            _context(samples, labels, subjects, tmp_path)
        )


def test_onset_identities_of_held_out_subjects_are_left_out(target, tmp_path) -> None:
    samples, labels = target
    subjects = sorted({s.subject for s in samples})[:3]
    remedy = _remedy("synth_fill", tmp_path / "cache", templates=["expert"],
                     identities="onset", face_crops=True)  # fmt: skip
    data = remedy.fold_data(_context(samples, labels, subjects, tmp_path, pool=True))
    synthetic_clips = [s for s in data.train if s.source == "synthetic"]
    assert synthetic_clips
    assert {s.extra["identity_subject"] for s in synthetic_clips} <= set(subjects)
    held_out = {s.subject for s in samples} - set(subjects)
    assert data.report["excluded_subjects"] and set(data.report["excluded_subjects"]) <= held_out


def test_augmented_copies_of_a_held_out_persons_face_are_left_out(target, tmp_path) -> None:
    samples, labels = target
    astronaut = sorted(s.subject for s in samples if s.extra["person"] == "astronaut")
    remedy = _remedy("synth_fill", tmp_path / "cache", templates=["expert"], pool_margin=1.0)
    remedy = dataclasses.replace(remedy, data=dataclasses.replace(
        remedy.data, synthesis=dataclasses.replace(
            remedy.data.synthesis, identities=dataclasses.replace(
                remedy.data.synthesis.identities, copies=1))))  # fmt: skip
    context = _context(samples, labels, set(astronaut), tmp_path, pool=True)
    data = remedy.fold_data(context)
    pool = load_synthetic(data.report["synthetic_store"], NAMES).samples
    assert {"hopper", "hopper~aug0"} <= {s.identity for s in pool}  # the copy is in the pool
    assert {s.extra["identity_person"] for s in pool if s.identity == "hopper~aug0"} == {"hopper"}
    synthetic_clips = [s for s in data.train if s.source == "synthetic"]
    assert synthetic_clips
    assert {s.identity for s in synthetic_clips} == {"astronaut", "astronaut~aug0"}
    assert data.report["excluded_persons"] == ["hopper"]
    assert data.report["synthetic_persons"] == {"astronaut": len(synthetic_clips)}
    test = [s for s in samples if s.subject not in astronaut]
    check_fold(0, data.train, test)
    planted = next(s for s in pool if s.identity == "hopper~aug0")
    with pytest.raises(LeakageError) as err:
        check_fold(0, [*data.train, planted], test)
    assert [v.kind for v in err.value.violations] == ["person"]


# ------------------------------------------------------------------- planted leaks


def _expect_leak(samples, labels, remedy, out: Path, kind: str) -> None:
    with pytest.raises(LeakageError) as err:
        _run(samples, labels, remedy, out)
    assert kind in {v.kind for v in err.value.violations}, str(err.value)
    assert not list(out.rglob("*.pt")), "nothing may be trained on a leaking fold"


@dataclasses.dataclass(frozen=True)
class Unfiltered(Remedy):
    """Trains on the whole synthetic pool of ``source``, skipping the per-fold exclusion (a
    planted leak)."""

    source: object = None

    def fold_data(self, context: FoldContext) -> FoldData:
        pool = synthesize_pool(self.source, context)
        return FoldData([*context.train, *pool.samples], [*context.train_labels, *pool.labels])


def _excluded_then_caught(samples, labels, remedy, tmp_path, kind: str) -> None:
    """The remedy leaves the planted clips out of every fold (the run trains and the checker
    passes); the same pool given unfiltered is refused with ``kind``."""
    result = _run(samples, labels, remedy, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    for fold, entry in zip(result.folds, summary["fold_data"]):
        assert set(entry["excluded_subjects"]) <= fold.test_subjects
    assert any(entry["excluded_subjects"] for entry in summary["fold_data"])
    assert list((tmp_path / "run").rglob("*.pt"))
    _expect_leak(samples, labels, Unfiltered("unfiltered", source=remedy.data),
                 tmp_path / "leak", kind)  # fmt: skip


def test_templates_mined_from_all_subjects_are_excluded_per_fold(target, tmp_path) -> None:
    samples, labels = target
    remedy = _remedy("synth_fill", tmp_path / "cache", templates=["mined"],
                     template_records=samples, pool_margin=1.0)  # fmt: skip
    _excluded_then_caught(samples, labels, remedy, tmp_path, "template")


def test_identity_of_a_test_subject_is_excluded_per_fold(target, tmp_path) -> None:
    samples, labels = target
    faces = tmp_path / "faces"
    faces.mkdir()
    for name, key in (("face_a", "astronaut"), ("face_b", "hopper")):
        cv2.imwrite(str(faces / f"{name}.png"), builtin_images()[key][:, :, ::-1])
    everyone = sorted({s.subject for s in samples})
    owners = {"face_a": everyone[0], "face_b": everyone[-1]}
    remedy = _remedy("synth_fill", tmp_path / "cache", templates=["expert"],
                     identities=str(faces), identity_subjects=owners)  # fmt: skip
    _excluded_then_caught(samples, labels, remedy, tmp_path, "identity")


def test_a_face_folder_of_unknown_subjects_is_refused_unless_declared_subject_free(
    target, tmp_path
) -> None:
    samples, labels = target
    faces = tmp_path / "faces"
    faces.mkdir()
    cv2.imwrite(str(faces / "face_a.png"), builtin_images()["astronaut"][:, :, ::-1])
    subjects = sorted({s.subject for s in samples})[:4]
    context = _context(samples, labels, subjects, tmp_path, pool=True)
    remedy = _remedy("synth_fill", tmp_path / "cache", templates=["expert"], identities=str(faces))
    with pytest.raises(SynthesisError, match="faces_subject_free"):
        remedy.fold_data(context)
    free = _remedy("synth_fill", tmp_path / "cache", templates=["expert"],
                   identities=str(faces), faces_subject_free=True)  # fmt: skip
    data = free.fold_data(context)
    assert data.report["synthetic_train"] > 0 and not data.report["excluded_subjects"]


def test_store_made_for_another_split_is_refused(target, tmp_path) -> None:
    samples, labels = target
    everyone = sorted({s.subject for s in samples})
    made = synthesize_pool(
        _remedy("synth_pretrain", tmp_path / "cache", templates=["expert"], n_per_class=1).data,
        _context(samples, labels, everyone, tmp_path),
    )
    record = json.loads((made.root / "provenance.json").read_text())
    record["train_subjects"] = everyone  # a store made for one split (before the split)
    (made.root / "provenance.json").write_text(json.dumps(record))
    remedy = _remedy("synth_pretrain", tmp_path / "cache", store=str(made.root))
    _expect_leak(samples, labels, remedy, tmp_path / "run", "split")


def test_representations_say_what_they_need_from_a_synthetic_clip(tmp_path) -> None:
    from recognizer.data.representations import ApexFlow

    flow = ApexFlow(size=28, render_size=112).synthetic_frames()
    assert (flow.mode, flow.num_frames, flow.size, flow.flow_size) == ("onset_apex", 2, 112, 28)
    clip = KeyFrameClip(num_frames=8, size=64, sampling="adaptive").synthetic_frames()
    assert (clip.mode, clip.num_frames, clip.sampling, clip.size, clip.flow_size) == (
        "keyframes", 8, "adaptive", 64, None,
    )  # fmt: skip
    remedy = _remedy("synth_only", tmp_path).for_representation(ApexFlow(render_size=96))
    recipe = remedy.data.recipe()
    assert (recipe.frames.mode, recipe.size) == ("onset_apex", 96)


def test_a_store_made_outside_a_remedy_has_provenance_only_where_provable(target, tmp_path):
    """``mesynth generate`` writes no provenance.json: built-in portraits with templates each
    clip records are provably subject-free; a face of unknown origin leaves provenance unknown,
    which the checker refuses on a fold of real subjects."""
    import shutil

    samples, _ = target
    store = Path(samples[0].array_path or samples[0].frames[0]).parents[1]
    assert not (store / "provenance.json").exists()
    portraits = load_synthetic(store, NAMES).samples
    assert all(s.extra["identity_subject"] == "" for s in portraits)
    assert all(s.extra["template_subjects"] == "" for s in portraits)

    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    meta = json.loads((copy / "meta.json").read_text())
    for identity in meta["config"]["identities"]:
        identity["source"] = f"/faces/{identity['name']}.png"
    (copy / "meta.json").write_text(json.dumps(meta))
    unknown = load_synthetic(copy, NAMES).samples
    assert all("identity_subject" not in s.extra for s in unknown)
    person = samples[0].extra["person"]
    others = [s for s in unknown if s.extra["person"] != person][:2]
    assert {v.kind for v in find_leaks(others, [samples[0]])} == {"provenance"}
    # a clip of the test person's own face is a person leak as well
    same = [s for s in unknown if s.extra["person"] == person][:1]
    assert {v.kind for v in find_leaks(same, [samples[0]])} == {"provenance", "person"}
