"""Scaling rate, request rate and concurrency limits: pure logic with a fake clock, and
the request-rate throttle as boto3 sees it from the real emulator server."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from connstorm.local_stack.lambda_.process import EmulatorProcess
from connstorm.local_stack.lambda_.scaling import (
    ACCOUNT_LIMIT,
    RATE_LIMIT,
    RESERVED_LIMIT,
    RESERVED_RATE_LIMIT,
    TokenBucket,
    concurrency_reason,
    rate_reason,
    request_rate_buckets,
    request_rate_limited,
    scaling_bucket,
)
from connstorm.scenario import FunctionConfig, LambdaConfig, load_scenario
from tests.local_stack.lambda_.emulator_helpers import FIXTURES


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_scaling_bucket_current_allows_1000_then_refills_continuously() -> None:
    clock = Clock()
    bucket = scaling_bucket(LambdaConfig(), clock)
    assert sum(bucket.take() for _ in range(1200)) == 1000
    clock.now += 0.5  # 1,000 per 10 s = 100 per s
    assert sum(bucket.take() for _ in range(100)) == 50


def test_scaling_bucket_does_not_carry_over_beyond_its_size() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 1.0, clock)
    clock.now += 3600
    assert sum(bucket.take() for _ in range(100)) == 10


def test_scaling_bucket_legacy_bursts_then_grows_per_minute() -> None:
    clock = Clock()
    bucket = scaling_bucket(LambdaConfig(scaling="legacy", legacy_burst=500,
                                         legacy_per_minute=60), clock)
    assert sum(bucket.take() for _ in range(600)) == 500
    clock.now += 10
    assert sum(bucket.take() for _ in range(600)) == 10


def test_scaling_give_back_returns_an_unused_token() -> None:
    bucket = TokenBucket(1, 0.0, Clock())
    assert bucket.take()
    assert not bucket.take()
    bucket.give_back()
    assert bucket.take()


def test_scaling_reasons_for_reserved_and_unreserved_functions() -> None:
    reserved = FunctionConfig(name="r", handler="m.h", reserved_concurrency=2)
    free = FunctionConfig(name="f", handler="m.h")
    assert concurrency_reason(reserved, 1, 999, 5) is None
    assert concurrency_reason(reserved, 2, 0, 5) == RESERVED_LIMIT
    assert concurrency_reason(free, 0, 4, 5) is None
    assert concurrency_reason(free, 0, 5, 5) == ACCOUNT_LIMIT
    assert rate_reason(free) == RATE_LIMIT
    assert rate_reason(reserved) == RESERVED_RATE_LIMIT


def test_scaling_reserved_zero_always_throttles() -> None:
    fn = FunctionConfig(name="r", handler="m.h", reserved_concurrency=0)
    assert concurrency_reason(fn, 0, 0, 1000) == RESERVED_LIMIT


def test_request_rate_buckets_reserved_own_unreserved_shared() -> None:
    clock = Clock()
    reserved = FunctionConfig(name="r", handler="m.h", reserved_concurrency=3)
    a = FunctionConfig(name="a", handler="m.h")
    b = FunctionConfig(name="b", handler="m.h")
    buckets = request_rate_buckets(LambdaConfig(concurrency_limit=50), (reserved, a, b), clock)
    assert buckets["a"] is buckets["b"]
    own, shared = buckets["r"], buckets["a"]
    assert own is not None
    assert shared is not None
    assert sum(own.take() for _ in range(100)) == 30  # one second of 10 x 3
    assert sum(shared.take() for _ in range(1000)) == 500  # 10 x concurrency_limit
    clock.now += 0.5  # refilled continuously
    assert sum(own.take() for _ in range(100)) == 15
    clock.now += 3600  # never more than one second's worth banked
    assert sum(own.take() for _ in range(100)) == 30


def test_request_rate_limit_off_by_account_or_function_and_none_for_reserved_zero() -> None:
    on = FunctionConfig(name="on", handler="m.h", request_rate_limit=True)
    off = FunctionConfig(name="off", handler="m.h", request_rate_limit=False)
    follows = FunctionConfig(name="follows", handler="m.h")
    zero = FunctionConfig(name="zero", handler="m.h", reserved_concurrency=0)
    assert request_rate_limited(follows, LambdaConfig())
    assert not request_rate_limited(follows, LambdaConfig(request_rate_limit=False))
    assert request_rate_limited(on, LambdaConfig(request_rate_limit=False))
    assert not request_rate_limited(off, LambdaConfig())
    buckets = request_rate_buckets(LambdaConfig(request_rate_limit=False),
                                   (on, off, follows, zero))
    assert buckets["on"] is not None
    assert buckets["off"] is None
    assert buckets["follows"] is None
    assert request_rate_buckets(LambdaConfig(), (zero,))["zero"] is None


@pytest.mark.slow
def test_scaling_request_rate_throttle_reaches_boto3_with_its_reason(tmp_path: Path) -> None:
    # GIVEN the emulator server with a function reserving 1 (10 requests/s, 1 s banked)
    path = tmp_path / "rate.toml"
    path.write_text(f"""
name = "rate"
[[functions]]
name = "limited"
handler = "counter_handler.lambda_handler"
code_dir = "{FIXTURES}"
database = "none"
preload = []
reserved_concurrency = 1
""", encoding="utf-8")
    with EmulatorProcess(load_scenario(path), tmp_path / "run") as proc:
        client = boto3.client("lambda", endpoint_url=proc.invoke_url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x",
                              config=Config(retries={"total_max_attempts": 1}))

        def call(_: int) -> str:
            try:
                client.invoke(FunctionName="limited", Payload=b'{"sleep_s": 1}')
            except client.exceptions.TooManyRequestsException as exc:
                return str(exc.response.get("Reason"))
            return "ok"

        # WHEN 40 requests arrive together (far more than 10 within a second)
        with ThreadPoolExecutor(40) as pool:
            answers = Counter(pool.map(call, range(40)))
    # THEN boto3 sees 429s with the rate reason beside the concurrency ones
    assert answers["ok"] >= 1
    assert answers["ReservedFunctionInvocationRateLimitExceeded"] >= 10
    assert set(answers) <= {"ok", "ReservedFunctionInvocationRateLimitExceeded",
                            "ReservedFunctionConcurrentInvocationLimitExceeded"}
