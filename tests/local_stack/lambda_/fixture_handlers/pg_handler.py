"""Holds one module-level PostgreSQL connection per environment, as the
module_level pattern does; application_name carries the environment id."""

import os
import time

import psycopg

_stream = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
ENV_ID = _stream.rsplit("]", 1)[-1]
CONN = psycopg.connect(os.environ["FIXTURE_DSN"], application_name=f"env-{ENV_ID}",
                       autocommit=True)


def lambda_handler(event, context):
    row = CONN.execute("select pg_backend_pid()").fetchone()
    if event.get("sleep_s"):
        time.sleep(float(event["sleep_s"]))
    return {"backend_pid": row[0], "env_id": ENV_ID, "pid": os.getpid(),
            "init_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")}
