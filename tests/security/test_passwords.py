"""No password in any file of a run folder but ``stack.json`` (0600), nor in what is printed.

A real short ``connstorm run`` (PostgreSQL, PgBouncer, the Lambda emulator,
Locust) writes its run folder; every password the stack generated (read back
from ``stack.json``) is then looked for, as text and URL-encoded, in every file
of the folder (logs, samples, reports, configs) and in the command's output.
The servers' own auth files live in the scratch folder outside the run folder
and hold SCRAM verifiers, not passwords. The one other holder allowed is the
emulator server's own configuration (``emulator-config.json``, documented in
docs/run-folder.md): the functions' environments carry their database
password there, as Lambda's function configuration does; like ``stack.json``
it is the owner's only.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

pytestmark = pytest.mark.slow

#: Files of a run folder that may hold a password, each readable by its owner only.
PRIVATE_FILES = ("emulator-config.json", "stack.json")


def stack_passwords(doc: dict[str, Any]) -> set[str]:
    """Every password in ``stack.json``: in its DSNs and in its ``*password*`` keys."""
    found: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            if "password" in key.lower() and value:
                found.add(value)
            if value.startswith(("postgresql://", "postgres://")):
                password = urlsplit(value).password
                if password:
                    found.add(unquote(password))

    walk(doc)
    return found


def files_holding(folder: Path, secrets: set[str]) -> dict[str, list[str]]:
    """``{file: [which secrets]}`` for every file under ``folder`` holding one."""
    forms = {s: {s.encode(), quote(s, safe="").encode()} for s in secrets}
    hits: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        held = [s[:3] + "..." for s, encoded in forms.items() if any(e in data for e in encoded)]
        if held:
            hits[str(path.relative_to(folder))] = held
    return hits


def test_run_folder_and_output_hold_no_password_but_stack_json(tmp_path: Path) -> None:
    # GIVEN a real, short run through the pooler, with Locust worker processes
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "connstorm", "run", "pgbouncer-transaction", "--out", str(run_dir),
         "--users", "4", "--spawn-rate", "4", "--duration", "4s", "--processes", "1"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert result.returncode in (0, 6), result.stderr
    stack_json = run_dir / "stack.json"
    secrets = stack_passwords(json.loads(stack_json.read_text()))
    # THEN stack.json holds the generated passwords, for the owner only ...
    assert len(secrets) >= 3, "expected the app, superuser and console passwords"
    assert all(len(s) >= 16 for s in secrets)
    # ... and no other file of the run folder, nor the command's output, holds one
    hits = files_holding(run_dir, secrets)
    assert "stack.json" in hits
    assert set(hits) <= set(PRIVATE_FILES), hits
    for name in PRIVATE_FILES:
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr
    assert (run_dir / "summary.json").is_file()
    assert any((run_dir / "logs").iterdir())
