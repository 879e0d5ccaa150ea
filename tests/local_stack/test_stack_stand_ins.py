"""The Stack starts the credential stand-ins for the patterns that need them.

``secrets_cached`` and ``iam_token`` functions get no ``DB_PASSWORD``: they can
only log in through the local Secrets Manager or a verified IAM token, so a
200 from the front proves the whole chain, stack wiring included.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from connstorm.local_stack.stack import Stack
from connstorm.scenario import load_scenario


def _get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, json.loads(response.read())


@pytest.mark.slow
@pytest.mark.parametrize(("pattern", "database"), [("secrets_cached", "pgbouncer"),
                                                   ("iam_token", "direct"),
                                                   ("iam_token", "pgbouncer")])
def test_stack_credential_patterns_log_in_through_their_stand_in(
        tmp_path: Path, pattern: str, database: str) -> None:
    # GIVEN a stack whose only function uses a credential pattern
    scenario = load_scenario("pgbouncer-transaction", overrides=[
        f'functions.api.pattern="{pattern}"', f'functions.api.database="{database}"',
        "postgres.seed_products=20"])
    with Stack(scenario, tmp_path / "run") as stack:
        env = stack.emulator.config.functions[0].env
        # THEN the function has no password of its own
        assert "DB_PASSWORD" not in env
        # WHEN it is invoked through the front
        status, body = _get(f"{stack.emulator.api_url}/items/3")
        # THEN it read the row, having logged in through the stand-in
        assert status == 200
        assert body["item"]["id"] == 3
