"""Every command block of README.md and docs/ runs as written (tests/doc_blocks.py).

Blocks marked ``<!-- skip: <reason> -->`` (a licensed dataset, a GPU, a cluster, the suite
itself) are reported as skipped with that reason. Run one page with
``pytest tests/test_docs.py -k quickstart``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

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


def test_admonitions_render_as_notes_with_the_sites_extensions() -> None:
    markdown = pytest.importorskip("markdown")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = [e if isinstance(e, str) else next(iter(e)) for e in config["markdown_extensions"]]
    pages = [p for p in (ROOT / "docs").rglob("*.md") if re.search(r"^!!! ", p.read_text(), re.M)]
    assert pages  # docs/mesynth/generate.md's "Convention" note at least
    for page in pages:
        html = markdown.markdown(page.read_text(), extensions=["fenced_code", "tables", *listed])
        assert "!!! " not in html, page
        assert '<div class="admonition note">' in html, page
