"""The emulator's side of the Runtime API: what each runtime's calls do.

Each environment talks to its own Runtime API listener
(:mod:`connstorm.local_stack.lambda_.runtime_api`), which turns the runtime's ``/next``,
``/response`` and ``/error`` calls into these callbacks. ``/next`` is where an
environment that finished Init or an invocation takes its next event or is
frozen; ``/response`` and ``/error`` give the invocation its result through the
scheduler's ``_complete``, only for the invocation the environment holds and
only once (a second answer gets 403). :class:`RuntimeCallbacks` is a mixin of
:class:`~connstorm.local_stack.lambda_.emulator.Emulator`, as :mod:`.scheduler` says why;
``on_next`` and ``on_response`` are on the warm path.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

from connstorm.local_stack.lambda_ import runtime_api
from connstorm.local_stack.lambda_.environment import (
    BUSY,
    DEAD,
    FROZEN,
    IDLE,
    INITIALIZING,
    STOPPING,
    Environment,
    Invocation,
)
from connstorm.local_stack.lambda_.function_pool import FunctionPool
from connstorm.local_stack.lambda_.invocation import Outcome
from connstorm.local_stack.lambda_.runtime_api import RuntimeConnection


class RuntimeCallbacks:
    """The Runtime API's callbacks, one listener per environment (a mixin of ``Emulator``)."""

    # The emulator's state this part reads (set in Emulator.__init__).
    pools: dict[str, FunctionPool]

    if TYPE_CHECKING:
        # The scheduler's part (:mod:`.scheduler`).
        def _dispatch(self, pool: FunctionPool, env: Environment, inv: Invocation) -> None: ...
        def _park(self, pool: FunctionPool, env: Environment) -> None: ...
        def _complete(self, inv: Invocation, outcome: Outcome, *,
                      payload: bytes | None = None, error_type: str | None = None,
                      error_message: str | None = None) -> None: ...
        # The environment lifecycle's part (:mod:`.lifecycle`).
        def _fail_init(self, env: Environment, error_type: str, message: str,
                       payload: bytes | None = None, *, status: str = "error") -> None: ...
        def _kill(self, env: Environment) -> None: ...

    # ------------------------------------------------------------ listener

    async def _serve(self, env: Environment, sock: socket.socket) -> None:
        try:
            server = await runtime_api.serve(self, env, sock)
        except OSError as exc:
            sock.close()
            self._fail_init(env, "Runtime.InitError", f"cannot serve the Runtime API: {exc}")
            self._kill(env)
            return
        if env.state == DEAD:
            server.close()
            return
        env.server = server

    # ------------------------------------------------------------ Runtime API

    def on_next(self, conn: RuntimeConnection) -> None:
        """The runtime waits for an event: hand it the pending one, or freeze it."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.state in (STOPPING, DEAD):
            return
        env.next_conn = conn
        pool = self.pools[env.function]
        if env.state == INITIALIZING:
            if not env.suppressed_init:
                env.init_ms = (time.monotonic() - env.spawned) * 1000
            if env.init_timer is not None:
                env.init_timer.cancel()
            inv = env.invocation
            if inv is not None and not inv.done:
                self._dispatch(pool, env, inv)
            else:
                self._park(pool, env)
            return
        if env.state != BUSY:
            return
        pool.unfinish(env)
        inv = env.invocation
        if inv is None or inv.done:
            self._park(pool, env)
        elif not inv.started:
            self._dispatch(pool, env, inv)  # queued on it while it was finishing
        # else: a runtime that asked for more without answering; the invocation runs
        # into its timeout, as on Lambda.

    def on_response(self, conn: RuntimeConnection, request_id: str, body: bytes) -> int:
        """The handler's result for ``request_id``."""
        inv = self._own_invocation(conn, request_id)
        if not isinstance(inv, Invocation):
            return inv
        self._complete(inv, "success", payload=body)
        return 202

    def on_error(self, conn: RuntimeConnection, request_id: str, body: bytes,
                 error_type: str | None) -> int:
        """The handler raised; the environment stays warm."""
        inv = self._own_invocation(conn, request_id)
        if not isinstance(inv, Invocation):
            return inv
        doc = _json_object(body)
        self._complete(inv, "function_error", payload=body,
                       error_type=str(doc.get("errorType") or error_type or "Unhandled"),
                       error_message=str(doc.get("errorMessage", "")))
        return 202

    def on_init_error(self, conn: RuntimeConnection, body: bytes,
                      error_type: str | None) -> int:
        """Init failed: the pending invocation fails with the runtime's errorType."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.state != INITIALIZING:
            return 403
        doc = _json_object(body)
        etype = str(error_type or doc.get("errorType") or "Runtime.InitError")
        env.init_error = (etype, body)
        self._fail_init(env, etype, str(doc.get("errorMessage", "")), payload=body)
        self._kill(env)
        return 202

    def on_connection_lost(self, conn: RuntimeConnection) -> None:
        """A parked environment whose ``/next`` connection broke cannot be used again."""
        env: Environment = conn.env  # type: ignore[assignment]
        if env.next_conn is conn:
            env.next_conn = None
            if env.state in (FROZEN, IDLE):
                self._kill(env)

    def _own_invocation(self, conn: RuntimeConnection, request_id: str) -> Invocation | int:
        """The invocation this environment holds under ``request_id``, else a 4xx status."""
        env: Environment = conn.env  # type: ignore[assignment]
        inv = env.invocation
        if inv is None or inv.request_id != request_id:
            return 400
        if inv.done:
            return 403
        return inv


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}

