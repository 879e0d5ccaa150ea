"""Ids: valid version-4 UUIDs (as Lambda's), distinct, and trace ids in X-Ray's shape."""

from __future__ import annotations

import re
import uuid

from connstorm.local_stack.lambda_.ids import (
    hex_id,
    root_trace_id,
    segment_id,
    short_request_id,
    uuid4,
)


def test_uuid4_is_a_version_4_rfc_4122_uuid_in_canonical_text() -> None:
    ids = [uuid4() for _ in range(5000)]
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    assert len(set(ids)) == len(ids)


def test_hex_id_is_the_32_digit_form() -> None:
    ids = [hex_id() for _ in range(2000)]
    for text in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", text)
        assert uuid.UUID(hex=text).version == 4
    assert len(set(ids)) == len(ids)


def test_trace_and_request_id_shapes() -> None:
    assert re.fullmatch(r"Root=1-6553f100-[0-9a-f]{24}", root_trace_id(1700000000.9))
    assert re.fullmatch(r"[0-9a-f]{16}", segment_id())
    # AWS's own example of an HTTP API request id: JKJaXmPLvHcESHA=
    assert all(re.fullmatch(r"[A-Za-z0-9+/]{15}=", short_request_id()) for _ in range(100))
