"""VPC functions: Pending then Active (hyperplane), subnet addresses per environment.

The rules are tested on :class:`VpcAttachment` with a fake clock; the errors
through the real emulator server, real awslambdaric environments, boto3 and
plain HTTP through the API Gateway front.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from connstorm.local_stack.lambda_.vpc import VpcAttachment
from connstorm.scenario import RouteConfig, VpcConfig
from tests.local_stack.lambda_.http_harness import (
    emulator_config,
    emulator_server,
    get_stats,
    http_function,
    wait_for,
)

PENDING_MESSAGE = ("The operation cannot be performed at this time. The function is "
                   "currently in the following state: Pending")


def _client(url: str) -> Any:
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=30))


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


# ---------------------------------------------------------------- rules


def test_vpc_hyperplane_is_pending_for_its_attach_time_then_active() -> None:
    now = [100.0]
    vpc = VpcAttachment(VpcConfig(eni_model="hyperplane", eni_attach_ms=2000), lambda: now[0])
    assert vpc.state == "Pending"
    assert vpc.take() is None  # hyperplane environments need no address of their own
    now[0] = 101.9
    assert vpc.pending()
    now[0] = 102.0
    assert not vpc.pending()
    assert vpc.state == "Active"
    assert vpc.attach_s == 0.0  # no per-cold-start cost afterwards


def test_vpc_per_environment_fills_the_emptiest_subnet_and_frees_on_release() -> None:
    vpc = VpcAttachment(VpcConfig(subnets=3, free_ips_per_subnet=2,
                                  eni_model="per_environment", eni_attach_ms=50))
    assert vpc.state == "Active"
    taken = [t for t in (vpc.take() for _ in range(6)) if t is not None]
    assert sorted(taken) == [0, 0, 1, 1, 2, 2]  # spread over the subnets
    assert taken[:3] == [0, 1, 2]
    assert vpc.take() is None
    assert vpc.refused == 1
    assert vpc.in_use == 6
    vpc.release(1)
    assert vpc.take() == 1
    vpc.release(2)
    vpc.release(2)
    vpc.release(2)  # never more free than the subnet has
    assert vpc.stats()["addresses_free"] == 2


# ---------------------------------------------------------------- the real emulator


#: How long the hyperplane function stays Pending: long enough that the first checks
#: run inside it on a loaded machine (make test runs several workers at once).
PENDING_MS = 8000


@pytest.fixture(scope="module")
def vpc_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, float]]:
    run = tmp_path_factory.mktemp("vpc-emulator")
    functions = [
        http_function("pending", "proxy_handler.lambda_handler",
                      vpc=VpcConfig(eni_model="hyperplane", eni_attach_ms=PENDING_MS)),
        http_function("cramped", "proxy_handler.lambda_handler", idle_lifetime_s=1.0,
                      vpc=VpcConfig(subnets=2, free_ips_per_subnet=1,
                                    eni_model="per_environment", eni_attach_ms=300)),
    ]
    routes = [RouteConfig("GET", "/pending/{proxy+}", "pending", "1.0"),
              RouteConfig("GET", "/cramped/{proxy+}", "cramped", "2.0")]
    config = emulator_config(functions, routes, run)
    with emulator_server(config, run) as url:
        yield url, time.monotonic()


def test_vpc_hyperplane_invoke_while_pending_is_409_resource_conflict_then_runs(
        vpc_emulator: tuple[str, float]) -> None:
    url, started = vpc_emulator
    client = _client(url)
    # GIVEN a hyperplane VPC function within its set-up (PENDING_MS)
    with pytest.raises(ClientError) as err:
        client.invoke(FunctionName="pending", Payload=b"{}")
    # THEN Invoke says what Lambda says, and API Gateway answers a rejected invoke with 500
    response = err.value.response
    assert response["Error"]["Code"] == "ResourceConflictException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == \
        "ResourceConflictException"
    assert response["Error"]["Message"] == PENDING_MESSAGE
    status, headers, body = _get(f"{url}/pending/x")
    assert status == 500
    assert json.loads(body) == {"message": "Internal server error"}
    assert headers["X-Connstorm-Error-Kind"] == "lambda_pending"
    stats = get_stats(url)["functions"]["pending"]
    assert stats["vpc"]["state"] == "Pending"
    assert stats["rejections"] >= 2
    assert stats["env_total"] == 0
    assert time.monotonic() - started < PENDING_MS / 1000, "the check ran too late to see Pending"
    # WHEN its set-up is over THEN it is Active and runs, with no extra cost per cold start
    wait_for(lambda: get_stats(url)["functions"]["pending"]["vpc"]["state"] == "Active",
             timeout_s=PENDING_MS / 1000 + 10, what="Active")
    out = client.invoke(FunctionName="pending", Payload=b"{}")
    assert out["StatusCode"] == 200
    status, _, _ = _get(f"{url}/pending/x")
    assert status == 200


def test_vpc_per_environment_subnets_full_is_502_subnet_limit_until_reaped(
        vpc_emulator: tuple[str, float]) -> None:
    url, _ = vpc_emulator
    client = _client(url)
    sleepy = json.dumps({"rawPath": "/sleep", "queryStringParameters": {"s": "1.0"}}).encode()

    def invoke(_: int) -> tuple[float, str]:
        t0 = time.monotonic()
        try:
            client.invoke(FunctionName="cramped", Payload=sleepy)
            return time.monotonic() - t0, "ok"
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            code = exc.response["Error"]["Code"]
            header = meta["HTTPHeaders"]["x-amzn-errortype"]
            return time.monotonic() - t0, f"{meta['HTTPStatusCode']} {header} {code}"

    # GIVEN two subnets of one free address each, and three concurrent requests
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(invoke, range(3)))
    outcomes = sorted(r[1] for r in results)
    # THEN two environments got an address (each paid the attach time), the third failed
    assert outcomes == ["502 SubnetIPAddressLimitReachedException "
                        "SubnetIPAddressLimitReachedException", "ok", "ok"]
    assert all(elapsed >= 0.3 + 1.0 for elapsed, what in results if what == "ok")
    stats = get_stats(url)["functions"]["cramped"]
    assert stats["vpc"]["addresses_in_use"] == 2
    assert stats["vpc"]["addresses_free"] == 0
    assert stats["errors_by_kind"].get("lambda_vpc_limit") == 1
    # AND through API Gateway, with both environments busy, the cold start fails with 502
    with ThreadPoolExecutor(3) as pool:
        busy = [pool.submit(invoke, i) for i in range(2)]
        wait_for(lambda: get_stats(url)["functions"]["cramped"]["env_busy"] == 2,
                 timeout_s=10, what="both environments busy")
        status, headers, body = _get(f"{url}/cramped/x")
        assert [f.result()[1] for f in busy] == ["ok", "ok"]
    assert status == 502
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert headers["X-Connstorm-Error-Kind"] == "lambda_vpc_limit"
    # WHEN the idle environments are reaped THEN their addresses are free again
    wait_for(lambda: get_stats(url)["functions"]["cramped"]["vpc"]["addresses_free"] == 2,
             timeout_s=15, what="addresses freed by reaping")
    assert get_stats(url)["functions"]["cramped"]["env_reaped"] >= 2
    with ThreadPoolExecutor(2) as pool:
        assert [r[1] for r in pool.map(invoke, range(2))] == ["ok", "ok"]
