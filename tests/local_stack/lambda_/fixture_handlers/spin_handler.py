"""Burns a fixed amount of CPU (no I/O, no sleep): its Duration is CPU speed."""

import os
import time


def lambda_handler(event, context):
    n = int(event.get("n", 2_000_000)) if isinstance(event, dict) else 2_000_000
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        total += i * i
    cpu = time.process_time()
    return {"wall_ms": (time.perf_counter() - t0) * 1000, "cpu_s": cpu, "pid": os.getpid(),
            "total": total % 7}
