"""API Gateway proxy handler for the HTTP side's end-to-end tests.

The last path segment picks the behaviour; the default echoes the event back
inside a valid proxy response, so a test sees the event the function received.
"""

import json
import os
import time

CALLS = 0


def lambda_handler(event, context):
    global CALLS
    CALLS += 1
    path = event.get("rawPath") or event.get("path") or ""
    action = path.rsplit("/", 1)[-1]
    if isinstance(event, dict) and event.get("print"):
        print(event["print"])
    if action == "malformed":
        return {"statusCode": 200, "unexpected": True, "body": "x"}
    if action == "plain":
        return {"plain": "json without statusCode"}
    if action == "raise":
        raise ValueError("boom from the handler")
    if action == "exit":
        os._exit(3)
    if action == "sleep":
        time.sleep(float((event.get("queryStringParameters") or {}).get("s", "1")))
    if action == "context":
        custom = getattr(context.client_context, "custom", None)
        return {"client_custom": custom, "function_name": context.function_name}
    if action == "cookies":
        return {"statusCode": 201, "cookies": ["a=1; Path=/", "b=2"], "body": "ok",
                "headers": {"X-Handler": "yes"}}
    if action == "binary":
        return {"statusCode": 200, "isBase64Encoded": True, "body": "iVBORw0KGgo=",
                "headers": {"Content-Type": "image/png"}}
    body = {"event": event, "pid": os.getpid(), "calls": CALLS,
            "request_id": context.aws_request_id}
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body)}
