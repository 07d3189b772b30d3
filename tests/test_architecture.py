"""The layout rules of docs/design.md, checked on the source: data flows one way, no cycles.

Imports are read with :mod:`ast`, including those inside functions, so a cycle hidden in a
function body counts. Importing ``a.b.c`` runs the package ``a.b`` first, so that package is a
dependency too, unless it is an ancestor of the importing module (Python has it already).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mesynth", "recognizer")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Every absolute module name that ``path`` imports (``from x import y`` may name ``x.y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it depends on (parent packages included, ancestors not)."""
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if path.name == "__init__.py":
            ancestors.add(name)
        deps: set[str] = set()
        for target in imported_names(path, name):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix not in ancestors and prefix != name:
                    deps.add(prefix)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None. Iterative DFS with colours."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return [*path[path.index(child) :], child]
            elif colour[child] == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_find_cycle_detects_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_relative_imports_resolve_to_absolute_names(tmp_path):
    module = tmp_path / "x.py"
    module.write_text("from . import sibling\nfrom .other import name\nfrom ..up import z\n")
    assert imported_names(module, "pkg.sub.x") >= {"pkg.sub.sibling", "pkg.sub.other", "pkg.up"}


def test_no_import_cycles_including_imports_inside_functions():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_mesynth_never_imports_recognizer():
    graph = import_graph()
    offenders = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if m.startswith("mesynth")
        for d in deps
        if d.startswith("recognizer")
    )
    assert not offenders, offenders


def test_only_cli_modules_import_hydra():
    modules = all_modules()
    offenders = sorted(
        name
        for name, path in modules.items()
        if any(t.split(".")[0] == "hydra" for t in imported_names(path, name))
        and ".cli" not in f".{name}"
    )
    assert not offenders, f"Hydra imported outside the command-line edge: {offenders}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module ``start`` depends on, directly or through others (itself only via a cycle)."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    return seen


def packages() -> list[str]:
    return sorted(name for name, path in all_modules().items() if path.name == "__init__.py")


def test_reachable_finds_a_planted_way_back_to_a_package():
    graph = {"p": {"p.a"}, "p.a": {"q"}, "q": {"p"}, "r": {"p"}}
    assert "p" in reachable(graph, "p") and "r" not in reachable(graph, "p")


@pytest.mark.parametrize("package", packages())
def test_a_package_init_imports_only_its_own_modules(package):
    """An ``__init__`` that re-exports only its own modules cannot pull another stage in."""
    foreign = sorted(
        d for d in import_graph()[package] if d != package and not d.startswith(f"{package}.")
    )
    assert not foreign, f"{package}/__init__.py imports {foreign}"


@pytest.mark.parametrize("package", packages())
def test_no_import_cycle_passes_through_a_package_init(package):
    """No module the package's ``__init__`` imports leads back to the package (which would run
    the ``__init__`` half done)."""
    graph = import_graph()
    back = sorted(d for d in graph[package] if package in reachable(graph, d))
    assert package not in reachable(graph, package), f"{package} is imported back via {back}"


#: ``.py`` files directly in each top-level package, ``__init__.py`` not counted.
LOOSE_MODULE_LIMIT = {"mesynth": 8, "recognizer": 8}


@pytest.mark.parametrize("package", PACKAGES)
def test_top_level_modules_at_most_eight(package):
    """Loose modules are few; the rest lives in sub-packages named after what a run does."""
    top = sorted(p.name for p in (ROOT / package).glob("*.py") if p.name != "__init__.py")
    assert len(top) <= LOOSE_MODULE_LIMIT[package], top


@pytest.mark.parametrize(
    ("package", "stages"),
    [
        ("mesynth", {"labels", "face", "templates", "motion", "render", "generation", "cli"}),
        (
            "recognizer",
            {
                "datasets", "data", "models", "remedies", "protocols", "training",
                "experiments", "evaluation", "inference", "studies", "cli",
            },
        ),
    ],
)  # fmt: skip
def test_the_stages_are_sub_packages(package, stages):
    found = {p.name for p in (ROOT / package).iterdir() if (p / "__init__.py").is_file()}
    assert stages <= found, sorted(stages - found)
