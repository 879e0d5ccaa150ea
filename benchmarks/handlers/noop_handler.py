"""The smallest valid proxy handler: what the warm-invocation benchmark invokes."""

RESPONSE = {"statusCode": 200, "body": "ok"}


def lambda_handler(event, context):
    return RESPONSE
