"""`connstorm schema`: the scenario's JSON Schema, for editors, and its reference.

    connstorm schema > scenario.schema.json      # then "#:schema ./scenario.schema.json"
    connstorm schema --reference                 # the markdown of docs/scenario.md
    connstorm schema --write                     # refresh the committed copies (developers)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


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
    """Print or write the generated files."""
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
