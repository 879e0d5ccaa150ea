"""One module-level PostgreSQL connection per environment (application_name carries the
environment id), and a thread that leaves a mark in FIXTURE_MARKS when the environment
gets SIGTERM: a reaped environment must vanish without one, as a Lambda function without
extensions does.

A thread waits for the signal (``sigwait``, SIGTERM blocked everywhere else) because a
Python handler would only run once awslambdaric's C client returned to the interpreter,
which it does not while it waits for the next event.
"""

import os
import signal
import threading

import psycopg

_stream = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
ENV_ID = _stream.rsplit("]", 1)[-1]
CONN = psycopg.connect(os.environ["FIXTURE_DSN"], application_name=f"env-{ENV_ID}",
                       autocommit=True)


def _wait_for_sigterm():
    signal.sigwait({signal.SIGTERM})
    with open(os.path.join(os.environ["FIXTURE_MARKS"], f"{ENV_ID}.sigterm"), "w") as fh:
        fh.write("SIGTERM\n")
    os._exit(0)


signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
threading.Thread(target=_wait_for_sigterm, daemon=True).start()


def lambda_handler(event, context):
    row = CONN.execute("select pg_backend_pid()").fetchone()
    return {"backend_pid": row[0], "env_id": ENV_ID, "pid": os.getpid()}
