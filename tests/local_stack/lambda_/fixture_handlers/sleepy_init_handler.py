"""Init (module import) sleeps ``INIT_SLEEP_S`` seconds: longer than a short init timeout."""

import os
import time

STARTED = time.time()
time.sleep(float(os.environ.get("INIT_SLEEP_S", "1")))


def lambda_handler(event, context):
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis()}
