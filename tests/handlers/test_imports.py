"""``handlers/`` deploys to AWS without connstorm: it imports only what Lambda has."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import connstorm.handlers as handlers

#: Besides the standard library; the package's own modules import each other
#: relatively, so they run as ``handlers.*`` on AWS and ``connstorm.handlers.*`` here.
ALLOWED = {"psycopg", "psycopg_pool", "boto3", "botocore"}
ROOT = Path(handlers.__file__).resolve().parent


def test_handlers_import_only_stdlib_psycopg_and_boto3() -> None:
    seen: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                seen.setdefault(name.split(".")[0], set()).add(path.name)
    foreign = {top: files for top, files in seen.items()
               if top not in ALLOWED and top not in sys.stdlib_module_names}
    assert foreign == {}
    assert "psycopg" in seen


def test_every_pattern_has_a_documented_handler() -> None:
    from connstorm.scenario import PATTERNS

    for pattern in PATTERNS:
        source = (ROOT / f"{pattern}_handler.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(source)) or ""
        for heading in ("What it is", "When it is right", "How it fails"):
            assert heading in doc, f"{pattern}: docstring lacks {heading!r}"
        assert "def lambda_handler(event: Any, context: Any)" in source
