"""The import layering (docs/DESIGN.md, "Layering"): core <- data, extract <- model <- report; gpuslots
stands alone; pipeline (the workflow's config logic) stands on top, imported by rules/, tests/ and bench/
only, and loads no torch; no production package imports tests/ (bench/ may: it is development
tooling); no import cycle between packages or between the modules of one package. Imports
are read with `ast`, so lazy imports inside functions count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "data", "extract", "model", "report", "gpuslots", "pipeline", "bench")
ALLOWED = {  # what each package may import besides itself
    "core": set(),
    "data": {"core"},
    "extract": {"core"},
    "model": {"core", "data", "extract"},
    "report": {"core", "data", "extract", "model"},  # tables and figures over run folders
    "gpuslots": set(),
    "pipeline": {"core", "extract", "model", "gpuslots"},  # torch-free modules only (test below)
    "bench": {"core", "data", "extract", "model", "report", "gpuslots", "pipeline", "tests"},  # dev tooling, like tests/
}


def imported_modules(path: Path) -> set[str]:
    """Dotted names of the project modules `path` imports (any depth, lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES + ("tests",)}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph(packages) -> dict[str, set[str]]:
    """Module -> project modules it imports (names that are attributes, not modules, dropped)."""
    files = {module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    return {name: {m for m in imported_modules(path) if m in files and m != name}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_packages_below_it(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            top = name.split(".")[0]
            if top != package and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def test_the_package_graph_has_no_cycle():
    graph = {pkg: set(allowed) for pkg, allowed in ALLOWED.items()}
    assert find_cycle(graph) is None


@pytest.mark.parametrize("package", ["core", "data", "extract", "model", "report", "gpuslots", "pipeline"])
def test_no_import_cycle_between_modules(package):
    assert find_cycle(module_graph([package])) is None


def test_pipeline_and_what_it_imports_load_without_torch():
    """Snakemake imports pipeline/ while it builds the DAG: no module it imports, lazily or not,
    may pull in torch (seconds per dry run, and rules must parse where torch is absent)."""
    modules = sorted(m for path in (ROOT / "pipeline").rglob("*.py") for m in imported_modules(path)
                     if m.split(".")[0] != "tests")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except ModuleNotFoundError:\n        pass  # a name imported from a module\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "extract.substitutes" in modules and done.stdout.strip() == "[]", done.stdout[:500]


def test_the_checks_see_a_cycle_and_a_wrong_arrow(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "x.py"
    source.write_text("import os\nfrom data.manifest import read_manifest\n"
                      "def f():\n    from extract import store\n")
    assert imported_modules(source) == {"data.manifest", "data.manifest.read_manifest", "extract",
                                        "extract.store"}
