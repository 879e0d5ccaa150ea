"""The environment probe: imports psycopg and opens one connection at Init, as the
module_level pattern does, then holds its environment busy for ``event["sleep_s"]``.
``benchmarks/environment_costs.py`` measures environments with it."""

import os
import time

import psycopg

CONN = psycopg.connect(os.environ["PROBE_DSN"], autocommit=True,
                       application_name="connstorm-probe")


def lambda_handler(event, context):
    time.sleep(float(event.get("sleep_s", 0)))
    return {"ok": True}
