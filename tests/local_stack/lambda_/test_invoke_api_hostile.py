"""Hostile input to the Invoke API: every answer is one AWS gives, botocore reads each.

Property-based (bounded by :data:`hostile.FUZZ`) over the REAL emulator, both
as raw HTTP (names, ARNs, qualifiers, headers and bodies no SDK would send)
and through boto3. The oracle is AWS's contract (guide: lambda.md, botocore's
service model): 200/202/204 for an invocation, otherwise one of the documented
error codes in ``x-amzn-ErrorType`` with a JSON ``{"Type", "message"}`` body
that botocore's own rest-json parser turns into the same code. Never a 500.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import botocore.exceptions
import botocore.parsers
import botocore.session
import pytest
from botocore.config import Config
from hypothesis import given
from hypothesis import strategies as st

from connstorm.local_stack.lambda_.config import ACCOUNT_ID
from tests.local_stack.lambda_.hostile import (
    FUZZ,
    Answer,
    Target,
    alive_health,
    emulator_under_attack,
    exchange,
    parse,
    request_bytes,
)

pytestmark = pytest.mark.slow

#: What Invoke may answer with, by AWS's documentation and botocore's model.
ERROR_CODES = {"ValidationException", "InvalidParameterValueException",
               "InvalidRequestContentException", "ResourceNotFoundException",
               "RequestTooLargeException"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
names = st.one_of(
    st.just("proxy"), st.just("nope"),
    st.just(f"{ACCOUNT_ID}:function:proxy"),
    st.just(f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:proxy"),
    st.just(f"arn:aws:lambda:eu-west-1:{ACCOUNT_ID}:function:proxy"),
    st.sampled_from(["proxy:$LATEST", "proxy:1", "proxy:", ":proxy", "proxy::x"]),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,70}\Z"),
    st.text(min_size=1, max_size=30).filter(lambda t: "/" not in t),
)
#: Header values HTTP allows (no control characters: those are a 400 of the HTTP
#: layer, covered by test_front_hostile's malformed requests); non-ASCII included.
field_text = st.text(st.characters(min_codepoint=0x20, exclude_characters="\x7f",
                                   exclude_categories=("Cs", "Cc")), max_size=12)
optional = st.one_of(st.none(), field_text)
bodies = st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=300),
                   st.just(b""), st.just(b"   "))
contexts = st.one_of(st.none(), st.just(base64.b64encode(b'{"custom": {"a": 1}}').decode()),
                     st.just(base64.b64encode(b"not json").decode()), field_text)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with emulator_under_attack(tmp_path_factory.mktemp("invoke-hostile")) as emulator:
        yield emulator
        assert alive_health(emulator)
        assert emulator.tracebacks() == []


@pytest.fixture(scope="module")
def invoke_parser() -> tuple[Any, Any]:
    """botocore's own rest-json parser and the Invoke operation's model."""
    model = botocore.session.get_session().get_service_model("lambda")
    return botocore.parsers.create_parser("rest-json"), model.operation_model("Invoke")


def _botocore_code(parser_and_op: tuple[Any, Any], answer: Answer) -> str | None:
    parser, op = parser_and_op
    parsed = parser.parse({"status_code": answer.status, "headers": answer.headers,
                           "body": answer.body}, op.output_shape)
    code = parsed.get("Error", {}).get("Code")
    return str(code) if code else None


def _header(name: str, value: str | None) -> list[tuple[bytes, bytes]]:
    return [] if value is None else [(name.encode(), value.encode("utf-8"))]


@FUZZ
@given(name=names, qualifier=optional, kind=st.one_of(
           optional, st.sampled_from(["RequestResponse", "Event", "DryRun"])),
       log_type=st.one_of(optional, st.sampled_from(["None", "Tail"])),
       context=contexts, body=bodies)
def test_invoke_api_any_request_gets_an_aws_answer(
        target: Target, invoke_parser: tuple[Any, Any], name: str, qualifier: str | None,
        kind: str | None, log_type: str | None, context: str | None, body: bytes) -> None:
    path = f"/2015-03-31/functions/{quote(name, safe='')}/invocations"
    if qualifier is not None:
        path += f"?Qualifier={quote(qualifier, safe='')}"
    headers = (_header("X-Amz-Invocation-Type", kind) + _header("X-Amz-Log-Type", log_type)
               + _header("X-Amz-Client-Context", context))
    answer = parse(exchange(target.port, request_bytes(b"POST", path.encode(), headers, body)))
    assert answer is not None
    if answer.status < 300:
        # AWS answers 200 RequestResponse, 202 Event, 204 DryRun
        expected = {"Event": 202, "DryRun": 204}.get(kind or "", 200)
        assert answer.status == expected, answer
        assert _botocore_code(invoke_parser, answer) is None
        if answer.status == 200 and "x-amz-function-error" in answer.headers:
            assert answer.headers["x-amz-function-error"] == "Unhandled"
            assert {"errorType", "errorMessage"} <= set(answer.json())
        if answer.status == 200 and log_type == "Tail":
            base64.b64decode(answer.headers["x-amz-log-result"], validate=True)
        return
    code = answer.headers.get("x-amzn-errortype")
    assert answer.status in (400, 404, 413), answer
    assert code in ERROR_CODES, answer
    doc = answer.json()
    assert doc["Type"] == "User"
    assert isinstance(doc["message"], str)
    assert _botocore_code(invoke_parser, answer) == code


@FUZZ
@given(name=st.from_regex(r"\A[A-Za-z0-9_:-]{1,80}\Z"), payload=bodies,
       kind=st.sampled_from(["RequestResponse", "Event", "DryRun"]))
def test_invoke_api_boto3_sees_success_or_a_modelled_error(
        target: Target, name: str, payload: bytes, kind: str) -> None:
    client = _client(target)
    failure: dict[str, Any] | None = None
    try:
        response = client.invoke(FunctionName=name, Payload=payload, InvocationType=kind)
    except botocore.exceptions.ClientError as exc:
        failure = exc.response
    if failure is not None:
        assert failure["Error"]["Code"] in ERROR_CODES, failure
        assert failure["ResponseMetadata"]["HTTPStatusCode"] in (400, 404, 413)
        return
    assert response["StatusCode"] == {"Event": 202, "DryRun": 204}.get(kind, 200)


def test_invoke_api_oversize_payload_is_request_too_large(target: Target) -> None:
    client = _client(target)
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="proxy", Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')
    assert alive_health(target)


def _client(target: Target) -> Any:
    return boto3.client("lambda", endpoint_url=target.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}, read_timeout=30))
