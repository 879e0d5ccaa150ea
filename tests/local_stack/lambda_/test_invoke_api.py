"""The Invoke API through real boto3 (retries off), against a real aiohttp server.

Outcomes come from a scripted Invoker so each answer is shown exactly; invocations
of real awslambdaric environments through boto3 are in ``test_invoke_api_emulator.py``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aiohttp import web
from botocore.config import Config
from botocore.exceptions import ClientError

from local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from local_stack.lambda_.invoke_api import (
    LOG_TAIL_BYTES,
    MAX_ASYNC_PAYLOAD_BYTES,
    MAX_SYNC_PAYLOAD_BYTES,
    InvokeApiError,
    add_invoke_routes,
    log_result,
    parse_function_name,
)
from tests.local_stack.lambda_.http_harness import ScriptedInvoker, returns, served

LONG_LOG = "".join(f"line {i}\n" for i in range(2000))


async def _echo(request: InvocationRequest) -> InvocationResult:
    doc = {"event": json.loads(request.payload), "type": request.invocation_type,
           "tail": request.log_tail, "client_context": request.client_context}
    return InvocationResult(request_id=str(uuid.uuid4()), outcome="success",
                            payload=json.dumps(doc).encode(), log_tail="START\nEND\n")


FUNCTIONS = {
    "echo": _echo,
    "fails": returns(b'{"errorMessage": "boom", "errorType": "ValueError"}',
                     outcome="function_error", error_type="ValueError", log_tail=LONG_LOG),
    "times_out": returns(b"", outcome="timeout", error_type="Sandbox.Timedout",
                         error_message="RequestId: x Error: Task timed out after 1.00 seconds"),
    "throttled": returns(b"", outcome="throttled",
                         throttle_reason="ReservedFunctionConcurrentInvocationLimitExceeded"),
}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Any, ScriptedInvoker, str]]:
    invoker = ScriptedInvoker(dict(FUNCTIONS))
    app = web.Application()
    add_invoke_routes(app, invoker)
    with served(app) as url:
        client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test",
                              config=Config(retries={"total_max_attempts": 1},
                                            read_timeout=30))
        yield client, invoker, url


def test_invoke_request_response_returns_payload(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    out = client.invoke(FunctionName="echo", Payload=b'{"a": 1}')
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in out
    doc = json.loads(out["Payload"].read())
    assert doc == {"event": {"a": 1}, "type": "RequestResponse", "tail": False,
                   "client_context": None}
    assert out["ResponseMetadata"]["RequestId"]


def test_invoke_empty_payload_is_an_empty_object(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    assert json.loads(client.invoke(FunctionName="echo")["Payload"].read())["event"] == {}


@pytest.mark.parametrize("name", [
    "echo",
    "echo:$LATEST",
    "123456789012:function:echo",
    "arn:aws:lambda:us-east-1:123456789012:function:echo",
    "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST",
])
def test_invoke_function_by_name_partial_or_full_arn(server: tuple[Any, Any, str],
                                                     name: str) -> None:
    client, _, _ = server
    assert client.invoke(FunctionName=name, Payload=b"{}")["StatusCode"] == 200
    assert client.invoke(FunctionName=name, Payload=b"{}", Qualifier="$LATEST")[
        "StatusCode"] == 200


@pytest.mark.parametrize(("name", "qualifier"), [
    ("nope", None),
    ("echo", "7"),
    ("echo:prod", None),
    ("arn:aws:lambda:eu-west-1:123456789012:function:echo", None),
    ("999999999999:function:echo", None),
])
def test_invoke_unknown_function_is_resource_not_found(server: tuple[Any, Any, str],
                                                      name: str, qualifier: str | None) -> None:
    client, _, _ = server
    kwargs: dict[str, Any] = {"FunctionName": name, "Payload": b"{}"}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.invoke(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in info.value.response["Error"]["Message"]


def test_invoke_function_error_is_unhandled_with_error_body(
        server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    out = client.invoke(FunctionName="fails", Payload=b"{}")
    assert out["StatusCode"] == 200
    assert out["FunctionError"] == "Unhandled"
    assert json.loads(out["Payload"].read()) == {"errorMessage": "boom",
                                                 "errorType": "ValueError"}


def test_invoke_timeout_without_payload_builds_the_error_body(
        server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    out = client.invoke(FunctionName="times_out", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]


def test_invoke_log_tail_is_base64_of_the_last_4_kb(server: tuple[Any, Any, str]) -> None:
    client, invoker, _ = server
    out = client.invoke(FunctionName="fails", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(out["LogResult"])
    assert len(log) == LOG_TAIL_BYTES
    assert LONG_LOG.encode().endswith(log)
    assert invoker.requests[-1].log_tail is True
    assert "LogResult" not in client.invoke(FunctionName="fails", Payload=b"{}")


def test_invoke_throttle_is_429_with_reason_through_boto3(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    with pytest.raises(client.exceptions.TooManyRequestsException) as info:
        client.invoke(FunctionName="throttled", Payload=b"{}")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["Type"] == "User"
    assert response["Error"]["Message"] == "Rate Exceeded."


def test_invoke_event_is_202_and_runs_in_background(server: tuple[Any, Any, str]) -> None:
    client, invoker, _ = server
    before = len(invoker.requests)
    out = client.invoke(FunctionName="echo", InvocationType="Event", Payload=b'{"e": 1}')
    assert out["StatusCode"] == 202
    assert out["Payload"].read() == b""
    # The event reaches the function (scripted: it runs at once).
    for _ in range(100):
        if len(invoker.requests) > before:
            break
        time.sleep(0.01)
    assert invoker.requests[-1].invocation_type == "Event"


def test_invoke_event_to_throttled_function_is_still_202(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    assert client.invoke(FunctionName="throttled", InvocationType="Event")["StatusCode"] == 202


def test_invoke_dry_run_is_204_and_does_not_invoke(server: tuple[Any, Any, str]) -> None:
    client, invoker, _ = server
    before = len(invoker.requests)
    assert client.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    assert len(invoker.requests) == before
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", InvocationType="DryRun")


def test_invoke_invalid_json_is_400_invalid_request_content(
        server: tuple[Any, Any, str]) -> None:
    client, invoker, _ = server
    before = len(invoker.requests)
    with pytest.raises(client.exceptions.InvalidRequestContentException) as info:
        client.invoke(FunctionName="echo", Payload=b"{not json")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(invoker.requests) == before


def test_invoke_over_6_mb_is_413_request_too_large(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    big = b'"' + b"x" * MAX_SYNC_PAYLOAD_BYTES + b'"'
    with pytest.raises(client.exceptions.RequestTooLargeException) as info:
        client.invoke(FunctionName="echo", Payload=big)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_invoke_event_over_1_mb_is_413(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    big = b'"' + b"x" * MAX_ASYNC_PAYLOAD_BYTES + b'"'
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", InvocationType="Event", Payload=big)
    # Under 6 MB synchronously is fine.
    assert client.invoke(FunctionName="echo", Payload=big)["StatusCode"] == 200


def test_invoke_client_context_is_decoded_for_the_runtime(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out = client.invoke(FunctionName="echo", ClientContext=ctx, Payload=b"{}")
    assert json.loads(json.loads(out["Payload"].read())["client_context"]) == {
        "custom": {"k": "v"}}


def test_invoke_bad_client_context_is_400(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    with pytest.raises(ClientError) as info:
        client.invoke(FunctionName="echo", ClientContext="!!not base64", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_invoke_bad_invocation_type_is_400(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    with pytest.raises(ClientError) as info:
        client.invoke(FunctionName="echo", InvocationType="Sometimes", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_invoke_conflicting_qualifiers_are_400(server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    with pytest.raises(ClientError) as info:
        client.invoke(FunctionName="echo:$LATEST", Qualifier="prod", Payload=b"{}")
    assert info.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_parse_function_name_forms() -> None:
    assert parse_function_name("api").name == "api"
    assert parse_function_name("api:live").qualifier == "live"
    assert parse_function_name("api", "$LATEST").qualifier == "$LATEST"
    ref = parse_function_name("arn:aws:lambda:eu-west-1:000000000001:function:f:3",
                              region="eu-west-1", account_id="000000000001")
    assert (ref.name, ref.qualifier) == ("f", "3")
    with pytest.raises(InvokeApiError) as info:
        parse_function_name("bad name!")
    assert info.value.status == 400


def test_log_result_keeps_the_last_4_kb() -> None:
    assert base64.b64decode(log_result("abc")) == b"abc"
    assert base64.b64decode(log_result(None)) == b""
    assert base64.b64decode(log_result("x" * 5000 + "END")).endswith(b"END")
