"""The Invoke API through real boto3 (retries off).

The first part invokes REAL awslambdaric environments in the emulator server
process connstorm starts. The second uses a scripted Invoker (pure-logic
scaffolding) only for answers a real function cannot produce on demand.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from connstorm.local_stack.lambda_.front import Front
from connstorm.local_stack.lambda_.invocation import InvocationRequest, InvocationResult
from connstorm.local_stack.lambda_.invoke_api import (
    LOG_TAIL_BYTES,
    MAX_ASYNC_PAYLOAD_BYTES,
    MAX_SYNC_PAYLOAD_BYTES,
    InvokeApi,
    InvokeApiError,
    log_result,
    parse_function_name,
)
from connstorm.local_stack.lambda_.server import Routes
from tests.local_stack.lambda_.http_harness import (
    ScriptedInvoker,
    emulator_config,
    emulator_server,
    get_stats,
    http_function,
    returns,
    served,
    wait_for,
)


def _client(url: str) -> Any:
    return boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=30))


def _payload(action: str, **extra: Any) -> bytes:
    # proxy_handler picks its behaviour from the last segment of the path.
    return json.dumps({"rawPath": f"/{action}", **extra}).encode()


# ---------------------------------------------------------------- the real emulator


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    run = tmp_path_factory.mktemp("invoke-emulator")
    functions = [
        http_function("proxy", "proxy_handler.lambda_handler", timeout_s=10),
        http_function("limited", "proxy_handler.lambda_handler", reserved_concurrency=1),
        http_function("short", "proxy_handler.lambda_handler", timeout_s=1),
    ]
    # A region other than boto3's default: ARNs must follow the emulator's own.
    config = emulator_config(functions, [], run, region="eu-west-1")
    with emulator_server(config, run) as url:
        yield _client(url), url


def test_invoke_real_request_response(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = client.invoke(FunctionName="proxy", Payload=_payload("plain"))
    assert out["StatusCode"] == 200
    assert out["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in out
    assert json.loads(out["Payload"].read()) == {"plain": "json without statusCode"}


def test_invoke_real_empty_payload_is_an_empty_object(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = json.loads(client.invoke(FunctionName="proxy")["Payload"].read())
    assert json.loads(out["body"])["event"] == {}


@pytest.mark.parametrize("name", [
    "proxy",
    "proxy:$LATEST",
    "123456789012:function:proxy",
    "arn:aws:lambda:eu-west-1:123456789012:function:proxy",
    "arn:aws:lambda:eu-west-1:123456789012:function:proxy:$LATEST",
])
def test_invoke_real_function_by_name_partial_or_full_arn(emulator: tuple[Any, str],
                                                          name: str) -> None:
    client, _ = emulator
    assert client.invoke(FunctionName=name, Payload=_payload("plain"))["StatusCode"] == 200
    out = client.invoke(FunctionName=name, Payload=_payload("plain"), Qualifier="$LATEST")
    assert out["StatusCode"] == 200


@pytest.mark.parametrize(("name", "qualifier"), [
    ("nope", None),
    ("proxy", "7"),
    ("proxy:prod", None),
    ("arn:aws:lambda:us-east-1:123456789012:function:proxy", None),
    ("999999999999:function:proxy", None),
])
def test_invoke_real_unknown_function_is_resource_not_found(
        emulator: tuple[Any, str], name: str, qualifier: str | None) -> None:
    client, _ = emulator
    kwargs: dict[str, Any] = {"FunctionName": name, "Payload": b"{}"}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.invoke(**kwargs)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    message = info.value.response["Error"]["Message"]
    assert message.startswith("Function not found: ")
    if ":" not in name:
        assert message.startswith("Function not found: arn:aws:lambda:eu-west-1:123456789012:")


def test_invoke_real_handler_exception_is_unhandled(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = client.invoke(FunctionName="proxy", Payload=_payload("raise"))
    assert out["StatusCode"] == 200
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "boom from the handler"


def test_invoke_real_crash_is_runtime_exit_error(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = client.invoke(FunctionName="proxy", Payload=_payload("exit"))
    assert out["FunctionError"] == "Unhandled"
    assert json.loads(out["Payload"].read())["errorType"] == "Runtime.ExitError"


@pytest.mark.slow
def test_invoke_real_timeout_is_sandbox_timedout(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = client.invoke(FunctionName="short",
                        Payload=_payload("sleep", queryStringParameters={"s": "3"}))
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")


def test_invoke_real_log_tail_is_the_last_4_kb_of_this_invocation(
        emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    out = client.invoke(FunctionName="proxy", LogType="Tail",
                        Payload=_payload("plain", print="hello-from-handler"))
    log = base64.b64decode(out["LogResult"]).decode()
    request_id = out["ResponseMetadata"]["RequestId"]
    assert "hello-from-handler" in log
    assert f"RequestId: {request_id}" in log
    noisy = client.invoke(FunctionName="proxy", LogType="Tail",
                          Payload=_payload("plain", print="z" * 6000 + "\nmarker"))
    tail = base64.b64decode(noisy["LogResult"])
    assert len(tail) == LOG_TAIL_BYTES
    assert b"marker" in tail
    assert "LogResult" not in client.invoke(FunctionName="proxy", Payload=_payload("plain"))


@pytest.mark.slow
def test_invoke_real_at_concurrency_limit_is_429_with_reason(emulator: tuple[Any, str]) -> None:
    client, url = emulator
    # GIVEN the one environment "limited" may have is busy
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.invoke, FunctionName="limited",
                            Payload=_payload("sleep", queryStringParameters={"s": "2"}))
        wait_for(lambda: get_stats(url)["functions"]["limited"]["concurrency"] == 1,
                 what="the first invocation to hold the environment")
        # WHEN another comes THEN boto3 raises TooManyRequestsException with the Reason
        with pytest.raises(client.exceptions.TooManyRequestsException) as info:
            client.invoke(FunctionName="limited", Payload=_payload("plain"))
        assert first.result()["StatusCode"] == 200
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert response["Error"]["Code"] == "TooManyRequestsException"
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "TooManyRequestsException")


def test_invoke_real_event_is_202_and_runs(emulator: tuple[Any, str]) -> None:
    client, url = emulator
    before = get_stats(url)["functions"]["proxy"]["invocations"]
    out = client.invoke(FunctionName="proxy", InvocationType="Event", Payload=_payload("plain"))
    assert out["StatusCode"] == 202
    assert out["Payload"].read() == b""
    wait_for(lambda: get_stats(url)["functions"]["proxy"]["invocations"] > before,
             what="the queued event to run")


def test_invoke_real_dry_run_is_204_and_runs_nothing(emulator: tuple[Any, str]) -> None:
    client, url = emulator
    before = get_stats(url)["functions"]["proxy"]["invocations"]
    assert client.invoke(FunctionName="proxy", InvocationType="DryRun")["StatusCode"] == 204
    assert get_stats(url)["functions"]["proxy"]["invocations"] == before
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="nope", InvocationType="DryRun")


def test_invoke_real_invalid_json_is_400(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    with pytest.raises(client.exceptions.InvalidRequestContentException) as info:
        client.invoke(FunctionName="proxy", Payload=b"{not json")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invoke_real_payload_limits_are_413(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    big = b'"' + b"x" * MAX_SYNC_PAYLOAD_BYTES + b'"'
    with pytest.raises(client.exceptions.RequestTooLargeException) as info:
        client.invoke(FunctionName="proxy", Payload=big)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    event_big = b'"' + b"x" * MAX_ASYNC_PAYLOAD_BYTES + b'"'
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="proxy", InvocationType="Event", Payload=event_big)


def test_invoke_real_client_context_reaches_the_handler(emulator: tuple[Any, str]) -> None:
    client, _ = emulator
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out = client.invoke(FunctionName="proxy", ClientContext=ctx, Payload=_payload("context"))
    assert json.loads(out["Payload"].read()) == {"client_custom": {"k": "v"},
                                                 "function_name": "proxy"}


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"ClientContext": "!!not base64"}, "InvalidParameterValueException"),
    ({"InvocationType": "Sometimes"}, "InvalidParameterValueException"),
    ({"LogType": "Everything"}, "InvalidParameterValueException"),
    ({"FunctionName": "proxy:$LATEST", "Qualifier": "prod"}, "InvalidParameterValueException"),
    ({"FunctionName": "bad name!"}, "ValidationException"),
])
def test_invoke_real_bad_parameters_are_400(emulator: tuple[Any, str], kwargs: dict[str, Any],
                                            code: str) -> None:
    client, _ = emulator
    call: dict[str, Any] = {"FunctionName": "proxy", "Payload": b"{}", **kwargs}
    with pytest.raises(ClientError) as info:
        client.invoke(**call)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ---------------------------------------------------------------- scripted outcomes


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
    with served(Routes(InvokeApi(invoker), Front(invoker, []), {})) as url:
        client = boto3.client("lambda", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test",
                              config=Config(retries={"total_max_attempts": 1},
                                            read_timeout=30))
        yield client, invoker, url


def test_invoke_scripted_timeout_without_payload_builds_the_error_body(
        server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    out = client.invoke(FunctionName="times_out", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]


def test_invoke_scripted_log_tail_is_base64_of_the_last_4_kb(
        server: tuple[Any, Any, str]) -> None:
    client, invoker, _ = server
    out = client.invoke(FunctionName="fails", Payload=b"{}", LogType="Tail")
    log = base64.b64decode(out["LogResult"])
    assert len(log) == LOG_TAIL_BYTES
    assert LONG_LOG.encode().endswith(log)
    assert invoker.requests[-1].log_tail is True
    assert "LogResult" not in client.invoke(FunctionName="fails", Payload=b"{}")


def test_invoke_scripted_event_to_throttled_function_is_still_202(
        server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    assert client.invoke(FunctionName="throttled", InvocationType="Event")["StatusCode"] == 202


def test_invoke_scripted_client_context_is_decoded_for_the_runtime(
        server: tuple[Any, Any, str]) -> None:
    client, _, _ = server
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    out = client.invoke(FunctionName="echo", ClientContext=ctx, Payload=b"{}")
    assert json.loads(json.loads(out["Payload"].read())["client_context"]) == {
        "custom": {"k": "v"}}


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
