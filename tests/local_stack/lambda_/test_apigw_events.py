"""Events of both payload versions, checked against aws-lambda-powertools' own parsers.

Powertools is what real handlers use to read these events: its pydantic models
(every required field, types, allowed methods), its data classes, and its
resolvers (routing on path and method, path parameters, query, headers, cookies,
base64 bodies). An event they read correctly is an event a real handler reads.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
)
from aws_lambda_powertools.utilities.data_classes import (
    APIGatewayProxyEvent,
    APIGatewayProxyEventV2,
)
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
)

from connstorm.local_stack.lambda_.apigw_events import (
    ApiContext,
    HttpRequest,
    encode_body,
    http_event,
    request_time,
    rest_event,
)
from connstorm.local_stack.lambda_.apigw_responses import parse_http_response, parse_rest_response

NOW_S = 1_700_000_000.25
HEADERS = [
    ("Host", "127.0.0.1:8080"),
    ("User-Agent", "curl/8.0"),
    ("Accept", "text/plain"),
    ("Accept", "application/json"),
    ("Cookie", "a=1; b=2"),
    ("X-Custom", "v"),
]


def _request(**kw: Any) -> HttpRequest:
    base: dict[str, Any] = {
        "method": "GET", "path": "/items/42", "query_string": "q=x&tag=a&tag=b&empty=",
        "headers": HEADERS, "body": b"", "source_ip": "127.0.0.1", "port": 8080,
    }
    base.update(kw)
    return HttpRequest(**base)


def _context() -> Any:
    return SimpleNamespace(aws_request_id="r", function_name="f")


def test_rest_event_has_every_field_and_parses_with_powertools_model() -> None:
    ev = rest_event(_request(), "/items/{id}", {"id": "42"}, request_id="rid-1", now_s=NOW_S)
    model = APIGatewayProxyEventModel.model_validate(ev)
    assert model.resource == "/items/{id}"
    assert model.path == "/items/42"
    assert model.httpMethod == "GET"
    assert model.pathParameters == {"id": "42"}
    assert model.queryStringParameters == {"q": "x", "tag": "b", "empty": ""}
    assert model.multiValueQueryStringParameters == {"q": ["x"], "tag": ["a", "b"],
                                                     "empty": [""]}
    assert model.headers["Accept"] == "application/json"
    assert model.multiValueHeaders["Accept"] == ["text/plain", "application/json"]
    assert model.headers["Cookie"] == "a=1; b=2"
    assert model.stageVariables is None
    assert model.body is None
    assert model.isBase64Encoded is False
    ctx = model.requestContext
    assert (ctx.accountId, ctx.apiId, ctx.stage) == ("123456789012", "connstorm0", "prod")
    assert ctx.requestId == "rid-1"
    assert ctx.resourcePath == "/items/{id}"
    assert ctx.httpMethod == "GET"
    assert ctx.protocol == "HTTP/1.1"
    assert ctx.requestTime == "14/Nov/2023:22:13:20 +0000"
    assert int(ctx.requestTimeEpoch.timestamp() * 1000) == 1_700_000_000_250
    assert ctx.domainName == "127.0.0.1:8080"
    assert str(ctx.identity.sourceIp).startswith("127.0.0.1")
    assert ctx.identity.userAgent == "curl/8.0"
    assert len(ctx.resourceId or "") == 6


def test_rest_event_adds_api_gateway_forwarding_headers() -> None:
    ev = rest_event(_request(headers=[*HEADERS, ("X-Forwarded-For", "10.0.0.9")]), "/x", {},
                    now_s=NOW_S)
    assert ev["headers"]["X-Forwarded-For"] == "10.0.0.9, 127.0.0.1"
    assert ev["headers"]["X-Forwarded-Port"] == "8080"
    assert ev["headers"]["X-Forwarded-Proto"] == "http"
    assert ev["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-6553f100-")
    assert ev["multiValueHeaders"]["X-Forwarded-For"] == ["10.0.0.9, 127.0.0.1"]


def test_rest_event_empty_fields_are_null() -> None:
    ev = rest_event(_request(query_string="", path="/health"), "/health", {})
    assert ev["queryStringParameters"] is None
    assert ev["multiValueQueryStringParameters"] is None
    assert ev["pathParameters"] is None
    assert ev["stageVariables"] is None


def test_http_event_has_every_field_and_parses_with_powertools_model() -> None:
    ev = http_event(_request(method="POST", body=b'{"n": 1}',
                             headers=[*HEADERS, ("Content-Type", "application/json")]),
                    "POST /items/{id}", {"id": "42"}, request_id="abc=", now_s=NOW_S)
    model = APIGatewayProxyEventV2Model.model_validate(ev)
    assert model.version == "2.0"
    assert model.routeKey == "POST /items/{id}"
    assert model.rawPath == "/items/42"
    assert model.rawQueryString == "q=x&tag=a&tag=b&empty="
    assert model.cookies == ["a=1", "b=2"]
    assert "cookie" not in model.headers
    assert model.headers["accept"] == "text/plain,application/json"
    assert model.headers["x-custom"] == "v"
    assert all(k == k.lower() for k in model.headers)
    assert model.queryStringParameters == {"q": "x", "tag": "a,b", "empty": ""}
    assert model.pathParameters == {"id": "42"}
    assert model.body == '{"n": 1}'
    assert model.isBase64Encoded is False
    ctx = model.requestContext
    assert (ctx.stage, ctx.routeKey, ctx.requestId) == ("$default", "POST /items/{id}", "abc=")
    assert (ctx.http.method, ctx.http.path, ctx.http.protocol) == ("POST", "/items/42",
                                                                    "HTTP/1.1")
    assert ctx.http.userAgent == "curl/8.0"
    assert ctx.domainName == "127.0.0.1:8080"
    assert ctx.domainPrefix == "127"
    assert ctx.time == "14/Nov/2023:22:13:20 +0000"
    assert int(ctx.timeEpoch.timestamp() * 1000) == 1_700_000_000_250


def test_http_event_leaves_out_empty_fields() -> None:
    ev = http_event(_request(query_string="", headers=[("Host", "h")]), "GET /x", {})
    for key in ("cookies", "queryStringParameters", "pathParameters", "body", "stageVariables"):
        assert key not in ev
    assert ev["rawQueryString"] == ""
    assert ev["requestContext"]["http"]["userAgent"] == ""
    APIGatewayProxyEventV2Model.model_validate(ev)


def test_events_binary_body_is_base64_and_decodes_with_powertools() -> None:
    blob = bytes(range(256))
    for ev in (rest_event(_request(method="POST", body=blob), "/b", {}),
               http_event(_request(method="POST", body=blob), "POST /b", {})):
        assert ev["isBase64Encoded"] is True
        assert base64.b64decode(ev["body"]) == blob
    # UTF-8 text sent as a binary media type travels base64, and powertools decodes it.
    ev = rest_event(_request(method="POST", body="héllo".encode(),
                             headers=[("Content-Type", "application/octet-stream")]), "/b", {})
    assert ev["isBase64Encoded"] is True
    assert APIGatewayProxyEvent(ev).decoded_body == "héllo"


def test_encode_body_text_vs_binary_by_content_type() -> None:
    assert encode_body(b"", None) == (None, False)
    assert encode_body(b"hello", None) == ("hello", False)
    assert encode_body(b"{}", "application/json; charset=utf-8") == ("{}", False)
    assert encode_body(b"a=1", "application/x-www-form-urlencoded") == ("a=1", False)
    assert encode_body(b"<a/>", "application/vnd.x+xml") == ("<a/>", False)
    assert encode_body(b"png", "image/png") == (base64.b64encode(b"png").decode(), True)
    assert encode_body(b"\xff\xfe", "text/plain")[1] is True


def test_request_time_is_locale_free_api_gateway_format() -> None:
    assert request_time(0) == "01/Jan/1970:00:00:00 +0000"


def test_events_data_classes_read_them() -> None:
    rest = APIGatewayProxyEvent(rest_event(_request(), "/items/{id}", {"id": "42"}))
    assert rest.path_parameters == {"id": "42"}
    assert rest.get_query_string_value("q") == "x"
    assert rest.get_multi_value_query_string_values("tag") == ["a", "b"]
    assert rest.headers.get("x-custom") == "v"
    assert rest.request_context.stage == "prod"
    http = APIGatewayProxyEventV2(http_event(_request(), "GET /items/{id}", {"id": "42"}))
    assert http.cookies == ["a=1", "b=2"]
    assert http.get_query_string_value("tag") == "a,b"
    assert http.request_context.http.source_ip == "127.0.0.1"
    assert http.raw_path == "/items/42"


def test_rest_event_routes_in_powertools_rest_resolver_and_response_maps_back() -> None:
    # GIVEN a REST resolver app as a handler would have it
    app = APIGatewayRestResolver()

    @app.get("/items/<item_id>")
    def get_item(item_id: str) -> dict[str, Any]:
        return {"id": item_id, "tags": app.current_event.get_multi_value_query_string_values(
            "tag"), "ua": app.current_event.request_context.identity.user_agent}

    # WHEN it resolves our event, THEN it routes it and our mapping reads its answer
    ev = rest_event(_request(), "/items/{id}", {"id": "42"})
    out = app.resolve(ev, _context())
    mapped = parse_rest_response(json.dumps(out).encode())
    assert mapped.status == 200
    assert json.loads(mapped.body) == {"id": "42", "tags": ["a", "b"], "ua": "curl/8.0"}
    assert ("Content-Type", "application/json") in mapped.headers


def test_http_event_routes_in_powertools_http_resolver_and_response_maps_back() -> None:
    app = APIGatewayHttpResolver()

    @app.post("/items/<item_id>")
    def post_item(item_id: str) -> dict[str, Any]:
        ev = app.current_event
        return {"id": item_id, "body": ev.json_body, "cookies": ev.cookies,
                "b64": ev.decoded_body}

    ev = http_event(_request(method="POST", body=b'{"k": "v"}',
                             headers=[*HEADERS, ("Content-Type", "application/json")]),
                    "POST /items/{id}", {"id": "42"})
    mapped = parse_http_response(json.dumps(app.resolve(ev, _context())).encode())
    assert mapped.status == 200
    assert json.loads(mapped.body) == {"id": "42", "body": {"k": "v"},
                                       "cookies": ["a=1", "b=2"], "b64": '{"k": "v"}'}


def test_http_event_binary_body_decodes_in_resolver() -> None:
    app = APIGatewayHttpResolver()
    blob = b"\x00\x01\xffdata"

    @app.put("/blob")
    def put_blob() -> dict[str, Any]:
        raw = base64.b64decode(app.current_event.body or "")
        return {"n": len(raw), "same": raw == blob,
                "b64": app.current_event.is_base64_encoded}

    ev = http_event(_request(method="PUT", path="/blob", body=blob,
                             headers=[("Content-Type", "application/octet-stream")]),
                    "PUT /blob", {})
    out = json.loads(parse_http_response(json.dumps(app.resolve(ev, _context())).encode()).body)
    assert out == {"n": len(blob), "same": True, "b64": True}


def test_events_use_the_api_context_given() -> None:
    api = ApiContext(api_id="abcdefghij", account_id="000000000001", rest_stage="dev")
    ev = rest_event(_request(), "/x", {}, api=api)
    assert ev["requestContext"]["apiId"] == "abcdefghij"
    assert ev["requestContext"]["accountId"] == "000000000001"
    assert ev["requestContext"]["stage"] == "dev"
