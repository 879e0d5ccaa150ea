"""What Lambda hands a runtime: variables, ids, Lambda's wording of exits (pure logic)."""

from __future__ import annotations

import base64
import re
import signal

from connstorm.local_stack.lambda_.ids import hex_id, uuid4
from connstorm.local_stack.lambda_.log_stream import end_lines
from connstorm.local_stack.lambda_.runtime_env import (
    client_context_header,
    exit_reason,
    function_environment,
    stream_name,
)
from connstorm.scenario import FunctionConfig


def test_runtime_env_reserved_names_win_and_no_multi_concurrency() -> None:
    fn = FunctionConfig(name="api", handler="m.h", code_dir="/code", memory_mb=256,
                        env={"AWS_REGION": "mars-1", "DB_HOST": "127.0.0.1",
                             "AWS_LAMBDA_MAX_CONCURRENCY": "4"})
    env = function_environment(fn, "eu-west-1", "/rt")
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["DB_HOST"] == "127.0.0.1"
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["LAMBDA_TASK_ROOT"] == "/code"
    assert env["_HANDLER"] == "m.h"


def test_runtime_env_ids_and_stream_name_have_lambdas_shapes() -> None:
    env_id = hex_id()
    assert re.fullmatch(r"[0-9a-f]{32}", env_id)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", stream_name(env_id))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        uuid4())


def test_runtime_env_exit_reason_uses_lambdas_wording() -> None:
    assert exit_reason(-signal.SIGKILL) == "signal: killed"
    assert exit_reason(-signal.SIGSEGV) == "signal: segmentation fault"
    assert exit_reason(1) == "exit status 1"


def test_runtime_env_client_context_accepts_json_or_base64() -> None:
    raw = '{"custom": {"a": 1}}'
    assert client_context_header(raw) == '{"custom":{"a":1}}'
    assert client_context_header(base64.b64encode(raw.encode()).decode()) == '{"custom":{"a":1}}'
    assert client_context_header("not json") is None
    assert client_context_header(None) is None


def test_log_stream_report_has_init_duration_and_status() -> None:
    text = end_lines("rid", duration_ms=1.2, memory_mb=128, max_memory_mb=40, init_ms=9.5,
                     status="timeout", error_type="Sandbox.Timedout")
    assert text.startswith("END RequestId: rid\nREPORT RequestId: rid\tDuration: 1.20 ms\t"
                           "Billed Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\t"
                           "Init Duration: 9.50 ms\tStatus: timeout\tError Type: Sandbox.Timedout")
