"""Raises: the runtime posts /error and the environment stays warm."""

CALLS = 0


class BoomError(Exception):
    pass


def lambda_handler(event, context):
    global CALLS
    CALLS += 1
    if event.get("ok"):
        return {"calls": CALLS}
    raise BoomError(f"boom number {CALLS}")
