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

#: Imports that break the rule today, each to be removed (issue 21); an entry that no
#: longer occurs fails the test too, so this list only shrinks.
KNOWN_UPWARD: frozenset[tuple[str, str]] = frozenset({
    ("connstorm.sections.routes", "connstorm.local_stack.lambda_.routes"),
})
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset({
    frozenset({"connstorm.reports.pinning", "connstorm.reports.timeline",
               "connstorm.reports.verdicts"}),
    frozenset({"connstorm.local_stack.rds_proxy.proxy", "connstorm.local_stack.rds_proxy.session"}),
    frozenset({"connstorm.local_stack.lambda_.http_connection",
               "connstorm.local_stack.lambda_.http_server"}),
})

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


def imports_of(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import in the file, lazy ones too."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, path, node)
            names = [f"{target}.{alias.name}" for alias in node.names] or [target]
        else:
            continue
        for name in names:
            found = _project_module(name)
            if found is not None and found != module:
                yield found, node.lineno


GRAPH = {name: {target for target, _ in imports_of(name, path)} for name, path in SOURCES}


@pytest.mark.parametrize(("module", "path"), SOURCES, ids=[name for name, _ in SOURCES])
def test_layering_no_import_runs_upward(module: str, path: Path) -> None:
    mine = layer_of(module)
    upward = [f"{target} (line {line}, {LAYERS[layer_of(target)][0]})"
              for target, line in imports_of(module, path)
              if layer_of(target) < mine and (module, target) not in KNOWN_UPWARD]
    assert not upward, (f"{module} ({LAYERS[mine][0]}) imports a layer above it: "
                        + "; ".join(upward))


def test_layering_known_exceptions_still_exist() -> None:
    gone = {pair for pair in KNOWN_UPWARD if pair[1] not in GRAPH.get(pair[0], set())}
    assert not gone, f"fixed, so remove from KNOWN_UPWARD: {sorted(gone)}"


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
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

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_layering_no_import_cycles() -> None:
    found = {frozenset(c) for c in _cycles()}
    assert not found - KNOWN_CYCLES, "modules importing each other in a circle: " + "; ".join(
        " <-> ".join(sorted(c)) for c in found - KNOWN_CYCLES)
    assert not KNOWN_CYCLES - found, "fixed, so remove from KNOWN_CYCLES"


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
