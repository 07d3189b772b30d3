"""``torchrun --nproc_per_node=2 -m mesynth.cli generate``: two real processes shard one store.

The merged store equals the store of one process byte for byte (every clip, frame image,
parameter file, ``manifest.csv`` and ``meta.json``); the sharded run only adds its bookkeeping
(``manifest.rank<r>.csv``, ``shard<r>of2.done``). A rank SIGKILLed mid-generation loses only
its unfinished clip: the same command again resumes it and the store is again byte-identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mesynth.cli.main import main as mesynth_main
from tests.distributed import finish, run, start, torchrun

pytestmark = pytest.mark.slow

#: 7 classes x 2 clips of 16 px, 4 key-frames, stored as frames and npy
SETTINGS = [
    "recipe.size=16",
    "recipe.frames.num_frames=4",
    "recipe/effects=full",
    "mesynth.plan.n_per_class=2",
    "format=[frames,npy]",
    "progress=false",
]
BOOKKEEPING = re.compile(r"^(manifest\.rank\d+\.csv|shard\d+of\d+\.done)$")

#: the command under torchrun, with rank 1 SIGKILLed as it is about to store its 4th clip
KILL_RANK1 = """
import os, signal, sys
from mesynth.cli.main import main
from mesynth.generation.store import ClipStore

stored = []
real_write = ClipStore.write
def write(self, *args, **kwargs):
    if self.rank == 1 and len(stored) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    stored.append(1)
    return real_write(self, *args, **kwargs)
ClipStore.write = write
sys.exit(main(sys.argv[1:]))
"""


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _generate(out: Path) -> list[str]:
    return ["generate", *SETTINGS, f"paths.root_dir={out.parent}", f"out_dir={out}"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("gen") / "single"
    assert mesynth_main(_generate(out)) == 0
    return _files(out)


def test_two_shards_merge_into_the_single_process_store(single, tmp_path) -> None:
    out = tmp_path / "sharded"
    run(torchrun(["-m", "mesynth.cli", *_generate(out)]))
    files = _files(out)
    bookkeeping = sorted(k for k in files if BOOKKEEPING.match(k))
    assert bookkeeping == [
        "manifest.rank0.csv", "manifest.rank1.csv", "shard0of2.done", "shard1of2.done",
    ]  # fmt: skip
    merged = {k: v for k, v in files.items() if k not in bookkeeping}
    assert sorted(merged) == sorted(single)
    assert len([k for k in single if k.endswith(".npy")]) == 14
    for name, data in single.items():
        assert merged[name] == data, name


def test_a_killed_rank_resumes_and_the_store_is_byte_identical(single, tmp_path) -> None:
    out = tmp_path / "killed"
    script = tmp_path / "generate_kill_rank1.py"
    script.write_text(KILL_RANK1)
    killed = start(torchrun([str(script), *_generate(out)]))
    output = finish(killed)
    assert killed.returncode != 0 and "SIGKILL" in output, output[-3000:]  # rank 1 was lost
    assert not (out / "manifest.csv").exists()  # nothing merged yet
    rank1 = (out / "manifest.rank1.csv").read_text().splitlines()
    assert len(rank1) == 1 + 3  # header + the 3 clips stored before the kill

    resumed = run(torchrun(["-m", "mesynth.cli", *_generate(out)]))
    # rank 1 skips its 3 stored clips and renders its other 4; rank 0 (7 clips) may have
    # finished before torchrun stopped it, or be resumed too
    assert "clips: 4 written, 3 already there, 7 planned" in resumed, resumed
    files = {k: v for k, v in _files(out).items() if not BOOKKEEPING.match(k)}
    assert sorted(files) == sorted(single)
    for name, data in single.items():
        assert files[name] == data, name
