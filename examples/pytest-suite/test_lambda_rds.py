"""What a user's suite does with ``lambda_rds_stack``: call the API, look at the database."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import psycopg


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_api_answers_through_api_gateway_and_lambda(lambda_rds_stack: Any) -> None:
    api = lambda_rds_stack.info()["api_url"]
    item = get_json(f"{api}/items/1")
    assert item["item"]["id"] == 1


def test_functions_reach_postgres_through_pgbouncer(lambda_rds_stack: Any) -> None:
    info = lambda_rds_stack.info()
    get_json(f"{info['api_url']}/items?limit=3")
    # The handlers' connections arrive through the pooler: PostgreSQL sees
    # PgBouncer's server connections, at most the pool's size.
    with psycopg.connect(info["postgres_admin_dsn"]) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' "
            "AND backend_type = 'client backend'").fetchone() or (0,)
    assert 1 <= count <= info["default_pool_size"]


def test_stack_json_says_where_everything_is(lambda_rds_stack: Any) -> None:
    doc = json.loads((lambda_rds_stack.run_dir / "stack.json").read_text())
    assert doc["pool_mode"] == "transaction"
    assert doc["pgbouncer_dsn"].startswith("postgresql://app:")
