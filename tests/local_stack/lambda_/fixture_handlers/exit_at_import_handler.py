"""Dies during Init without reporting an init error (exit status 2)."""

import os

os._exit(2)


def lambda_handler(event, context):
    return "unreachable"
