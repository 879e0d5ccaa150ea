"""Each pattern's connection footprint, under the real emulator, in ``pg_stat_activity``.

Every function runs in real execution environments (awslambdaric processes,
frozen between invocations) against a real PostgreSQL; the footprint is read
from the server, not from the handlers' own counters. Several concurrent
environments are made deterministic by holding a lock the workload's reads wait
for: N requests blocked at once need N environments.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.config import Config

from connstorm.local_stack.iam_auth_proxy import IamAuthProxy, iam_token_env
from connstorm.local_stack.lambda_.process import EmulatorProcess
from connstorm.local_stack.secrets_manager import (
    DUMMY_ACCESS_KEY,
    DUMMY_SECRET_KEY,
    SecretsManagerServer,
    secrets_cached_env,
)
from connstorm.scenario import FunctionConfig, LambdaConfig, RouteConfig, Scenario
from tests.handlers import apigw_events
from tests.handlers.conftest import Pg

pytestmark = pytest.mark.slow

POOL_SIZE = 3
LEAKY_IDLE_S = 6.0
ROUTE_PATHS = (("GET", "/health"), ("GET", "/items/{id}"), ("GET", "/items"),
               ("POST", "/orders"), ("GET", "/orders/{id}"))


class Stack:
    """The pieces the tests talk to."""

    def __init__(self, pg: Pg, emulator: EmulatorProcess, secrets: SecretsManagerServer,
                 proxy: IamAuthProxy) -> None:
        self.pg, self.emulator, self.secrets, self.proxy = pg, emulator, secrets, proxy
        self._local = threading.local()

    @property
    def lam(self) -> Any:
        if not hasattr(self._local, "client"):
            self._local.client = boto3.session.Session().client(
                "lambda", endpoint_url=self.emulator.invoke_url, region_name="us-east-1",
                aws_access_key_id=DUMMY_ACCESS_KEY, aws_secret_access_key=DUMMY_SECRET_KEY,
                config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
        return self._local.client

    def invoke(self, function: str, method: str = "GET", path: str = "/health",
               **kw: Any) -> tuple[int, dict[str, Any]]:
        """Invoke through the Invoke API with a payload 2.0 event; (status, JSON body)."""
        answer = self.lam.invoke(FunctionName=function,
                                 Payload=json.dumps(apigw_events.v2(method, path, **kw)))
        payload = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, payload
        return int(payload["statusCode"]), json.loads(payload["body"])

    def connections(self, function: str, waiting_on_lock: bool = False) -> dict[str, int]:
        """Client backends of ``function`` by application_name (one name per environment)."""
        query = ("SELECT application_name, count(*) FROM pg_stat_activity "
                 "WHERE backend_type = 'client backend' AND application_name LIKE %s")
        if waiting_on_lock:
            query += " AND wait_event_type = 'Lock'"
        with psycopg.connect(self.pg.admin_dsn, autocommit=True) as conn:
            rows = conn.execute(query + " GROUP BY 1", (f"{function}:%",)).fetchall()
        return {str(name): int(n) for name, n in rows}

    def stats(self, function: str) -> dict[str, Any]:
        import urllib.request
        with urllib.request.urlopen(self.emulator.stats_url, timeout=5) as resp:
            return dict(json.load(resp)["functions"][function])

    def burst(self, function: str, n: int) -> list[tuple[int, dict[str, Any]]]:
        """``n`` concurrent invocations, all in flight at once: ``n`` environments."""
        results: list[tuple[int, dict[str, Any]]] = []
        with psycopg.connect(self.pg.admin_dsn.rsplit("/", 1)[0] + "/app") as locker:
            locker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
            threads = [threading.Thread(target=lambda: results.append(
                self.invoke(function, "GET", "/items/1"))) for _ in range(n)]
            for t in threads:
                t.start()
            assert wait_for(lambda: sum(self.connections(function, True).values()) >= n,
                            60), f"{function}: {n} invocations never waited together"
        for t in threads:
            t.join(60)
        assert [status for status, _ in results] == [200] * n
        return results


def wait_for(check: Any, timeout_s: float) -> bool:
    """Poll until ``check()`` is true; a bound, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture(scope="module")
def stack(pg: Pg, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One emulator with a function per pattern, and the two credential stand-ins."""
    run_dir = Path(tmp_path_factory.mktemp("patterns"))
    direct = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app",
              "DB_USER": "app", "DB_PASSWORD": pg.app_password, "DB_SSLMODE": "disable"}
    with SecretsManagerServer(username="app", password=pg.app_password, host=pg.host,
                              port=pg.port, dbname="app") as secrets, \
            IamAuthProxy(upstream_host=pg.host, upstream_port=pg.port,
                         upstream_password=pg.app_password,
                         keys={DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY}) as proxy:
        functions = (
            FunctionConfig("perinv", "", pattern="per_invocation", database="direct"),
            FunctionConfig("leaky", "", pattern="leaky", database="direct",
                           idle_lifetime_s=LEAKY_IDLE_S),
            FunctionConfig("ml", "", pattern="module_level", database="direct"),
            FunctionConfig("mlr", "", pattern="module_level_resilient", database="direct"),
            FunctionConfig("pool", "", pattern="in_process_pool", database="direct"),
            FunctionConfig("secrets", "", pattern="secrets_cached", database="direct"),
            FunctionConfig("iam", "", pattern="iam_token", database="direct"),
            FunctionConfig("api", "", pattern="module_level_resilient", database="direct"),
        )
        functions = tuple(
            FunctionConfig(**{**f.__dict__, "handler": f"handlers.{f.pattern}_handler."
                              "lambda_handler", "timeout_s": 60.0}) for f in functions)
        env = {f.name: dict(direct) for f in functions}
        env["pool"]["DB_POOL_SIZE"] = str(POOL_SIZE)
        env["secrets"] = secrets_cached_env(direct, secrets)
        env["iam"] = iam_token_env(direct, proxy)
        assert "DB_PASSWORD" not in env["secrets"]
        assert "DB_PASSWORD" not in env["iam"]
        routes = tuple(RouteConfig(method, f"/v{v[0]}{path}", "api", payload=v)
                       for v in ("1.0", "2.0") for method, path in ROUTE_PATHS)
        scenario = Scenario(name="patterns", source=str(run_dir / "patterns.toml"),
                            lambda_=LambdaConfig(concurrency_limit=50),
                            functions=functions, routes=routes)
        with EmulatorProcess(scenario, run_dir, env) as emulator:
            yield Stack(pg, emulator, secrets, proxy)


def test_per_invocation_one_connection_at_a_time_and_connects_grow(stack: Stack) -> None:
    # GIVEN a sampler of pg_stat_activity running while invocations go on
    peak: dict[str, int] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for name, n in stack.connections("perinv").items():
                peak[name] = max(peak.get(name, 0), n)

    sampler = threading.Thread(target=sample)
    sampler.start()
    connects = []
    try:
        for _ in range(12):
            status, body = stack.invoke("perinv")
            assert status == 200
            connects.append(body["connects"])
    finally:
        done.set()
        sampler.join(30)
    # THEN never more than one connection of the environment at a time
    assert all(n <= 1 for n in peak.values()), peak
    # AND nothing stays open between invocations, and every invocation connected
    assert stack.connections("perinv") == {}
    assert connects == list(range(connects[0], connects[0] + 12))
    # WHEN an invocation is in flight THEN its environment holds exactly one connection
    (status, _), = stack.burst("perinv", 1)
    assert status == 200
    assert stack.stats("perinv")["env_total"] == 1


def test_leaky_grows_per_invocation_and_vanishes_on_reaping(stack: Stack) -> None:
    for i in range(1, 6):
        assert stack.invoke("leaky")[0] == 200
        counts = stack.connections("leaky")
        assert list(counts.values()) == [i], counts  # one environment, i connections
    # THEN they stay while the environment lives, frozen and idle
    stats = stack.stats("leaky")
    assert (stats["env_total"], stats["env_reaped"]) == (1, 0)
    assert list(stack.connections("leaky").values()) == [5]
    # WHEN the environment is reaped (idle lifetime) THEN its connections go with it
    assert wait_for(lambda: stack.stats("leaky")["env_reaped"] >= 1, LEAKY_IDLE_S + 30)
    assert wait_for(lambda: stack.connections("leaky") == {}, 10)


def test_module_level_one_connection_per_environment_reused(stack: Stack) -> None:
    stack.burst("ml", 3)
    counts = stack.connections("ml")
    assert sorted(counts.values()) == [1, 1, 1], counts
    for _ in range(6):
        status, body = stack.invoke("ml")
        assert status == 200
        assert body["connects"] == 1  # reused: never reconnected
    assert stack.connections("ml") == counts
    assert stack.stats("ml")["env_total"] == 3


def _terminate(stack: Stack, function: str) -> int:
    with psycopg.connect(stack.pg.admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name LIKE %s", (f"{function}:%",)).fetchall()
    return len(rows)


def test_resilient_survives_terminate_while_module_level_fails(stack: Stack) -> None:
    # GIVEN one warm environment of each
    assert stack.invoke("ml")[0] == 200
    status, before = stack.invoke("mlr")
    assert status == 200
    # WHEN the server terminates their connections
    assert _terminate(stack, "ml") >= 1
    assert _terminate(stack, "mlr") >= 1
    assert wait_for(lambda: not stack.connections("ml") and not stack.connections("mlr"), 10)
    # THEN the resilient one answers on a new connection
    status, after = stack.invoke("mlr")
    assert status == 200
    assert after["environment"] == before["environment"]
    assert after["connects"] == before["connects"] + 1
    assert sum(stack.connections("mlr").values()) >= 1
    # AND module_level fails, and keeps failing: no recovery
    for _ in range(2):
        status, body = stack.invoke("ml")
        assert status == 503
        assert body["kind"] in {"connection_lost", "admin_shutdown"}, body


def test_in_process_pool_total_is_environments_times_pool_size(stack: Stack) -> None:
    stack.burst("pool", 2)
    counts = stack.connections("pool")
    assert sorted(counts.values()) == [POOL_SIZE, POOL_SIZE], counts
    assert sum(counts.values()) == stack.stats("pool")["env_total"] * POOL_SIZE


def test_secrets_cached_fetches_once_per_environment(stack: Stack) -> None:
    before = stack.secrets.fetches()
    stack.burst("secrets", 2)
    for _ in range(4):
        assert stack.invoke("secrets")[0] == 200
    # WHEN connections are dropped THEN reconnects reuse the cached secret
    _terminate(stack, "secrets")
    for _ in range(3):
        status, body = stack.invoke("secrets")
        assert status == 200
    assert stack.secrets.fetches() - before == 2  # one per environment, not per invocation
    assert body["connects"] >= 2


def test_iam_token_verified_and_generated_once_per_environment(stack: Stack) -> None:
    stack.burst("iam", 2)
    _terminate(stack, "iam")
    for _ in range(4):
        assert stack.invoke("iam")[0] == 200
    logins = [login for login in stack.proxy.logins if login.application_name.startswith("iam:")]
    assert logins
    assert all(login.accepted for login in logins)
    by_env: dict[str, set[str]] = {}
    for login in logins:
        by_env.setdefault(login.application_name, set()).add(login.signature)
    assert len(by_env) == 2
    assert all(len(tokens) == 1 for tokens in by_env.values()), by_env  # cached token
    assert len(logins) > len(by_env)  # reconnects happened, with the same token


@pytest.mark.parametrize("version", ["1", "2"])
def test_routes_through_the_api_gateway_front(stack: Stack, version: str) -> None:
    import urllib.error
    import urllib.request

    base = f"{stack.emulator.api_url}/v{version}"

    def call(method: str, path: str, body: str | None = None) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(base + path, method=method,
                                     data=body.encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.load(resp)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    assert call("GET", "/health")[0] == 200
    status, body = call("GET", "/items/42")
    assert (status, body["item"]["id"]) == (200, 42)
    assert call("GET", "/items/999999")[0] == 404
    status, body = call("GET", "/items?limit=3&category=toys")
    assert status == 200
    assert [i["category"] for i in body["items"]] == ["toys"] * 3
    status, body = call("GET", "/items?limit=lots")
    assert status == 400
    assert "limit" in body["error"]
    status, body = call("POST", "/orders", "{broken")
    assert status == 400
    assert "JSON" in body["error"]
    order = {"account_id": 9, "items": [{"product_id": 4, "quantity": 2}]}
    status, body = call("POST", "/orders", json.dumps(order))
    assert status == 201
    order_id = body["order"]["id"]
    status, body = call("GET", f"/orders/{order_id}")
    assert status == 200
    assert body["order"]["items"] == [{"product_id": 4, "quantity": 2,
                                       "price_cents": body["order"]["items"][0]["price_cents"]}]


def test_log_stream_has_one_json_line_per_invocation(stack: Stack) -> None:
    for _ in range(3):
        assert stack.invoke("perinv", "GET", "/items", query={"limit": "2"})[0] == 200
    assert stack.invoke("perinv", "GET", "/items", query={"limit": "x"})[0] == 400
    logs = sorted((stack.emulator.run_dir / "logs" / "lambda" / "perinv").glob("*.log"))
    records = [json.loads(line) for path in logs for line in path.read_text().splitlines()
               if line.startswith("{")]
    assert len(records) == stack.stats("perinv")["invocations"]
    assert {r["pattern"] for r in records} == {"per_invocation"}
    assert records[-1]["status"] == 400
    assert records[-1]["route"] == "GET /items"
    assert all(len(r["request_id"]) == 36 for r in records)  # the Lambda request id
    # The log stream is named by the environment id, the one application_name carries.
    assert {r["environment"] for r in records} <= {p.stem[:12] for p in logs}
