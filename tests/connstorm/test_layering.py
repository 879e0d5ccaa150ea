"""The layers of connstorm, top to bottom, and the rule that no import runs upward.

The order is :data:`connstorm.cli.architecture.LAYERS`, stated once and used
twice: here, and to draw ``docs/architecture.md``. Each installed module belongs
to exactly one layer (the longest prefix names it). A module may import its own
layer and the layers under it, never one above: every import counts, lazy ones
inside functions included, because a lazy import is still a dependency (it only
moves the failure to run time). Modules also never import each other in a
circle, within a layer or across. There is no list of exceptions.

The repository keeps its top-level folders; they are installed under the one name
``connstorm`` (``connstorm/`` links to each), so this test, like every other module,
speaks of ``connstorm.local_stack`` and never of ``local_stack``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from connstorm.cli import architecture
from connstorm.cli.architecture import (
    LAYERS,
    MODULES,
    ROOT,
    SOURCES,
    cycles,
    imports_of,
    layer_of,
)

#: The house limit is ~500 lines a module (style guide: one module per noun).
MAX_LINES = 520

GRAPH = architecture.import_graph()


@pytest.mark.parametrize(("module", "path"), SOURCES, ids=[name for name, _ in SOURCES])
def test_layering_no_import_runs_upward(module: str, path: Path) -> None:
    mine = layer_of(module)
    upward = [f"{target} (line {line}, {LAYERS[layer_of(target)].name})"
              for target, line in imports_of(module, path) if layer_of(target) < mine]
    assert not upward, (f"{module} ({LAYERS[mine].name}) imports a layer above it: "
                        + "; ".join(upward))


def test_layering_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "modules importing each other in a circle: " + "; ".join(
        " <-> ".join(c) for c in found)


def test_layering_a_package_init_importing_its_modules_that_name_it_back_is_a_circle(
        tmp_path: Path) -> None:
    # The rule the two package circles of issue 21 broke: reports/__init__.py imported
    # html, which read ``from connstorm.reports import pinning`` back through it.
    module = tmp_path / "html.py"
    module.write_text("from connstorm.reports import pinning\n"
                      "from connstorm.reports.charts import CHARTS\n", encoding="utf-8")
    found = {target for target, _ in imports_of("connstorm.reports.html", module,
                                                {"connstorm.reports"})}
    assert found == {"connstorm.reports", "connstorm.reports.pinning", "connstorm.reports.charts"}
    found = {target for target, _ in imports_of("connstorm.reports.html", module, set())}
    assert found == {"connstorm.reports.pinning", "connstorm.reports.charts"}
    graph = {"connstorm.reports": {"connstorm.reports.html"},
             "connstorm.reports.html": {"connstorm.reports", "connstorm.reports.charts"},
             "connstorm.reports.charts": set()}
    assert cycles(graph) == [["connstorm.reports", "connstorm.reports.html"]]


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


def test_layering_every_module_is_in_a_layer_and_every_prefix_names_a_module() -> None:
    for module in MODULES:
        layer_of(module)  # raises for a module no prefix names
    prefixes = [p for layer in LAYERS for part in layer.parts for p in part.prefixes]
    assert len(prefixes) == len(set(prefixes))
    assert [p for p in prefixes if p not in MODULES] == []


def test_layering_docs_architecture_is_the_fresh_render() -> None:
    # The diagram is generated from LAYERS and the imports in the code; a stale
    # page would show an architecture the code no longer has.
    assert (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8") \
        == architecture.render(GRAPH), "run: python -m connstorm.cli.architecture --write"
