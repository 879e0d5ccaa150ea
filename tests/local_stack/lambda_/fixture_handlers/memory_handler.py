"""Holds ``mb`` MB of touched memory for ``hold_s`` seconds, then says how much."""

import time

KEPT = []


def lambda_handler(event, context):
    block = b"x" * (int(event.get("mb", 0)) * 1024 * 1024)  # written, so resident
    time.sleep(float(event.get("hold_s", 0)))
    KEPT.append(len(block))  # module state: a warm environment keeps its memory
    return {"held_mb": len(block) // (1024 * 1024), "memory_mb": context.memory_limit_in_mb}
