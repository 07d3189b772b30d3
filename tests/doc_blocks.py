"""The command blocks of README.md and docs/: found, and run as a reader would run them.

A fenced block tagged ``bash`` (or ``sh``/``shell``) runs with ``bash -e -o pipefail``; one
tagged ``python`` runs with ``exec`` in one namespace per page. Other blocks (``text``, ``json``,
untagged) are output or layouts, never run. Every page gets its own working folder: a copy of
the repository made of links to its top-level entries (so ``docs/...`` and ``benchmarks/...``
resolve, while outputs land in the copy) and ``.venv/bin/`` with ``mesynth``, ``mer`` and
``python`` that run this checkout with the interpreter running the tests; ``.venv/bin`` is
first on ``PATH``, so ``mesynth`` works as well as ``.venv/bin/mesynth``. The blocks of a page
run in order in that folder: a later block may use what an earlier one wrote.

A block that cannot run in CI (a licensed dataset, a GPU, a cluster, the suite itself) carries
a marker on the line before its fence, with the reason::

    <!-- skip: needs the licensed CASME II release -->
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: block languages that are run, and how.
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
PYTHON_LANGUAGES = frozenset({"python", "py"})
#: top-level entries of the repository that the copy does not link (outputs of earlier runs,
#: the environment, version control).
NOT_LINKED = frozenset(
    {".git", ".venv", "outputs", ".cache", "site", "demo_out", "study_out", ".pytest_cache"}
)

#: shell commands a block may only show, never run here: they install into the environment the
#: tests run in (``make`` targets create or update ``.venv``) or run the suite itself.
_UNSAFE = re.compile(
    r"(^|[;&|(]\s*|\s)(make\s|pip\s+install|scripts/setup_venv\.sh|git\s+clone|pytest\b)",
    re.MULTILINE,
)
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*skip\s*:(?P<reason>.*?)-->\s*$")


class DocBlockError(ValueError):
    """A page's blocks are malformed: an unclosed fence, a skip marker without a reason or
    before a block that is never run."""


@dataclass(frozen=True)
class DocBlock:
    """One fenced block of a Markdown page.

    Attributes:
        page: the page, relative to the repository root (``docs/quickstart.md``).
        line: 1-based line of the opening fence.
        language: the first word of the fence's info string, lower case (``""`` if none).
        code: the block's text, the fence's indentation removed.
        skip: the reason of a ``<!-- skip: ... -->`` marker right before the fence, or None.
    """

    page: str
    line: int
    language: str
    code: str
    skip: str | None = None

    @property
    def runs(self) -> bool:
        """Whether the block is code that a reader runs (shell or Python)."""
        return self.language in SHELL_LANGUAGES | PYTHON_LANGUAGES

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(text: str, page: str) -> list[DocBlock]:
    """The fenced blocks of one Markdown text, in order.

    Raises:
        DocBlockError: a fence is never closed, a skip marker gives no reason, or a marker
            stands before a block that is not run (or before no block at all).
    """
    lines = text.splitlines()
    blocks: list[DocBlock] = []
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line)
        if found:
            reason = found.group("reason").strip()
            if not reason:
                raise DocBlockError(f"{page}:{i + 1}: a skip marker needs a reason")
            marker = (i + 1, reason)
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip() and marker is not None:
                raise DocBlockError(f"{page}:{marker[0]}: skip marker not followed by a block")
            i += 1
            continue
        indent, mark = fence.group("indent"), fence.group("fence")
        info = fence.group("info").strip().split()
        start, body = i, []
        i += 1
        while i < len(lines) and not _closes(lines[i], mark):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise DocBlockError(f"{page}:{start + 1}: code fence never closed")
        block = DocBlock(
            page=page,
            line=start + 1,
            language=info[0].lower() if info else "",
            code="\n".join(body) + "\n",
            skip=marker[1] if marker else None,
        )
        if block.skip is not None and not block.runs:
            raise DocBlockError(f"{block.name}: skip marker before a block that is never run")
        if block.skip is None and block.language in SHELL_LANGUAGES:
            unsafe = _UNSAFE.search(block.code)
            if unsafe:
                raise DocBlockError(
                    f"{block.name}: runs {unsafe.group(2).strip()!r}, which installs into the "
                    "tests' environment or runs the suite; mark it <!-- skip: <reason> -->"
                )
        blocks.append(block)
        marker = None
        i += 1
    if marker is not None:
        raise DocBlockError(f"{page}:{marker[0]}: skip marker not followed by a block")
    return blocks


def _closes(line: str, mark: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(mark[0] * len(mark)) and not stripped.strip(mark[0])


def doc_pages(root: Path) -> list[Path]:
    """README.md and every page under docs/, in a fixed order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def collect(root: Path) -> list[DocBlock]:
    """Every block of every page (see :func:`doc_pages`) that a reader runs."""
    blocks: list[DocBlock] = []
    for page in doc_pages(root):
        found = parse_blocks(page.read_text(encoding="utf-8"), page.relative_to(root).as_posix())
        blocks += [b for b in found if b.runs]
    return blocks


def make_workspace(root: Path, work: Path) -> Path:
    """``work`` as a copy of the repository at ``root`` (links to its top-level entries) with
    ``.venv/bin/{mesynth,mer,python,python3}`` running this checkout. Returns ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        if entry.name not in NOT_LINKED and not (work / entry.name).exists():
            (work / entry.name).symlink_to(entry)
    bin_dir = work / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    tools = {"mesynth": "mesynth.cli", "mer": "recognizer.cli"}
    for tool, module in tools.items():
        code = f"import sys; from {module} import main; sys.exit(main())"
        _script(bin_dir / tool, f'exec "{sys.executable}" -c "{code}" "$@"')
    for name in ("python", "python3"):
        _script(bin_dir / name, f'exec "{sys.executable}" "$@"')
    return work


def _script(path: Path, line: str) -> None:
    path.write_text(f"#!/usr/bin/env bash\n{line}\n")
    path.chmod(0o755)


def block_env(root: Path, work: Path) -> dict[str, str]:
    """The environment a shell block runs in: this checkout importable, ``.venv/bin`` first on
    ``PATH``, no ``MESYNTH_*`` settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESYNTH_")}
    env["PATH"] = f"{work / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


@dataclass
class PageRun:
    """The state of one page's run: its folder, its Python namespace, how far it got."""

    work: Path
    namespace: dict[str, object] = field(default_factory=dict)
    done: int = 0
    failed: str | None = None


class DocBlockFailedError(AssertionError):
    """A block exited non-zero or raised; the message holds the block and its output."""


def run_shell(block: DocBlock, work: Path, env: dict[str, str], timeout: float) -> str:
    """Run a shell block in ``work``; returns its output.

    Raises:
        DocBlockFailedError: non-zero exit or timeout, with the last lines of its output.
    """
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise DocBlockFailedError(
            f"{block.name}: timed out after {timeout:.0f} s\n{block.code}"
        ) from error
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise DocBlockFailedError(
            f"{block.name}: exit {done.returncode}\n--- block\n{block.code}--- output (end)\n"
            + output[-4000:]
        )
    return output


def run_python(block: DocBlock, work: Path, namespace: dict[str, object]) -> None:
    """Run a Python block in ``work`` with ``namespace`` as its globals.

    Raises:
        DocBlockFailedError: the block raised; the message names it and the error.
    """
    code = compile(block.code, block.name, "exec")
    before = Path.cwd()
    os.chdir(work)
    try:
        exec(code, namespace)
    except Exception as error:
        raise DocBlockFailedError(
            f"{block.name}: {type(error).__name__}: {error}\n{block.code}"
        ) from error
    finally:
        os.chdir(before)


class DocRunner:
    """Runs blocks page by page: running block *k* first runs the page's earlier blocks that
    have not run (skipped ones excepted), so any block can be selected alone."""

    def __init__(self, root: Path, scratch: Path, blocks: list[DocBlock], timeout: float) -> None:
        self.root = root
        self.scratch = scratch
        self.timeout = timeout
        self.pages: dict[str, list[DocBlock]] = {}
        for block in blocks:
            self.pages.setdefault(block.page, []).append(block)
        self.state: dict[str, PageRun] = {}

    def run(self, block: DocBlock) -> None:
        """Run ``block`` after its page's earlier blocks.

        Raises:
            DocBlockFailedError: this block or an earlier one of its page failed.
        """
        page = self.pages[block.page]
        state = self.state.get(block.page)
        if state is None:
            folder = self.scratch / re.sub(r"[^\w.-]", "_", block.page)
            state = self.state[block.page] = PageRun(make_workspace(self.root, folder))
        index = page.index(block)
        while state.done <= index:
            current = page[state.done]
            state.done += 1
            if state.failed is not None:
                raise DocBlockFailedError(f"{block.name}: not run, {state.failed} failed before it")
            if current.skip is not None:
                continue
            try:
                if current.language in SHELL_LANGUAGES:
                    run_shell(current, state.work, block_env(self.root, state.work), self.timeout)
                else:
                    run_python(current, state.work, state.namespace)
            except DocBlockFailedError:
                state.failed = current.name
                raise
