"""The doc-block collector and runner behind tests/test_docs.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_blocks import DocBlockError, DocBlockFailedError, DocRunner, collect, parse_blocks

PAGE = """# A page

<!-- skip: needs the licensed CASME II release -->
```bash
mer prepare data=casme2
```

```text
output, never run
```

1. A step in a list:

    ```python
    x = 41
    ```

~~~bash
echo "$((1 + 1))" > two.txt
~~~

```
untagged
```
"""


def test_blocks_are_found_with_language_indent_and_skip_reason() -> None:
    blocks = parse_blocks(PAGE, "docs/page.md")
    assert [(b.line, b.language) for b in blocks] == [
        (4, "bash"),
        (8, "text"),
        (14, "python"),
        (18, "bash"),
        (22, ""),
    ]
    assert blocks[0].skip == "needs the licensed CASME II release"
    assert blocks[0].code == "mer prepare data=casme2\n"
    assert blocks[2].code == "x = 41\n"  # the list's indentation is removed
    assert [b.skip for b in blocks[1:]] == [None] * 4
    assert [b.runs for b in blocks] == [True, False, True, True, False]
    assert blocks[3].name == "docs/page.md:18"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```bash\necho\n", "docs/p.md:1: code fence never closed"),
        ("<!-- skip: -->\n```bash\necho\n```\n", "docs/p.md:1: a skip marker needs a reason"),
        ("<!-- skip: gpu -->\n```text\nx\n```\n", "docs/p.md:2: skip marker before a block"),
        ("<!-- skip: gpu -->\nsome prose\n```bash\nx\n```\n", "docs/p.md:1: skip marker not"),
        ("text\n<!-- skip: gpu -->\n", "docs/p.md:2: skip marker not followed by a block"),
        ("```bash\nmake demo\n```\n", "docs/p.md:1: runs 'make', which installs"),
        ("```bash\ncd x && pip install -e .\n```\n", "docs/p.md:1: runs 'pip install'"),
        ("```sh\nbash scripts/setup_venv.sh .venv\n```\n", "runs 'scripts/setup_venv.sh'"),
        ("```bash\necho\ngit clone u x\n```\n", "docs/p.md:1: runs 'git clone'"),
    ],
)
def test_malformed_pages_are_named(text: str, message: str) -> None:
    with pytest.raises(DocBlockError, match=message):
        parse_blocks(text, "docs/p.md")


def test_commands_that_install_are_allowed_when_skipped_or_in_prose() -> None:
    text = "<!-- skip: the suite itself -->\n```bash\nmake test\n```\n\n```bash\nmesynth env\n```\n"
    blocks = parse_blocks(text, "docs/p.md")
    assert [b.skip for b in blocks] == ["the suite itself", None]
    parse_blocks("```text\nmake demo\n```\n", "docs/p.md")  # shown, never run


def _repo(tmp_path: Path, pages: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# r\n")
    for name, text in pages.items():
        (root / name).write_text(text)
    return root


def test_a_block_runs_after_its_pages_earlier_blocks_in_a_copy_of_the_repo(tmp_path) -> None:
    page = (
        "```bash\necho one > order.txt\n```\n\n"
        "<!-- skip: needs a GPU -->\n```bash\necho skipped >> order.txt\n```\n\n"
        "```python\nfrom pathlib import Path\n\n"
        "words = Path('order.txt').read_text().split()\n```\n\n"
        "```bash\necho two >> order.txt\ntest -f docs/a.md && command -v mesynth mer python\n```\n"
    )
    root = _repo(tmp_path, {"docs/a.md": page, "docs/b.md": "```bash\ntrue\n```\n"})
    blocks = collect(root)
    assert [b.name for b in blocks] == [
        "docs/a.md:1",
        "docs/a.md:6",
        "docs/a.md:10",
        "docs/a.md:16",
        "docs/b.md:1",
    ]
    runner = DocRunner(root, tmp_path / "scratch", blocks, timeout=60)
    runner.run(blocks[3])  # alone: blocks 0 and 2 run first, the skipped one does not
    work = runner.state["docs/a.md"].work
    assert (work / "order.txt").read_text().split() == ["one", "two"]
    assert runner.state["docs/a.md"].namespace["words"] == ["one"]
    assert not (root / "order.txt").exists()  # outputs stay in the copy
    tools = {p.name for p in (work / ".venv" / "bin").iterdir()}
    assert {"mesynth", "mer", "python"} <= tools
    runner.run(blocks[4])
    assert runner.state["docs/b.md"].work != work


def test_a_failing_block_names_itself_and_fails_the_blocks_after_it(tmp_path) -> None:
    page = "```bash\necho start\nfalse\necho never\n```\n\n```python\nx = 1\n```\n"
    root = _repo(tmp_path, {"docs/a.md": page})
    blocks = collect(root)
    runner = DocRunner(root, tmp_path / "scratch", blocks, timeout=60)
    with pytest.raises(DocBlockFailedError, match=r"docs/a.md:1: exit 1") as failure:
        runner.run(blocks[0])
    assert "start" in str(failure.value) and "never" not in str(failure.value).split("output")[1]
    with pytest.raises(
        DocBlockFailedError, match=r"docs/a.md:7: not run, docs/a.md:1 failed before it"
    ):
        runner.run(blocks[1])


def test_a_raising_python_block_is_a_failure_and_the_cwd_is_restored(tmp_path) -> None:
    root = _repo(tmp_path, {"docs/a.md": "```python\nraise KeyError('k')\n```\n"})
    blocks = collect(root)
    before = Path.cwd()
    with pytest.raises(DocBlockFailedError, match=r"docs/a.md:1: KeyError: 'k'"):
        DocRunner(root, tmp_path / "scratch", blocks, timeout=60).run(blocks[0])
    assert Path.cwd() == before
