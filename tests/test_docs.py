"""Every command block of README.md and docs/ runs as written (tests/doc_blocks.py).

Blocks marked ``<!-- skip: <reason> -->`` (a licensed dataset, a GPU, a cluster, the suite
itself) are reported as skipped with that reason. Run one page with
``pytest tests/test_docs.py -k quickstart``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_blocks import DocBlock, DocRunner, collect

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = collect(ROOT)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> DocRunner:
    return DocRunner(ROOT, tmp_path_factory.mktemp("doc_pages"), BLOCKS, timeout=600)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_doc_block_runs_as_written(block: DocBlock, runner: DocRunner) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.name}: {block.skip}")
    runner.run(block)
