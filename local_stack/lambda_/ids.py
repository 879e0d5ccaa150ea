"""The ids Lambda and API Gateway hand out: request ids, environment ids, trace ids.

They identify; they protect nothing. So one seeded PRNG makes them instead of
``os.urandom`` (a ``getrandom()`` system call per id), and a UUID's text is
formatted directly: ``str(uuid.UUID(int=..., version=4))`` validates and builds
an object first, three times the cost. A load test makes two or three ids per
request, all on the emulator's one event-loop thread.
"""

from __future__ import annotations

import base64
import random

_rng = random.Random()

# Version 4 (bits 76-79 = 0100) and the RFC 4122 variant (bits 62-63 = 10).
_V4_CLEAR = ((1 << 128) - 1) & ~(0xF000 << 64) & ~(0xC000 << 48)
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def hex_id() -> str:
    """A random version-4 UUID as 32 hex digits (an environment id)."""
    return f"{_rng.getrandbits(128) & _V4_CLEAR | _V4_SET:032x}"


def uuid4() -> str:
    """A random version-4 UUID in its usual text form (Lambda's request ids)."""
    h = hex_id()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def short_request_id() -> str:
    """An HTTP API request id (``apigw-requestid``), like ``JKJaXmPLvHcESHA=`` (11 bytes)."""
    return base64.b64encode(_rng.getrandbits(88).to_bytes(11, "big")).decode("ascii")


def root_trace_id(epoch_s: float) -> str:
    """An X-Ray trace id, ``Root=1-<8 hex of the time>-<24 hex>``."""
    return f"Root=1-{int(epoch_s):08x}-{_rng.getrandbits(96):024x}"


def segment_id() -> str:
    """16 hex digits: an X-Ray ``Parent`` segment id."""
    return f"{_rng.getrandbits(64):016x}"


__all__ = ["hex_id", "root_trace_id", "segment_id", "short_request_id", "uuid4"]
