"""Init (module import) sleeps ``INIT_SLEEP_S`` seconds; ``{"exit": N}`` crashes the runtime."""

import os
import time

time.sleep(float(os.environ.get("INIT_SLEEP_S", "1")))


def lambda_handler(event, context):
    if event.get("exit") is not None:
        os._exit(int(event["exit"]))
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis()}
