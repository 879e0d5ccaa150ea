"""Init (module import) takes longer than the test's init timeout."""

import time

time.sleep(30)


def lambda_handler(event, context):
    return "unreachable"
