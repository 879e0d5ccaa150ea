"""connstorm's layers, its import graph, and ``docs/architecture.md`` drawn from them.

The layer order is stated once, here (:data:`LAYERS`), and used twice: by
``tests/connstorm/test_layering.py``, which fails on any import that runs upward
or in a circle, and by this module's ``__main__``, which renders
``docs/architecture.md`` (a Mermaid diagram of the import graph by layer, and a
paragraph per layer saying what it may import and why) from the same
definition and the imports actually in the code, so the page cannot drift::

    python -m connstorm.cli.architecture --write   # or: make architecture
    python -m connstorm.cli.architecture --check   # exit 1 when the page is stale

It reads source files only (``ast``), never imports the modules it draws, and
lives in the command-line layer because it may look at every other one. Every
import counts, lazy ones inside functions included, and a ``TYPE_CHECKING``
import too: each is a dependency, a lazy one only moves the failure to run time.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from connstorm.run_folder import JUNIT_FILE, MARKDOWN_FILE, REPORT_FILE

#: The installed package (``connstorm/``, whose links lead to the other folders).
PACKAGE = Path(__file__).resolve().parents[1]
ROOT = PACKAGE.parent
DOC = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Part:
    """A node of the diagram: the modules under some prefixes, drawn as one box."""

    label: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Layer:
    """One layer: its parts, and why it sits where it does (a paragraph of the page)."""

    name: str
    parts: tuple[Part, ...]
    why: str


def _wire(*names: str) -> tuple[str, ...]:
    return tuple(f"connstorm.local_stack.{n}" for n in names)


#: Top to bottom. A module belongs to the part with the longest prefix naming it.
LAYERS: tuple[Layer, ...] = (
    Layer("command line", (
        Part("cli/ (connstorm, commands, pytest plugin, container entry)",
             ("connstorm.cli", "connstorm.__main__")),
    ), "What a user types or a test suite loads: the `connstorm` command and its "
       "subcommands, the `lambda_rds_stack` pytest fixture, the containers' entry point. "
       "It may import every layer below and nothing imports it, so a command can change "
       "its flags and wording without touching what runs."),
    Layer("orchestration", (
        Part("loadtests/orchestrator/ (runs, repro, live, summaries)",
             ("connstorm.loadtests.orchestrator",)),
        Part("local_stack/ (the stack: servers started, faults)", ("connstorm.local_stack",)),
    ), "Starts and stops things and decides what a run is: the local stack (PostgreSQL, "
       "PgBouncer, the stand-ins, the emulator, in order, stopped on every exit) and the "
       "run around it (Locust started as a child process, the live view, the timeline of "
       "faults, the summary and its thresholds). It may import what it runs and the base, "
       "never the command line. The orchestrator never imports Locust or anything of the "
       "Locust side: Locust patches the process with gevent when imported, which would "
       "break the orchestrator's asyncio servers, so the two meet only through a command "
       "line and the run folder."),
    Layer("what they run", (
        Part("local_stack/lambda_/ (the Lambda emulator)", ("connstorm.local_stack.lambda_",)),
        Part("local_stack/rds_proxy/ (the RDS Proxy stand-in)",
             ("connstorm.local_stack.rds_proxy",)),
        Part("local_stack/ stand-ins (IAM auth, TCP proxy, Secrets Manager)",
             _wire("iam_auth_proxy", "tcp_proxy", "secrets_manager")),
        Part("loadtests/locust_plugin/ (runs inside Locust)",
             ("connstorm.loadtests.locust_plugin",)),
        Part("handlers/ (the Lambda functions)", ("connstorm.handlers",)),
    ), "The programs the orchestration starts, each in a process of its own: the Lambda "
       "emulator and its execution environments, the RDS Proxy and credential stand-ins, "
       "the code that runs inside Locust (locustfile, collectors, web tab), and the "
       "handlers, which deploy to AWS unchanged and so import only the standard library, "
       "psycopg, psycopg_pool, boto3 and each other (relatively). They may import the "
       "process and wire layer and the base; never the orchestration that starts them, so "
       "each can be started, tested and benchmarked on its own."),
    Layer("processes and the wire", (
        Part("local_stack/ processes and the wire (process, ports, pg_wire, ...)",
             _wire("resource", "process", "deathsig", "ports", "pg_wire", "credentials",
                   "aws_credentials", "cache", "os_user", "scratch", "priority")),
    ), "What every server and stand-in needs to be a good citizen: resources as context "
       "managers, child processes that die with their parent, free loopback ports, "
       "real-time priority for the loops AWS runs on hosts of their own, the "
       "PostgreSQL wire protocol, generated credentials, the cache and scratch folders. "
       "Small and dependency-free apart from the base, so the layers above share one "
       "implementation of each."),
    Layer("reports", (
        Part(f"reports/ ({REPORT_FILE}, {MARKDOWN_FILE}, {JUNIT_FILE})", ("connstorm.reports",)),
    ), "Turns a run folder into its reports. It reads only the run folder (through the "
       "base's names for its files), never a live object of a run, so a report can be "
       "rendered again, or compared with other runs, long after the run, on another "
       "machine; that is also why it sits below everything that runs."),
    Layer("base", (
        Part("connstorm/ base (scenario, sections, errors, run_folder, metric_names, ...)",
             ("connstorm", "connstorm.loadtests")),
    ), "The vocabulary every layer shares and nothing else: the scenario model and its "
       "sections, errors and exit codes, error kinds, the run folder's file names and "
       "writers, the series' metric names, samples, capacity planning, route templates. "
       "It imports no other layer (a test starts it alone and checks that nothing above "
       "was loaded), so any layer may use it and a change to it is the only change that "
       "reaches everywhere."),
)


def sources() -> list[tuple[str, Path]]:
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


SOURCES = sources()
MODULES = {name for name, _ in SOURCES}


def _match(module: str) -> tuple[int, Part]:
    """(layer index, part) of the longest prefix naming ``module``."""
    best: tuple[int, Part] | None = None
    best_len = -1
    for index, layer in enumerate(LAYERS):
        for part in layer.parts:
            for prefix in part.prefixes:
                if (module == prefix or module.startswith(prefix + ".")) \
                        and len(prefix) > best_len:
                    best, best_len = (index, part), len(prefix)
    if best is None:
        raise ValueError(f"{module} is in no layer")
    return best


def layer_of(module: str) -> int:
    """Index into :data:`LAYERS` (0 is the top) of the module's layer."""
    return _match(module)[0]


def part_of(module: str) -> Part:
    """The diagram box the module is drawn in."""
    return _match(module)[1]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def project_module(name: str) -> str | None:
    """The project module an imported name refers to (a module, or a name in one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path) -> Iterator[tuple[list[str], str | None, int]]:
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


def imports_of(module: str, path: Path,
               packages_with_code: set[str] | None = None) -> Iterator[tuple[str, int]]:
    """(imported project module, line) for every import in the file, lazy ones too.

    ``from connstorm.reports import html`` imports ``html``; when the package's
    ``__init__`` has imports of its own it also reads the package (the
    ``__init__`` decides what the name ``html`` is, and runs its imports first),
    so it counts as an import of the package too: an ``__init__`` importing its
    own modules, which name the package back, is a circle like any other. A
    package whose ``__init__`` is only a docstring is a folder name, nothing more.
    """
    with_code = PACKAGES_WITH_CODE if packages_with_code is None else packages_with_code
    for names, package, line in imported_names(module, path):
        if package in with_code and package != module:
            yield package, line
        for name in names:
            found = project_module(name)
            if found is not None and found != module:
                yield found, line


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    return {name: {target for target, _ in imports_of(name, path)} for name, path in SOURCES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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


# ------------------------------------------------------------------ the page

def _node_ids() -> dict[Part, str]:
    return {part: f"L{i}P{j}" for i, layer in enumerate(LAYERS)
            for j, part in enumerate(layer.parts)}


def part_edges(graph: dict[str, set[str]]) -> Counter[tuple[Part, Part]]:
    """Imports between diagram boxes (within a box they are not drawn), counted."""
    edges: Counter[tuple[Part, Part]] = Counter()
    for module, targets in graph.items():
        for target in targets:
            here, there = part_of(module), part_of(target)
            if here != there:
                edges[(here, there)] += 1
    return edges


def mermaid(graph: dict[str, set[str]]) -> str:
    """The import graph by layer as a Mermaid flowchart, top to bottom."""
    ids = _node_ids()
    lines = ["flowchart TB"]
    for i, layer in enumerate(LAYERS):
        lines.append(f'  subgraph S{i}["{i + 1}. {layer.name}"]')
        lines += [f'    {ids[part]}["{part.label}"]' for part in layer.parts]
        lines.append("  end")
    edges = part_edges(graph)
    for (a, b), count in sorted(edges.items(), key=lambda e: (ids[e[0][0]], ids[e[0][1]])):
        lines.append(f"  {ids[a]} -->|{count}| {ids[b]}")
    return "\n".join(lines)


def render(graph: dict[str, set[str]] | None = None) -> str:
    """``docs/architecture.md``: the diagram, then a paragraph per layer."""
    graph = import_graph() if graph is None else graph
    modules = Counter(layer_of(m) for m in graph)
    out = [
        "# Architecture: the layers and the import graph",
        "",
        "<!-- Generated by `python -m connstorm.cli.architecture --write` (make architecture)",
        "     from LAYERS in connstorm/cli/architecture.py and the imports in the code;",
        "     do not edit: tests/connstorm/test_layering.py fails when it is stale. -->",
        "",
        "Everything is installed under one name, `connstorm`; the repository's top-level",
        "folders (`local_stack/`, `handlers/`, `loadtests/`, `reports/`) are linked into",
        "`connstorm/`. The modules form six layers. An import may go down or stay within",
        "its layer, never up, and no modules import each other in a circle; lazy imports",
        "inside functions count. `tests/connstorm/test_layering.py` checks every import",
        "against the same definition this page is drawn from.",
        "",
        "Each box is a group of modules; an arrow is drawn where modules of one box import",
        "modules of another, labelled with the number of such module-to-module imports.",
        "",
        "```mermaid",
        mermaid(graph),
        "```",
        "",
        "## The layers, top to bottom",
        "",
    ]
    for i, layer in enumerate(LAYERS):
        below = ", ".join(other.name for other in LAYERS[i + 1:]) or "nothing of the project"
        count = modules[i]
        out += [f"### {i + 1}. {layer.name}",
                "",
                f"{count} module{'s' if count != 1 else ''}: "
                + "; ".join(f"`{p.label}`" for p in layer.parts) + ".",
                "",
                f"May import: its own layer and {below}.",
                "",
                layer.why,
                ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``--write`` the page, ``--check`` it (exit 1 when stale), or print it."""
    parser = argparse.ArgumentParser(prog="python -m connstorm.cli.architecture",
                                     description="Render docs/architecture.md.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOC}")
    group.add_argument("--check", action="store_true", help=f"exit 1 when {DOC} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC.write_text(text, encoding="utf-8")
        sys.stdout.write(f"{DOC}\n")
    elif args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            sys.stderr.write(f"{DOC} is stale: run python -m connstorm.cli.architecture "
                             "--write\n")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
