"""The layers of connstorm, top to bottom, and the rule that no import runs upward.

Each installed module belongs to exactly one layer (the longest prefix below names
it). A module may import its own layer and the layers under it, never one above:
every import counts, lazy ones inside functions included, because a lazy import is
still a dependency (it only moves the failure to run time). Modules also never
import each other in a circle, within a layer or across. ``docs/architecture.md``
draws the same order and says why each layer sits where it does.

The repository keeps its top-level folders; they are installed under the one name
``connstorm`` (``connstorm/`` links to each), so this test, like every other module,
speaks of ``connstorm.local_stack`` and never of ``local_stack``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "connstorm"

#: Top to bottom. Prefixes are module names; the longest matching prefix decides.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("command line", ("connstorm.cli", "connstorm.__main__")),
    ("orchestration", ("connstorm.loadtests.orchestrator", "connstorm.local_stack")),
    ("what they run", ("connstorm.local_stack.lambda_", "connstorm.local_stack.rds_proxy",
                       "connstorm.local_stack.iam_auth_proxy", "connstorm.local_stack.tcp_proxy",
                       "connstorm.local_stack.secrets_manager",
                       "connstorm.loadtests.locust_plugin", "connstorm.handlers")),
    ("processes and the wire", tuple(f"connstorm.local_stack.{m}" for m in (
        "resource", "process", "deathsig", "ports", "pg_wire", "credentials",
        "aws_credentials", "cache", "os_user", "scratch"))),
    ("reports", ("connstorm.reports",)),
    ("base", ("connstorm", "connstorm.loadtests")),
)

#: The house limit is ~500 lines a module (style guide: one module per noun).
MAX_LINES = 520


def _sources() -> list[tuple[str, Path]]:
    """Every installed module and its file, followed through ``connstorm/``'s links."""
    found = []
    files = (Path(folder) / name for folder, _, names in os.walk(PACKAGE, followlinks=True)
             for name in names if name.endswith(".py"))
    for path in sorted(files):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), path))
    return found


SOURCES = _sources()
MODULES = {name for name, _ in SOURCES}


def layer_of(module: str) -> int:
    """Index into LAYERS (0 is the top) of the longest prefix naming ``module``."""
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best >= 0, f"{module} is in no layer"
    return best


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _project_module(name: str) -> str | None:
    """The project module an imported name refers to (a module, or a name in one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(module: str, path: Path) -> Iterator[tuple[list[str], str | None, int]]:
    """(names an import statement binds, the package it reads them from, line)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield [alias.name for alias in node.names], None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            yield [f"{target}.{alias.name}" for alias in node.names], target, node.lineno


def _with_code(path: Path) -> bool:
    """Whether a package's ``__init__`` imports anything (more than a docstring)."""
    return path.name == "__init__.py" and any(
        isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


#: Packages whose ``__init__`` imports something: reading one runs those imports.
PACKAGES_WITH_CODE = {name for name, path in SOURCES if _with_code(path)}


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import in the file, lazy ones too.

    ``from connstorm.reports import html`` imports ``html``; when the package's
    ``__init__`` has imports of its own it also reads the package (the
    ``__init__`` decides what the name ``html`` is, and runs its imports first),
    so it counts as an import of the package too: an ``__init__`` importing its
    own modules, which name the package back, is a circle like any other. A
    package whose ``__init__`` is only a docstring is a folder name, nothing more.
    """
    for names, package, line in _imported_names(module, path):
        if package in PACKAGES_WITH_CODE and package != module:
            yield package, line
        for name in names:
            found = _project_module(name)
            if found is not None and found != module:
                yield found, line


GRAPH = {name: {target for target, _ in imports_of(name, path)} for name, path in SOURCES}


@pytest.mark.parametrize(("module", "path"), SOURCES, ids=[name for name, _ in SOURCES])
def test_layering_no_import_runs_upward(module: str, path: Path) -> None:
    mine = layer_of(module)
    upward = [f"{target} (line {line}, {LAYERS[layer_of(target)][0]})"
              for target, line in imports_of(module, path) if layer_of(target) < mine]
    assert not upward, (f"{module} ({LAYERS[mine][0]}) imports a layer above it: "
                        + "; ".join(upward))


def _cycles(graph: dict[str, set[str]] | None = None) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = GRAPH if graph is None else graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, set())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_layering_no_import_cycles() -> None:
    found = _cycles()
    assert not found, "modules importing each other in a circle: " + "; ".join(
        " <-> ".join(c) for c in found)


def test_layering_a_package_init_importing_its_modules_that_name_it_back_is_a_circle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The rule the two package circles of issue 21 broke: reports/__init__.py imported
    # html, which read ``from connstorm.reports import pinning`` back through it.
    module = tmp_path / "html.py"
    module.write_text("from connstorm.reports import pinning\n"
                      "from connstorm.reports.charts import CHARTS\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES_WITH_CODE", {"connstorm.reports"})
    found = {target for target, _ in imports_of("connstorm.reports.html", module)}
    assert found == {"connstorm.reports", "connstorm.reports.pinning", "connstorm.reports.charts"}
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES_WITH_CODE", set())
    found = {target for target, _ in imports_of("connstorm.reports.html", module)}
    assert found == {"connstorm.reports.pinning", "connstorm.reports.charts"}
    graph = {"connstorm.reports": {"connstorm.reports.html"},
             "connstorm.reports.html": {"connstorm.reports", "connstorm.reports.charts"},
             "connstorm.reports.charts": set()}
    assert _cycles(graph) == [["connstorm.reports", "connstorm.reports.html"]]


def test_layering_the_locust_side_imports_nothing_of_the_orchestrator() -> None:
    # Guarded by the layer order too; said on its own because breaking it is the
    # costliest mistake (gevent patching the orchestrator's asyncio servers).
    side = [m for m in MODULES if m.startswith("connstorm.loadtests.locust_plugin")]
    bad = {m: sorted(t for t in GRAPH[m] if t.startswith("connstorm.loadtests.orchestrator"))
           for m in side}
    assert not {m: t for m, t in bad.items() if t}


def test_layering_the_base_imports_without_the_layers_above() -> None:
    code = ("import sys, connstorm.scenario, connstorm.errors, connstorm.error_kinds, "
            "connstorm.scenario_schema, connstorm.run_folder, connstorm.samples; "
            "print(sorted(m for m in sys.modules if m.startswith(('connstorm.cli', "
            "'connstorm.local_stack', 'connstorm.loadtests', 'connstorm.reports', "
            "'locust'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_layering_every_module_is_installed_under_connstorm() -> None:
    # The repository's top-level folders are reachable only through connstorm/'s
    # links, so no module imports them by their bare names.
    bare = []
    for module, path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bare += [f"{module}: {n}" for n in names
                     if n.split(".")[0] in {"local_stack", "loadtests", "reports", "handlers"}]
    assert not bare


@pytest.mark.parametrize(("module", "path"), SOURCES, ids=[name for name, _ in SOURCES])
def test_layering_no_module_is_over_the_house_size(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it by concept"
