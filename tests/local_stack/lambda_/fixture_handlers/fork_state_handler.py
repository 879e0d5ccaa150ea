"""Reports what an environment inherited from the zygote: the collector's state, and
a SCRAM secret made by libpq here (its salt comes from OpenSSL's random generator)."""

import gc
import os
import time

from psycopg import pq


def lambda_handler(event, context):
    time.sleep(float(event.get("sleep_s", 0)))
    conn = pq.PGconn.connect_start(b"fixture_no_server=1")
    try:
        secret = conn.encrypt_password(b"pw", b"user", b"scram-sha-256").decode()
    finally:
        conn.finish()
    # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    salt = secret.split("$")[1].split(":")[1]
    return {"pid": os.getpid(), "gc_enabled": gc.isenabled(), "salt": salt}
