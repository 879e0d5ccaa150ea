"""A handler written the way users write them: aws-lambda-powertools resolvers.

REST (payload 1.0) and HTTP API (payload 2.0) events both route through it, so a
test proves the emulator's events work with the library real handlers use.
"""

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, APIGatewayRestResolver

# The front serves both versions side by side, under /v1 (REST) and /v2 (HTTP API).
rest = APIGatewayRestResolver(strip_prefixes=["/v1"])
http = APIGatewayHttpResolver(strip_prefixes=["/v2"])


def _item(app, item_id):
    ev = app.current_event
    return {"id": item_id, "q": ev.query_string_parameters, "method": ev.http_method,
            "body": ev.json_body if ev.body else None, "path": ev.path}


@rest.route("/pt/items/<item_id>", method=["GET", "POST"])
def rest_item(item_id):
    return _item(rest, item_id)


@http.route("/pt/items/<item_id>", method=["GET", "POST"])
def http_item(item_id):
    out = _item(http, item_id)
    out["cookies"] = http.current_event.cookies
    return out


def lambda_handler(event, context):
    app = http if event.get("version") == "2.0" else rest
    return app.resolve(event, context)
