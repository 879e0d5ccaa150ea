"""The PostgreSQL wire protocol, as much as connstorm's two proxies need.

Both the IAM auth stand-in (:mod:`connstorm.local_stack.iam_auth_proxy`) and the RDS Proxy
stand-in (:mod:`connstorm.local_stack.rds_proxy`) sit between a client and the real
server: they read a client's startup packet, answer ``N`` to TLS and GSS
requests (no TLS locally), log in to the server themselves with the app role's
real password (cleartext, MD5 or SCRAM-SHA-256) and then forward messages. That
shared part lives here, so there is one implementation of the framing and of
the upstream login, not two.

Only message *headers* are parsed on the hot path (a kind byte and a length);
the proxies look into the few message bodies they must inspect.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass, field

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
PROTOCOL_3 = 196608
MAX_STARTUP_BYTES = 10_000
#: Longest message either proxy accepts (PostgreSQL's own limit is 1 GB).
MAX_MESSAGE_BYTES = 1 << 26

_LENGTH = struct.Struct("!i")


class ProtocolViolation(ConnectionError):
    """The peer sent something that is not the PostgreSQL protocol; says what."""


class UpstreamRefused(ConnectionError):
    """The server refused the login; :attr:`payload` is its ErrorResponse body."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(error_text(payload))
        self.payload = payload


def message(kind: bytes, payload: bytes) -> bytes:
    """One backend or frontend message: kind byte, int32 length, payload."""
    return kind + _LENGTH.pack(len(payload) + 4) + payload


def error_response(text: str, code: str, severity: str = "FATAL") -> bytes:
    """An ErrorResponse with severity, SQLSTATE and message (what psycopg shows)."""
    sev = severity.encode()
    fields = b"S" + sev + b"\0V" + sev + b"\0C" + code.encode() + b"\0M" + text.encode() + b"\0\0"
    return message(b"E", fields)


def ready_for_query(status: bytes = b"I") -> bytes:
    """ReadyForQuery with a transaction status: ``I`` idle, ``T`` in a block, ``E`` failed."""
    return message(b"Z", status)


def auth_request(code: int, data: bytes = b"") -> bytes:
    """An Authentication* message (0 Ok, 3 cleartext, 10 SASL, 11 continue, 12 final)."""
    return message(b"R", _LENGTH.pack(code) + data)


def error_fields(payload: bytes) -> dict[str, str]:
    """ErrorResponse/NoticeResponse fields by their one-letter code."""
    return {f[:1].decode(): f[1:].decode(errors="replace")
            for f in payload.split(b"\0") if f}


def error_text(payload: bytes) -> str:
    """The message (``M``) field of an ErrorResponse payload."""
    return error_fields(payload).get("M", "unknown error")


def length_of(header: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """The int32 length field at ``offset``."""
    return int(_LENGTH.unpack_from(header, offset)[0])


def bind_parameter(body: bytes | memoryview, index: int) -> tuple[bytes, int, bytes | None]:
    """(statement name, format code, value) of parameter ``index`` (0-based) of a Bind body.

    PostgreSQL "Message Formats", Bind: portal and statement names, then the
    parameter format codes (none: all text; one: for all; else one each), then
    the values (length -1 is NULL). Raises ``ValueError`` for a short or
    malformed body, or an index beyond its parameters.
    """
    raw = bytes(body)
    try:
        portal_end = raw.index(0)
        name_end = raw.index(0, portal_end + 1)
        pos = name_end + 1
        (nfmt,) = struct.unpack_from("!h", raw, pos)
        formats = struct.unpack_from(f"!{nfmt}h", raw, pos + 2) if nfmt > 0 else ()
        pos += 2 + 2 * max(nfmt, 0)
        (nparams,) = struct.unpack_from("!h", raw, pos)
        if not 0 <= index < nparams:
            raise ValueError(f"Bind has {nparams} parameters, not {index + 1}")
        pos += 2
        for _ in range(index):
            (size,) = _LENGTH.unpack_from(raw, pos)
            pos += 4 + max(size, 0)
        (size,) = _LENGTH.unpack_from(raw, pos)
        value = raw[pos + 4:pos + 4 + size] if size >= 0 else None
        if value is not None and len(value) != size:
            raise ValueError("Bind ends inside a parameter")
        fmt = formats[0] if len(formats) == 1 else formats[index] if formats else 0
        return raw[portal_end + 1:name_end], fmt, value
    except (struct.error, IndexError) as exc:
        raise ValueError(f"malformed Bind: {exc}") from None


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One whole message as (kind, payload); for logins, not for the hot path."""
    head = await reader.readexactly(5)
    length = length_of(head, 1)
    if not 4 <= length <= MAX_MESSAGE_BYTES:
        raise ProtocolViolation(f"bad message length {length}")
    return head[:1], await reader.readexactly(length - 4)


@dataclass
class Startup:
    """What a client opened with: its parameters, or a cancel request to forward."""

    params: dict[str, str] = field(default_factory=dict)
    cancel: bytes | None = None
    protocol: int = PROTOCOL_3


async def read_startup(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Startup:
    """Read the startup packet, answering ``N`` to SSL/GSS requests until the real one.

    Raises :class:`ProtocolViolation` for a packet that is not one; a protocol
    other than 3.0 comes back in ``protocol`` for the caller to refuse.
    """
    while True:
        length = length_of(await reader.readexactly(4))
        if not 8 <= length <= MAX_STARTUP_BYTES:
            raise ProtocolViolation(f"invalid startup packet length {length}")
        body = await reader.readexactly(length - 4)
        code = length_of(body)
        if code in (SSL_REQUEST, GSSENC_REQUEST):
            writer.write(b"N")
            await writer.drain()
            continue
        if code == CANCEL_REQUEST:
            return Startup(cancel=_LENGTH.pack(length) + body, protocol=code)
        if code != PROTOCOL_3:
            return Startup(protocol=code)
        items = body[4:].split(b"\0")
        try:
            params = {items[i].decode(): items[i + 1].decode()
                      for i in range(0, len(items) - 1, 2) if items[i]}
        except UnicodeDecodeError:
            raise ProtocolViolation("startup packet is not UTF-8") from None
        return Startup(params=params)


def startup_packet(params: dict[str, str]) -> bytes:
    """A protocol 3.0 StartupMessage carrying ``params``."""
    body = _LENGTH.pack(PROTOCOL_3) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return _LENGTH.pack(len(body) + 4) + body


class ScramClient:
    """The client side of SCRAM-SHA-256 (RFC 7677), as libpq does it."""

    def __init__(self, password: str) -> None:
        self.password = password.encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        """client-first-message (no channel binding)."""
        return ("n,," + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        """client-final-message with the proof, for the server's first message."""
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ProtocolViolation("SCRAM nonce mismatch")
        salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, auth, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        self.server_signature = hmac.digest(server_key, auth, "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def check(self, server_final: bytes) -> None:
        """Verify the server's signature (a server that does not know the password fails)."""
        attrs = dict(item.split("=", 1) for item in server_final.decode().split(","))
        if base64.b64decode(attrs.get("v", "")) != self.server_signature:
            raise ProtocolViolation("SCRAM server signature mismatch")


@dataclass(frozen=True)
class ScramSecret:
    """What a server keeps to check a SCRAM-SHA-256 login (never the password)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(cls, password: str, iterations: int = 4096) -> ScramSecret:
        """Derive the secret with a fresh salt."""
        salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        return cls(salt, iterations, hashlib.sha256(client_key).digest(),
                   hmac.digest(salted, b"Server Key", "sha256"))


class ScramServer:
    """The server side of SCRAM-SHA-256 as PostgreSQL does it (RFC 5802/7677).

    Written here rather than taken from ``scramp`` because libpq sends an empty
    user name (``n=,``) in its first message, PostgreSQL's convention, which
    scramp's server refuses as malformed. No channel binding (no TLS locally).
    """

    def __init__(self, secret: ScramSecret) -> None:
        self.secret = secret
        self._bare = ""
        self._server_first = ""
        self._nonce = ""
        self._gs2 = ""

    def first(self, client_first: str) -> str:
        """server-first-message for the client's first message."""
        gs2, sep, bare = client_first.partition(",,")
        if not sep or gs2[:1] not in ("n", "y"):
            raise ProtocolViolation("SCRAM: channel binding is not supported here")
        attrs = dict(item.split("=", 1) for item in bare.split(",") if "=" in item)
        if not attrs.get("r"):
            raise ProtocolViolation("SCRAM: client nonce missing")
        self._gs2, self._bare = gs2 + ",,", bare
        self._nonce = attrs["r"] + base64.b64encode(secrets.token_bytes(18)).decode()
        salt = base64.b64encode(self.secret.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self.secret.iterations}"
        return self._server_first

    def final(self, client_final: str) -> str | None:
        """server-final-message when the proof is right, None when it is not."""
        without_proof, sep, proof_b64 = client_final.rpartition(",p=")
        attrs = dict(item.split("=", 1) for item in without_proof.split(",") if "=" in item)
        if (not sep or attrs.get("r") != self._nonce
                or attrs.get("c") != base64.b64encode(self._gs2.encode()).decode()):
            return None
        auth = f"{self._bare},{self._server_first},{without_proof}".encode()
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            return None
        signature = hmac.digest(self.secret.stored_key, auth, "sha256")
        if len(proof) != len(signature):
            return None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.secret.stored_key):
            return None
        server_signature = hmac.digest(self.secret.server_key, auth, "sha256")
        return "v=" + base64.b64encode(server_signature).decode()


async def login_upstream(host: str, port: int, params: dict[str, str], password: str,
                         connect_timeout_s: float
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a server connection and log in as ``params["user"]`` with ``password``.

    Returns the streams and the AuthenticationOk message, positioned just after
    it (ParameterStatus, BackendKeyData and ReadyForQuery follow). Raises
    :class:`UpstreamRefused` with the server's error, ``OSError`` or
    ``TimeoutError`` when the server cannot be reached.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                            connect_timeout_s)
    try:
        writer.write(startup_packet(params))
        scram: ScramClient | None = None
        while True:
            kind, payload = await asyncio.wait_for(read_message(reader), connect_timeout_s)
            if kind == b"E":
                raise UpstreamRefused(payload)
            if kind != b"R":
                raise ProtocolViolation(f"unexpected message {kind!r} during upstream login")
            code = length_of(payload)
            if code == 0:
                return reader, writer, message(kind, payload)
            if code == 3:
                writer.write(message(b"p", password.encode() + b"\0"))
            elif code == 5:
                inner = hashlib.md5((password + params.get("user", "")).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
                writer.write(message(b"p", b"md5" + outer.encode() + b"\0"))
            elif code == 10:
                scram = ScramClient(password)
                first = scram.first()
                writer.write(message(b"p", b"SCRAM-SHA-256\0" + _LENGTH.pack(len(first)) + first))
            elif code == 11 and scram is not None:
                writer.write(message(b"p", scram.final(payload[4:])))
            elif code == 12 and scram is not None:
                scram.check(payload[4:])
            else:
                raise ProtocolViolation(f"unsupported upstream authentication {code}")
            await writer.drain()
    except BaseException:
        writer.close()
        raise
