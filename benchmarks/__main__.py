"""``python -m benchmarks`` (``make bench``): list the benchmarks, or run one by name.

Each benchmark is a script of its own with its own options (its docstring says
what it measures and the command whose figures BENCHMARKS.md quotes); they take
from seconds to minutes, so they are run one at a time, on purpose::

    python -m benchmarks                      # the list
    python -m benchmarks emulator_warm --duration-s 10
"""

from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _benchmarks() -> dict[str, str]:
    """Name -> first line of its docstring, for every benchmark script here."""
    out = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        out[path.stem] = doc.split("\n", 1)[0]
    return out


def main(argv: list[str]) -> int:
    known = _benchmarks()
    if not argv or argv[0] in ("-h", "--help"):
        print("benchmarks (run one: python -m benchmarks NAME [options]; NAME --help for "
              "its options):")
        for name, line in known.items():
            print(f"  {name:22} {line}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in known:
        print(f"python -m benchmarks: no benchmark {name!r} (one of: {', '.join(known)})",
              file=sys.stderr)
        return 2
    sys.argv = [str(HERE / f"{name}.py"), *rest]
    sys.path.insert(0, str(HERE))
    runpy.run_path(str(HERE / f"{name}.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
