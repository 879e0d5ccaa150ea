"""`connstorm schema`: the scenario's JSON Schema, for editors, and its reference.

    connstorm schema > scenario.schema.json      # then "#:schema ./scenario.schema.json"
    connstorm schema --reference                 # the markdown of docs/scenario.md
    connstorm schema --write                     # refresh the committed copies (developers)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

#: The committed copy ``connstorm schema --write`` refreshes (``scenario_schema.SCHEMA_PATH``;
#: found from here so that printing it imports neither pydantic nor the model).
COMMITTED_SCHEMA = (Path(__file__).resolve().parents[2] / "loadtests" / "scenarios"
                    / "scenario.schema.json")


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "schema", help="print the scenario's JSON Schema (draft 2020-12) for editors",
        description="Print the JSON Schema of scenario files (draft 2020-12). TOML language "
                    "servers (taplo, Even Better TOML) use it for completion and validation "
                    "through a '#:schema PATH' first line.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--reference", action="store_true",
                      help="print the markdown reference (docs/scenario.md) instead")
    what.add_argument("--write", action="store_true",
                      help="write docs/scenario.md and loadtests/scenarios/scenario.schema.json "
                           "of this checkout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print or write the generated files.

    Plain ``connstorm schema`` prints the committed copy when there is one: the
    suite fails whenever that copy differs from a fresh render
    (``tests/connstorm/test_scenario_schema.py``), and rendering costs a
    process pydantic's import and the model's validators (0.27 s against 0.07 s,
    BENCHMARKS.md), for every editor that asks.
    """
    if not (args.write or args.reference):
        try:
            sys.stdout.write(COMMITTED_SCHEMA.read_text(encoding="utf-8"))
            return 0
        except OSError:
            pass  # not shipped (a partial copy): render it
    from connstorm import scenario_schema

    if args.write:
        scenario_schema.write_files()
        sys.stdout.write(f"wrote {scenario_schema.SCHEMA_PATH} and "
                         f"{scenario_schema.REFERENCE_PATH}\n")
    elif args.reference:
        sys.stdout.write(scenario_schema.reference_markdown())
    else:
        sys.stdout.write(scenario_schema.schema_text())
    return 0
