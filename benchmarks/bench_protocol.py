"""A LOSO protocol of STSTNet: the library's ``run_protocol`` against a plain PyTorch loop.

Both sides do the same work on the same data: a fake MEGC2019-like apex-flow composite (442
random ``28×28×3`` images with a class signal, 68 subjects, classes 250/109/83), one STSTNet per
LOSO fold, Adam (lr 5e-4, no weight decay), batch 256, a fixed number of epochs, random
left-right flips (u negated), then prediction of the test subject. The library side is
``run_protocol`` with its defaults (``ClipDataset`` + ``ApexFlow``, ``data_path=auto``,
``threads=auto``, checkpoints at fold end, a line per fold); the plain loop indexes one tensor
with ``torch.randperm`` at one intra-op thread (``OMP_NUM_THREADS=1``, the best setting for it
on a small shared CPU). Imports and the first optimizer's one-off set-up happen before the
timers start on both sides. The optional side ``plain-malloc`` is the plain loop with glibc told to
keep freed memory (``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``, the settings the
library applies with ``mallopt``), to show how much of a difference is the allocator. The
side ``batched`` is the library side with ``batched_folds=true``: the folds train together as
one model over stacked weights (:mod:`recognizer.training.batched`), same data, seeds and settings.

Each (epochs, folds) setting runs each side in a fresh process, rotating which goes first from
one setting to the next so the load of a shared machine falls on every side. With fewer
folds than subjects, the folds test every k-th subject (the same ones on both sides). The table
gives wall times, their ratio and the pooled UF1/UAR with a bootstrap standard deviation
(1000 resamples of the test samples).

    PYTHONPATH=. python benchmarks/bench_protocol.py                    # 10:68,100:12
    PYTHONPATH=. python benchmarks/bench_protocol.py --settings 2:3     # a quick check
    PYTHONPATH=. python benchmarks/bench_protocol.py --sides library,plain,plain-malloc
    PYTHONPATH=. python benchmarks/bench_protocol.py --sides library,batched,plain
    PYTHONPATH=. python benchmarks/bench_protocol.py --seeds 5 --settings 10:68  # seeds batched

``--seeds N`` times the ``batched`` side with 1 seed against ``N`` seeds trained together
(``run_protocol_seeds``, side ``batched-seeds``: one stream per (fold, seed), each seed with
its own initial weights, sampler order and flips), fresh processes, alternating order.

``--pretrain`` times synthetic pretraining against ``remedy=none`` (the ``batched`` side):
side ``pretrain`` is ``remedy=synth_pretrain`` with ``pretrain_groups=5`` and
``batched_folds=auto`` (as ``trainer=ststnet`` sets it), side ``pretrain-fold`` the same with
``pretrain_groups=fold`` (one pretraining per fold, fine-tuning still batched). The synthetic
pool is given in memory (:class:`MemoryPool`, no rendering: 5 clips per subject and class,
each animating its subject's face, so every fold or group leaves out the clips of its
subjects); each fold pretrains on ``n_per_class=200`` clips per class (600) for a tenth of the
fine-tuning epochs (at least 1), the ratio of the issue's run (100 and 10). Prints each side's
wall time and its ratio to ``batched``.

    PYTHONPATH=. python benchmarks/bench_protocol.py --pretrain --settings 10:68
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SUBJECTS = 68
CLASS_COUNTS = (250, 109, 83)
BATCH = 256
LR = 5e-4
#: environment of each side's process (the allocator settings match recognizer.runtime)
SIDE_ENV = {
    "library": {},
    "batched": {},
    "oversample": {},
    "batched-seeds": {},
    "pretrain": {},
    "pretrain-fold": {},
    "plain": {"OMP_NUM_THREADS": "1"},
    "plain-oversample": {"OMP_NUM_THREADS": "1"},
    "plain-malloc": {
        "OMP_NUM_THREADS": "1",
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(128 << 20),
    },
}


def composite(seed: int = 0) -> tuple[list, list[int], dict[str, np.ndarray]]:
    """``(samples, labels, {uid: (28, 28, 3) uint8 image})`` of the fake composite.

    Every image is noise plus a per-subject brightness; class ``c`` adds a bright 8×8 patch to
    channel ``c`` at a class-specific place, weak enough that LOSO is not trivial.
    """
    from recognizer.data.samples import Sample

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(3), CLASS_COUNTS)).tolist()
    extra = rng.multinomial(len(labels) - SUBJECTS, rng.dirichlet(np.full(SUBJECTS, 2.0)))
    subject_of = rng.permutation(np.repeat(np.arange(SUBJECTS), 1 + extra))
    offsets = rng.normal(0, 20, SUBJECTS)
    samples, images = [], {}
    for i, (label, subject) in enumerate(zip(labels, subject_of)):
        sample = Sample("fake", f"fake/s{subject:02d}", f"c{i:03d}", (), (), 0, 0, 0, 30.0, "e")
        image = rng.normal(128 + offsets[subject], 40, (28, 28, 3))
        top, left = 4 + 8 * label, 4 + 6 * label
        image[top : top + 8, left : left + 8, label] += 25
        images[sample.uid] = np.clip(image, 0, 255).astype(np.uint8)
        samples.append(sample)
    return samples, labels, images


class ImageSource:
    """The composite's images held in memory: each sample is one frame."""

    def __init__(self, images: dict[str, np.ndarray]) -> None:
        self.images = images

    def frame_numbers(self, sample) -> tuple[int, ...]:
        return (0,)

    def read(self, sample, numbers: Sequence[int]) -> np.ndarray:
        return self.images[sample.uid][None]


def protocol(folds: int):
    """LOSO over the composite's subjects, keeping ``folds`` folds (every k-th subject)."""
    from recognizer.protocols import LosoProtocol

    class SubsetLoso(LosoProtocol):
        def _test_groups(self, subjects, labels, datasets):
            groups = super()._test_groups(subjects, labels, datasets)
            step = len(groups) / folds
            return [groups[int(i * step)] for i in range(folds)]

    return SubsetLoso()


def warm_up() -> None:
    """Pay the one-off costs outside the timers: the first optimizer imports torch._dynamo."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


@dataclass(frozen=True)
class Recipe:
    """The training recipe both sides follow: Adam with L2 ``weight_decay``, constant ``lr``,
    ``batch`` samples per step, ``seed`` for initial weights, batch order and flips."""

    batch: int = BATCH
    lr: float = LR
    weight_decay: float = 0.0
    seed: int = 0


#: class names of the composite's labels (the synthetic clips' emotions)
CLASS_NAMES = ("negative", "positive", "surprise")
#: synthetic clips per (subject, class) of the in-memory pool
POOL_CLIPS = 5


def synthetic_pool(images: dict[str, np.ndarray], seed: int = 1) -> tuple[list, list[int]]:
    """``(samples, labels)`` of an in-memory synthetic pool, their images added to ``images``:
    per composite subject and class, :data:`POOL_CLIPS` clips animating that subject's face
    (provenance ``identity_subject``), with the composite's class signal on fresh noise."""
    from recognizer.data.samples import Sample
    from recognizer.protocols.leakage import provenance

    rng = np.random.default_rng(seed)
    samples, labels = [], []
    for subject in range(SUBJECTS):
        owner = f"fake/s{subject:02d}"
        extra = provenance(identity_subject=owner, identity_person=owner)
        for label, name in enumerate(CLASS_NAMES):
            for copy in range(POOL_CLIPS):
                sample = Sample("mesynth", f"mesynth/face{subject:02d}", f"syn{label}{copy}",
                                (), (), 0, 0, 0, 30.0, name, source="synthetic",
                                identity=f"face{subject:02d}", extra=extra)  # fmt: skip
                image = rng.normal(128, 40, (28, 28, 3))
                top, left = 4 + 8 * label, 4 + 6 * label
                image[top : top + 8, left : left + 8, label] += 25
                images[sample.uid] = np.clip(image, 0, 255).astype(np.uint8)
                samples.append(sample)
                labels.append(label)
    return samples, labels


def pretrain_remedy(images: dict[str, np.ndarray], groups: int | str, epochs: int):
    """``synth_pretrain`` over :func:`synthetic_pool` (200 clips per class, ``epochs`` // 10
    pretraining epochs, at least 1)."""
    from dataclasses import dataclass

    from recognizer.remedies import Remedy
    from recognizer.remedies.synthetic import SyntheticData, SyntheticSet

    pool = synthetic_pool(images)

    @dataclass(frozen=True)
    class MemoryPool(SyntheticData):
        """The synthetic remedy with its pool in memory instead of rendered."""

        def load_pool(self, context):
            return SyntheticSet(Path("memory"), "memory", *pool, made=False), "given"

    data = MemoryPool(mode="pretrain", n_per_class=200, pretrain_epochs=max(1, epochs // 10),
                      pretrain_groups=groups)  # fmt: skip
    return Remedy("synth_pretrain", data=data)


def run_library(epochs: int, folds: int, recipe: Recipe, side: str = "library") -> dict:
    """``run_protocol`` with the library's defaults; ``side`` ``batched`` trains the folds
    together, ``oversample`` uses ``remedy=oversample`` with ``batched_folds=auto`` (the
    STSTNet trainer config's setting), ``pretrain`` and ``pretrain-fold`` use
    :func:`pretrain_remedy` with 5 groups and per fold (``batched_folds=auto``)."""
    from recognizer.data.representations import ApexFlow
    from recognizer.data.torch_dataset import ClipDataset
    from recognizer.experiments.runner import run_protocol
    from recognizer.models import create_model
    from recognizer.runtime import resolve_threads
    from recognizer.training.trainer import TrainerConfig

    samples, labels, images = composite()
    source, representation = ImageSource(images), ApexFlow()
    batched = {"library": False, "batched": True}.get(side, "auto")
    config = TrainerConfig(
        epochs=epochs, batch_size=recipe.batch, optimizer="adam", lr=recipe.lr,
        weight_decay=recipe.weight_decay, scheduler="none", device="cpu", progress=False,
        batched_folds=batched, seed=recipe.seed,
    )  # fmt: skip

    def factory(subset, subset_labels, train):
        return ClipDataset(
            subset, subset_labels, representation, train=train, source=source, seed=recipe.seed
        )

    remedy = "oversample" if side == "oversample" else "none"
    if side.startswith("pretrain"):
        remedy = pretrain_remedy(images, "fold" if side == "pretrain-fold" else 5, epochs)
    warm_up()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_protocol(
            samples, labels, protocol=protocol(folds), dataset_factory=factory,
            model_factory=lambda k: create_model("ststnet", k), remedy=remedy,
            trainer_config=config, out_dir=out, class_names=CLASS_NAMES,
        )  # fmt: skip
        wall = time.perf_counter() - start
    table = result.predictions
    return {
        "wall": wall,
        "index": table["index"].tolist(),
        "subject": table["subject"].tolist(),
        "true": table["true"].tolist(),
        "predicted": table["predicted"].tolist(),
        "threads": resolve_threads("auto").threads,
    }


def oversampled(train: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One epoch's indices, written without the library: every index of ``train`` once plus,
    for each smaller class, duplicates drawn with replacement up to the majority count, then
    shuffled (imbalanced-learn's ``RandomOverSampler``, redrawn each epoch)."""
    import torch

    classes = [train[y[train] == c] for c in torch.unique(y[train])]
    majority = max(len(members) for members in classes)
    extra = [
        members[torch.randint(len(members), (majority - len(members),))] for members in classes
    ]
    epoch = torch.cat([train, *extra])
    return epoch[torch.randperm(len(epoch))]


def run_plain(epochs: int, folds: int, recipe: Recipe, oversample: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    from recognizer.models import create_model

    torch.set_num_threads(1)
    samples, labels, images = composite()
    split = protocol(folds).split
    warm_up()
    start = time.perf_counter()
    x = torch.stack(
        [torch.from_numpy(images[s.uid]).permute(2, 0, 1).float() / 255 for s in samples]
    )
    mirrored = x.flip(-1)
    mirrored[:, 0] = 1 - mirrored[:, 0]
    y = torch.tensor(labels)
    subjects = [s.subject for s in samples]
    indices, tested, true, predicted = [], [], [], []
    for fold in split(subjects, labels):
        test = torch.tensor([i for i, s in enumerate(subjects) if s in fold.test_subjects])
        train = torch.tensor([i for i, s in enumerate(subjects) if s in fold.train_subjects])
        torch.manual_seed(recipe.seed * 100_003 + fold.index)
        model = create_model("ststnet", 3)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
        )
        model.train()
        for _ in range(epochs):
            order = oversampled(train, y) if oversample else train[torch.randperm(len(train))]
            for first in range(0, len(order), recipe.batch):
                idx = order[first : first + recipe.batch]
                if len(idx) == 1:  # BatchNorm needs two samples
                    continue
                flip = (torch.rand(len(idx)) < 0.5).view(-1, 1, 1, 1)
                batch = torch.where(flip, mirrored[idx], x[idx])
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(batch), y[idx]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            predicted += model(x[test]).argmax(1).tolist()
        true += y[test].tolist()
        tested += [subjects[i] for i in test.tolist()]
        indices += test.tolist()
    return {
        "wall": time.perf_counter() - start,
        "index": indices,
        "subject": tested,
        "true": true,
        "predicted": predicted,
        "threads": 1,
    }


def run_library_seeds(epochs: int, folds: int, seeds: int) -> dict:
    """The ``batched`` side with ``seeds`` seeds (0, 1, ...) trained together
    (``run_protocol_seeds``): the wall time and each seed's pooled predictions."""
    from recognizer.data.representations import ApexFlow
    from recognizer.data.torch_dataset import ClipDataset
    from recognizer.experiments.runner import run_protocol_seeds
    from recognizer.models import create_model
    from recognizer.runtime import resolve_threads
    from recognizer.training.trainer import TrainerConfig

    samples, labels, images = composite()
    source, representation = ImageSource(images), ApexFlow()
    config = TrainerConfig(
        epochs=epochs, batch_size=BATCH, optimizer="adam", lr=LR, weight_decay=0.0,
        scheduler="none", device="cpu", progress=False, batched_folds=True,
        seeds=list(range(seeds)),
    )  # fmt: skip

    def factory_for(seed):  # the flips of seed s's run, as `mer train` seeds them
        def factory(subset, subset_labels, train):
            return ClipDataset(subset, subset_labels, representation, train=train, seed=seed,
                               source=source)  # fmt: skip

        return factory

    warm_up()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_protocol_seeds(
            samples, labels, protocol=protocol(folds), dataset_factory_for_seed=factory_for,
            model_factory=lambda k: create_model("ststnet", k), remedy="none",
            trainer_config=config, out_dir=out,
        )  # fmt: skip
        wall = time.perf_counter() - start
    first = result.results[result.seeds[0]].predictions  # so it also fits the --sides table
    return {
        "wall": wall,
        "uf1": result.pooled()["uf1"].tolist(),
        "true": first["true"].tolist(),
        "predicted": first["predicted"].tolist(),
        "threads": resolve_threads("auto").threads,
    }


def seeds_main(settings: str, seeds: int, repeats: int) -> None:
    """``--seeds N``: one batched run of 1 seed against one of ``N`` seeds per setting, each in
    a fresh process, alternating which goes first, ``repeats`` times; prints the wall times
    (median over repeats) and their ratio."""
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    for n, setting in enumerate(settings.split(",")):
        epochs, folds = (int(v) for v in setting.split(":"))
        walls: dict[int, list[float]] = {1: [], seeds: []}
        uf1s: dict[int, list[float]] = {}
        for repeat in range(repeats):
            order = [1, seeds] if (n + repeat) % 2 == 0 else [seeds, 1]
            for count in order:
                with tempfile.TemporaryDirectory() as tmp:
                    out = Path(tmp) / "result.json"
                    command = [sys.executable, __file__, "--child", "batched-seeds", str(epochs),
                               str(folds), json.dumps(asdict(Recipe())), str(out)]  # fmt: skip
                    env = {**os.environ, "BENCH_SEEDS": str(count)}
                    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
                    result = json.loads(out.read_text())
                walls[count].append(result["wall"])
                uf1s[count] = result["uf1"]
                load = os.getloadavg()[0]
                print(f"done: {epochs} epochs, {folds} folds, {count} seeds: "
                      f"{result['wall']:.1f} s (load {load:.2f})", flush=True)  # fmt: skip
        one, many = (float(np.median(walls[c])) for c in (1, seeds))
        rows.append((epochs, folds, one, many, walls, uf1s[seeds]))
    print(f"load average after: {os.getloadavg()}")
    print()
    print(f"| epochs | folds | 1 seed: wall s | {seeds} seeds: wall s | × 1 seed | "
          f"{seeds}-seed pooled UF1 mean ± sd | runs (s) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---|---|")
    for epochs, folds, one, many, walls, uf1 in rows:
        runs = "; ".join(f"{c}: " + ", ".join(f"{w:.1f}" for w in walls[c]) for c in walls)
        sd = np.std(uf1, ddof=1) if len(uf1) > 1 else 0.0
        print(f"| {epochs} | {folds} | {one:.1f} | {many:.1f} | {many / one:.2f} | "
              f"{np.mean(uf1):.3f} ± {sd:.3f} | {runs} |")  # fmt: skip


def pretrain_main(settings: str, sides: Sequence[str]) -> None:
    """``--pretrain``: per setting, the ``batched`` side (``remedy=none``) and the pretraining
    ``sides``, each in a fresh process, rotating which goes first; prints wall times and their
    ratio to ``batched``."""
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    every = ["batched", *sides]
    for n, setting in enumerate(settings.split(",")):
        epochs, folds = (int(v) for v in setting.split(":"))
        rotated = every[n % len(every) :] + every[: n % len(every)]
        results = {}
        for side in rotated:
            results[side] = spawn(side, epochs, folds, Recipe())
            print(f"done: {epochs} epochs, {folds} folds, {side}: {results[side]['wall']:.1f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)  # fmt: skip
        base = results["batched"]["wall"]
        for side in every:
            r = results[side]
            rows.append((epochs, folds, side, r["wall"], r["wall"] / base,
                         pooled(r["true"], r["predicted"])))  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    print()
    print("| epochs | folds | side | pretraining epochs | wall s | × none (batched) | "
          "pooled UF1 ± sd | UAR |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---|---:|")
    for epochs, folds, side, wall, ratio, m in rows:
        pre = "–" if side == "batched" else str(max(1, epochs // 10))
        print(f"| {epochs} | {folds} | {side} | {pre} | {wall:.1f} | {ratio:.2f} | "
              f"{m['uf1']:.3f} ± {m['uf1_sd']:.3f} | {m['uar']:.3f} |")  # fmt: skip


def pooled(true: list[int], predicted: list[int], resamples: int = 1000) -> dict[str, float]:
    """Pooled UF1 and UAR, and the bootstrap standard deviation of the UF1."""
    from recognizer.evaluation.metrics import uar, uf1

    t, p = np.asarray(true), np.asarray(predicted)
    rng = np.random.default_rng(0)
    draws = [uf1(t[i], p[i]) for i in rng.integers(0, len(t), (resamples, len(t)))]
    return {"uf1": uf1(t, p), "uf1_sd": float(np.std(draws)), "uar": uar(t, p)}


def child(side: str, epochs: int, folds: int, recipe: Recipe, out: Path) -> None:
    if side.startswith("plain"):
        result = run_plain(epochs, folds, recipe, oversample=side == "plain-oversample")
    elif side == "batched-seeds":
        result = run_library_seeds(epochs, folds, int(os.environ.get("BENCH_SEEDS", "5")))
    else:
        result = run_library(epochs, folds, recipe, side)
    out.write_text(json.dumps(result))


def spawn(side: str, epochs: int, folds: int, recipe: Recipe) -> dict:
    env = {**os.environ, **SIDE_ENV[side]}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, __file__, "--child", side, str(epochs), str(folds),
                   json.dumps(asdict(recipe)), str(out)]  # fmt: skip
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="10:68,100:12", help="epochs:folds,...")
    parser.add_argument("--sides", default="library,plain", help=f"of {sorted(SIDE_ENV)}")
    parser.add_argument(
        "--runs", type=int, default=1, help="runs per side, with seeds 0..n-1 (paired intervals)"
    )
    parser.add_argument("--batch", type=int, default=BATCH, help="samples per step")
    parser.add_argument("--lr", type=float, default=LR, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="Adam L2 decay")
    parser.add_argument(
        "--seeds", type=int, help="time a batched run of 1 seed against N seeds instead"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per side with --seeds")
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help="time synth_pretrain (pretrain, pretrain-fold) against remedy=none (batched)",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, epochs, folds, recipe, out = args.child
        child(side, int(epochs), int(folds), Recipe(**json.loads(recipe)), Path(out))
        return
    if args.seeds:
        seeds_main(args.settings, args.seeds, args.repeats)
        return
    if args.pretrain:
        chosen = [s for s in args.sides.split(",") if s.startswith("pretrain")]
        pretrain_main(args.settings, chosen or ["pretrain", "pretrain-fold"])
        return
    sides = args.sides.split(",")
    plain = next((side for side in sides if side.startswith("plain")), None)
    if plain is None or set(sides) - set(SIDE_ENV):
        parser.error(f"--sides takes names of {sorted(SIDE_ENV)} and must include a plain one")
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows, runs = [], {}
    for n, setting in enumerate(args.settings.split(",")):
        epochs, folds = (int(v) for v in setting.split(":"))
        for seed in range(args.runs):
            recipe = Recipe(args.batch, args.lr, args.weight_decay, seed)
            turn = n * args.runs + seed
            rotated = sides[turn % len(sides) :] + sides[: turn % len(sides)]
            results = {side: spawn(side, epochs, folds, recipe) for side in rotated}
            for side in sides:
                r = results[side]
                runs.setdefault((epochs, folds, side), []).append(r)
                rows.append(
                    (epochs, folds, side, seed, r["threads"], r["wall"], r["wall"] / folds,
                     r["wall"] / results[plain]["wall"], pooled(r["true"], r["predicted"]))
                )  # fmt: skip
                print(f"done: {epochs} epochs, {folds} folds, {side}, seed {seed}: "
                      f"{r['wall']:.1f} s", flush=True)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    print()
    print("| epochs | folds | side | seed | threads | wall s | s/fold | × plain | pooled UF1 ± sd |"
          " UAR |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|---:|")
    for epochs, folds, side, seed, threads, wall, per_fold, ratio, m in rows:
        print(
            f"| {epochs} | {folds} | {side} | {seed} | {threads} | {wall:.1f} | {per_fold:.2f} | "
            f"{ratio:.2f} | {m['uf1']:.3f} ± {m['uf1_sd']:.3f} | {m['uar']:.3f} |"
        )
    print()
    print("| epochs | folds | side | seeds | UF1 mean ± sd | UAR mean ± sd |")
    print("|---:|---:|---|---:|---|---|")
    for (epochs, folds, side), group in runs.items():
        m = [pooled(r["true"], r["predicted"], resamples=1) for r in group]
        f1s, uars = [v["uf1"] for v in m], [v["uar"] for v in m]
        print(f"| {epochs} | {folds} | {side} | {len(group)} | {np.mean(f1s):.3f} ± "
              f"{np.std(f1s):.3f} | {np.mean(uars):.3f} ± {np.std(uars):.3f} |")  # fmt: skip
    agreement(runs)


#: (library side, the plain side written independently that does the same work)
PAIRS = (("library", "plain"), ("batched", "plain"), ("oversample", "plain-oversample"))


def agreement(runs: dict[tuple[int, int, str], list[dict]]) -> None:
    """Library minus plain for each pair of sides run: the difference of the pooled metrics
    (mean over the runs' seeds) with a 95 % bootstrap interval over test subjects and seeds
    (:func:`recognizer.evaluation.compare.compare_arms`); "no evidence of a difference" is
    agreement."""
    import pandas as pd

    from recognizer.evaluation.compare import Arm, compare_arms

    columns = ("index", "subject", "true", "predicted")
    rows = []
    for (epochs, folds, side), group in runs.items():
        for library, plain in PAIRS:
            other = runs.get((epochs, folds, plain))
            if side != library or other is None or "index" not in group[0]:
                continue
            arms = [
                Arm(name, {seed: pd.DataFrame({c: r[c] for c in columns})
                           for seed, r in enumerate(sides)})
                for name, sides in ((plain, other), (library, group))
            ]  # fmt: skip
            comparison = compare_arms(arms, plain)
            for _, d in comparison.differences.iterrows():
                if d["metric"] != "ACC":
                    rows.append((epochs, folds, library, plain, d))
    if not rows:
        return
    print()
    print("| epochs | folds | library side − plain side | metric | difference | 95 % interval |"
          " seeds | reading |")  # fmt: skip
    print("|---:|---:|---|---|---:|---|---:|---|")
    for epochs, folds, library, plain, d in rows:
        print(f"| {epochs} | {folds} | {library} − {plain} | {d['metric']} | {d['diff']:+.3f} | "
              f"[{d['lo']:+.3f}, {d['hi']:+.3f}] | {d['seeds']} | {d['verdict']} |")  # fmt: skip


if __name__ == "__main__":
    main()
