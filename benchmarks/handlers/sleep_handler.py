"""Holds its environment busy for ``event["sleep_s"]`` and opens nothing: the scale
benchmark's ``--without-db`` variant, which measures environments alone."""

import time


def lambda_handler(event, context):
    time.sleep(float(event.get("sleep_s", 0)))
    return {"ok": True}
