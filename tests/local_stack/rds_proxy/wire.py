"""A PostgreSQL client that sends raw protocol messages, for what drivers never send.

The same script runs against PostgreSQL and against the RDS Proxy stand-in, and
the answers are compared: PostgreSQL is the reference for "an error like
PostgreSQL's (or none where PostgreSQL gives none)".
"""

from __future__ import annotations

import asyncio
import struct

from connstorm.local_stack import pg_wire

#: One answer, reduced to what must match: the kind and, for errors, SQLSTATE and
#: message; for data rows, the first column as text.
Answer = tuple[str, str]


def parse(name: str, sql: str) -> bytes:
    """Parse ``sql`` as statement ``name`` (no parameter types given)."""
    return pg_wire.message(b"P", name.encode() + b"\0" + sql.encode() + b"\0\0\0")


def bind(statement: str, *params: str, portal: str = "") -> bytes:
    """Bind text ``params`` to ``statement`` into ``portal``; results in text."""
    body = portal.encode() + b"\0" + statement.encode() + b"\0" + struct.pack("!hh", 0,
                                                                            len(params))
    for value in params:
        raw = value.encode()
        body += struct.pack("!i", len(raw)) + raw
    return pg_wire.message(b"B", body + struct.pack("!h", 0))


def bind_binary(statement: str, *params: bytes) -> bytes:
    """Bind binary-format ``params`` to ``statement`` (unnamed portal)."""
    body = b"\0" + statement.encode() + b"\0" + struct.pack("!hh", 1, 1)
    body += struct.pack("!h", len(params))
    for raw in params:
        body += struct.pack("!i", len(raw)) + raw
    return pg_wire.message(b"B", body + struct.pack("!h", 0))


def describe(name: str) -> bytes:
    """Describe statement ``name``."""
    return pg_wire.message(b"D", b"S" + name.encode() + b"\0")


def execute(portal: str = "") -> bytes:
    """Execute ``portal``, all rows."""
    return pg_wire.message(b"E", portal.encode() + b"\0" + struct.pack("!i", 0))


def close(name: str) -> bytes:
    """Close statement ``name``."""
    return pg_wire.message(b"C", b"S" + name.encode() + b"\0")


def query(sql: str) -> bytes:
    """A simple Query."""
    return pg_wire.message(b"Q", sql.encode() + b"\0")


SYNC = pg_wire.message(b"S", b"")


def _answer(kind: bytes, payload: bytes) -> Answer:
    if kind in (b"E", b"N"):
        fields = pg_wire.error_fields(payload)
        return kind.decode(), f"{fields.get('C')} {fields.get('M')}"
    if kind == b"D":
        (count,) = struct.unpack_from("!h", payload)
        if count:
            (size,) = struct.unpack_from("!i", payload, 2)
            return "D", payload[6:6 + size].decode() if size >= 0 else "NULL"
        return "D", ""
    if kind == b"Z":
        return "Z", payload.decode()
    return kind.decode(), ""


class WireClient:
    """One logged-in connection speaking raw messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, user: str, password: str,
                      dbname: str) -> WireClient:
        """Log in and read up to the first ReadyForQuery."""
        reader, writer, _ = await pg_wire.login_upstream(
            host, port, {"user": user, "database": dbname}, password, 10.0)
        client = cls(reader, writer)
        while (await client._read())[0] != b"Z":
            pass
        return client

    async def _read(self) -> tuple[bytes, bytes]:
        return await asyncio.wait_for(pg_wire.read_message(self.reader), 30)

    async def run(self, *messages: bytes) -> list[Answer]:
        """Send ``messages``; the answers up to the ReadyForQuery of each Sync/Query."""
        data = b"".join(messages)
        expected = sum(1 for m in messages if m[:1] in (b"S", b"Q"))
        self.writer.write(data)
        await self.writer.drain()
        answers: list[Answer] = []
        while expected:
            kind, payload = await self._read()
            answers.append(_answer(kind, payload))
            expected -= kind == b"Z"
        return answers

    async def close(self) -> None:
        """Terminate and close."""
        self.writer.write(pg_wire.message(b"X", b""))
        self.writer.close()
