"""A local stand-in for RDS IAM authentication: verify the token, then splice to the database.

A function using IAM auth sends ``generate_db_auth_token(host, port, user)`` as
its password. RDS verifies that SigV4 presigned URL against IAM; locally this
proxy does what can be done honestly without IAM:

1. it speaks just enough of the PostgreSQL protocol to ask the client for a
   cleartext password (answering ``N`` to SSL/GSS requests: no TLS locally);
2. it recomputes the token's SigV4 signature with botocore and the same dummy
   keys the functions have, and checks the algorithm, the credential scope
   (region, service ``rds-db``), ``Action=connect``, ``DBUser`` equal to the login
   user, the host and port equal to the ones the client connected to,
   ``X-Amz-Date`` not in the future (5 minutes of skew allowed) and not older
   than ``X-Amz-Expires`` (at most 900 s);
3. it then logs in to the real server (PostgreSQL or PgBouncer) with the app
   role's real password (cleartext, MD5 or SCRAM-SHA-256), hands the client the
   server's ``AuthenticationOk`` and everything after it, and splices bytes both
   ways for the rest of the session.

A refused token gets ``FATAL: PAM authentication failed for user "..."``, SQLSTATE
28P01, which is what RDS answers. Not verified locally: that the role's IAM
policy allows ``rds-db:connect``, that a session token is valid (any
``X-Amz-Security-Token`` is accepted), and TLS (RDS requires it for IAM logins).

Every login attempt is recorded in :attr:`IamAuthProxy.logins` (user,
application_name, token signature, accepted or why not), so tests can show how
many distinct tokens each environment used.

The proxy runs an asyncio loop on a thread of the stack's process: it can never
outlive the stack.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hmac
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from connstorm.errors import StackError
from connstorm.local_stack import pg_wire

_log = logging.getLogger(__name__)

MAX_PASSWORD_BYTES = 8192
MAX_EXPIRES_S = 900
CLOCK_SKEW_S = 300.0


class TokenError(ValueError):
    """The token is not a valid RDS IAM auth token for this login; says why."""


@dataclass(frozen=True)
class Login:
    """One login attempt through the proxy."""

    user: str
    application_name: str
    signature: str
    accepted: bool
    reason: str = ""


def verify_token(token: str, *, host: str, port: int, user: str, region: str,
                 keys: Mapping[str, str], now: float | None = None) -> str:
    """Check an RDS IAM auth token; return its signature or raise :class:`TokenError`.

    ``keys`` maps access key ids to secret keys: the credentials a token may be
    signed with. ``now`` is Unix time (default: the clock).
    """
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    parts = urlsplit("https://" + token)
    if parts.netloc != f"{host}:{port}":
        raise TokenError(f"token is for {parts.netloc!r}, not {host}:{port}")
    if parts.path != "/":
        raise TokenError("token path must be /")
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    params = dict(pairs)
    if len(params) != len(pairs):
        raise TokenError("token repeats a parameter")
    for name in ("Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                 "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if name not in params:
            raise TokenError(f"token lacks {name}")
    if params["Action"] != "connect":
        raise TokenError("token Action is not connect")
    if params["DBUser"] != user:
        raise TokenError(f"token is for user {params['DBUser']!r}, not {user!r}")
    if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        raise TokenError("token algorithm is not AWS4-HMAC-SHA256")
    if params["X-Amz-SignedHeaders"] != "host":
        raise TokenError("token must sign exactly the host header")
    access_key, _, scope = params["X-Amz-Credential"].partition("/")
    amz_date = params["X-Amz-Date"]
    if scope != f"{amz_date[:8]}/{region}/rds-db/aws4_request":
        raise TokenError(f"token scope {scope!r} is not {region}/rds-db")
    if access_key not in keys:
        raise TokenError("token is signed with an unknown access key")
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        expires_s = int(params["X-Amz-Expires"])
    except ValueError:
        raise TokenError("token X-Amz-Date or X-Amz-Expires is malformed") from None
    if not 0 < expires_s <= MAX_EXPIRES_S:
        raise TokenError(f"token X-Amz-Expires must be 1..{MAX_EXPIRES_S}")
    now = time.time() if now is None else now
    if signed_at > now + CLOCK_SKEW_S:
        raise TokenError("token is signed in the future")
    if now > signed_at + expires_s:
        raise TokenError("token has expired")
    # Recompute the signature exactly as botocore's presigner made it.
    unsigned = parts.query.rsplit("&X-Amz-Signature=", 1)[0]
    if "X-Amz-Signature" in unsigned:
        raise TokenError("X-Amz-Signature must be the last parameter")
    signer = SigV4QueryAuth(Credentials(access_key, keys[access_key],
                                        params.get("X-Amz-Security-Token")),
                            "rds-db", region, expires_s)
    request = AWSRequest(method="GET", url=f"https://{parts.netloc}/?{unsigned}")
    request.context["timestamp"] = amz_date
    expected: str = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        raise TokenError("token signature does not match")
    return expected


# ---------------------------------------------------------------- protocol bits


def _error(text: str, code: str = "28P01") -> bytes:
    return pg_wire.error_response(text, code)


# ---------------------------------------------------------------- the proxy


class IamAuthProxy:
    """Accepts RDS IAM tokens on 127.0.0.1 and forwards sessions to the real server.

    >>> with IamAuthProxy(upstream_host="127.0.0.1", upstream_port=5432,
    ...                   upstream_password="pw", keys={"AKID": "SECRET"}) as proxy:
    ...     env = proxy.function_env()   # DB_HOST, DB_PORT, DB_IAM_AUTH=true
    """

    def __init__(self, *, upstream_host: str, upstream_port: int, upstream_password: str,
                 keys: Mapping[str, str], region: str = "us-east-1",
                 connect_timeout_s: float = 10.0, start_timeout_s: float = 10.0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._upstream_password = upstream_password
        self.keys = dict(keys)
        self.region = region
        self.host = "127.0.0.1"
        self.port = 0
        self.connect_timeout_s = connect_timeout_s
        self._start_timeout_s = start_timeout_s
        self.logins: list[Login] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Listen on a free loopback port; returns once connections are accepted."""
        self._thread = threading.Thread(target=self._serve, name="iam-auth-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s) or self._failure is not None:
            self.stop()
            raise StackError(f"IAM auth proxy did not start: {self._failure or 'timeout'}")
        _log.info("IAM auth proxy on %s:%d -> %s:%d", self.host, self.port,
                  self.upstream_host, self.upstream_port)

    def stop(self) -> None:
        """Close the listener and every session; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(self._shutdown)
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> IamAuthProxy:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def function_env(self) -> dict[str, str]:
        """What an ``iam_token`` function needs: this proxy as its host, no password."""
        return {"DB_HOST": self.host, "DB_PORT": str(self.port), "DB_IAM_AUTH": "true"}

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._session, self.host, 0))
            self.port = int(self._server.sockets[0].getsockname()[1])
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _shutdown(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

        async def drain() -> None:
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            self._loop.stop()  # type: ignore[union-attr]
        self._loop.create_task(drain())

    # ------------------------------------------------------------ a session

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            upstream = await self._handshake(reader, writer)
            if upstream is not None:
                await asyncio.gather(self._pipe(reader, upstream[1]),
                                     self._pipe(upstream[0], writer))
        except (ConnectionError, asyncio.IncompleteReadError, OSError, ValueError) as exc:
            _log.debug("IAM auth proxy session ended: %s", exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            if upstream is not None:
                upstream[1].close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        startup = await pg_wire.read_startup(reader, writer)
        if startup.cancel is not None:
            await self._forward_cancel(startup.cancel)
            return None
        if startup.protocol != pg_wire.PROTOCOL_3:
            writer.write(_error("unsupported frontend protocol", "0A000"))
            return None
        params = startup.params
        user = params.get("user", "")
        # Ask for the password in clear: the token is the password.
        writer.write(pg_wire.auth_request(3))
        await writer.drain()
        kind, payload = await pg_wire.read_message(reader)
        if kind != b"p" or len(payload) > MAX_PASSWORD_BYTES:
            raise ConnectionError("expected a password message")
        token = payload.rstrip(b"\0").decode(errors="replace")
        try:
            signature = await asyncio.get_running_loop().run_in_executor(
                None, lambda: verify_token(token, host=self.host, port=self.port, user=user,
                                           region=self.region, keys=self.keys))
        except TokenError as exc:
            self.logins.append(Login(user, params.get("application_name", ""), "", False,
                                     str(exc)))
            _log.info("IAM auth proxy refused %s: %s", user, exc)
            writer.write(_error(f'PAM authentication failed for user "{user}"'))
            await writer.drain()
            return None
        self.logins.append(Login(user, params.get("application_name", ""), signature, True))
        return await self._login_upstream(params, writer)

    async def _login_upstream(self, params: dict[str, str], client: asyncio.StreamWriter
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            up_reader, up_writer, auth_ok = await pg_wire.login_upstream(
                self.upstream_host, self.upstream_port, params, self._upstream_password,
                self.connect_timeout_s)
        except pg_wire.UpstreamRefused as exc:
            client.write(pg_wire.message(b"E", exc.payload))
            _log.info("upstream refused the login: %s", exc)
            return None
        except (OSError, TimeoutError) as exc:
            client.write(_error(f"IAM auth proxy cannot reach the database: {exc}", "08006"))
            return None
        # AuthenticationOk: from here on the client talks to the server.
        client.write(auth_ok)
        return up_reader, up_writer

    async def _forward_cancel(self, packet: bytes) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            _, w = await asyncio.wait_for(
                asyncio.open_connection(self.upstream_host, self.upstream_port),
                self.connect_timeout_s)
            w.write(packet)
            await w.drain()
            w.close()


def iam_token_env(stack_env: Mapping[str, str], proxy: IamAuthProxy) -> dict[str, str]:
    """An ``iam_token`` function's environment: the proxy as its host, no password.

    ``DB_USER`` and ``DB_NAME`` stay; ``DB_PASSWORD`` is removed, so the only way
    in is a token the proxy verifies.
    """
    env = {k: v for k, v in stack_env.items() if k != "DB_PASSWORD"}
    env.update(proxy.function_env())
    return env
