"""Named prepared statements of the extended query protocol, multiplexed (not pinned).

What AWS documents
    Since November 2023 RDS Proxy multiplexes clients that use the extended
    query protocol (AWS Database Blog, "Amazon RDS Proxy multiplexing support
    for PostgreSQL Extended Query Protocol"); the "Avoiding pinning an RDS
    Proxy" page now names only the SQL-level ``PREPARE``, ``EXECUTE``,
    ``DEALLOCATE`` and ``DISCARD`` among the PostgreSQL pin conditions, and
    the "Limitations for RDS Proxy" page (section "Additional limitations for
    RDS for PostgreSQL") no longer lists the extended protocol. How: AWS's
    patent US 11,943,316 ("Database connection multiplexing for prepared
    statements") describes storing each client's Parse in the client
    connection's state and, when a later Bind uses it on another database
    connection, injecting a Parse there first.

What is modelled (as PgBouncer >= 1.21 does it, ``src/prepare.c``)
    * Each client's statements: name -> :class:`Statement` (query text and
      parameter types), kept for the whole session as PostgreSQL keeps them
      (PostgreSQL "Message Flow", "Extended Query": a named prepared statement
      "lasts till the end of the current session, unless explicitly
      destroyed").
    * On the database side every statement has one unique name
      (``__connstorm_rdsp_<n>``), shared by all clients whose text and types
      are the same, so two clients' ``_pg3_0`` never clash and the database
      prepares a query once per connection, not once per client.
    * A Bind or Describe of a statement the borrowed connection does not have
      yet gets a Parse injected before it; its ParseComplete is swallowed.
    * Each connection keeps at most 200 (PgBouncer's ``max_prepared_statements``
      default; :mod:`.server_statements`); the least recently used beyond that
      is closed on the server (its CloseComplete swallowed).
    * Close of a statement forgets it and is passed on, so the server answers
      CloseComplete in order (PostgreSQL: "It is not an error to issue Close
      against a nonexistent statement or portal name").
    * Bind or Describe of a name the client never prepared is passed on as
      it came: the server answers what PostgreSQL answers (26000, ``prepared
      statement "x" does not exist``), skips to the Sync and aborts the
      transaction, so the client and the others go on as they would.
    * Parse of a name the client already has: PostgreSQL's 42P05 ``prepared
      statement "x" already exists``, produced in its place in the stream by
      a Describe of a marker name whose 26000 error is rewritten.
    * Optimism, then correction: a statement is recorded when its Parse is
      sent; if the server fails or skips it (an error earlier in the batch),
      the record is taken back when that batch's ReadyForQuery arrives, so a
      failed Parse is never taken for a prepared one.
    * The unnamed statement lasts, in PostgreSQL, until the next Parse of
      one; drivers such as pg8000 Parse it in one batch and Bind it in a
      later one. Each client's last unnamed Parse is kept (a reference to
      the bytes already sent, no copy) and each connection knows whose
      unnamed statement it holds; a Bind or Describe of the unnamed
      statement on a connection holding another's gets the client's Parse
      injected first (without it, the client would run another client's
      statement), or PostgreSQL's ``unnamed prepared statement does not
      exist`` when the client never prepared one.
    * SQL-level ``DEALLOCATE ALL``/``DISCARD ALL`` (which pin) forget the
      client's statements, and the connection's cache becomes unsure: each
      later injection there closes the name first (a Close of a missing name
      is harmless).

Bounds: PgBouncer keeps a client's statements without limit, as PostgreSQL
does. Here a client may hold :data:`MAX_CLIENT_STATEMENTS` statements and
:data:`MAX_CLIENT_STATEMENT_BYTES` of their text; a Parse beyond that fails
with SQLSTATE 53400 (configuration_limit_exceeded), the client keeps what it
has, and nothing is evicted behind its back (an evicted name would make a
later Bind fail where PostgreSQL succeeds).

Not modelled: ``DEALLOCATE name`` or ``EXECUTE name`` in SQL of a name
prepared with Parse (both pin; the server does not know the client's name,
as with PgBouncer); portals built on a statement evicted in the same batch.
"""

from __future__ import annotations

import collections
import itertools
import re
import struct
from collections.abc import Callable

from connstorm.local_stack import pg_wire
from connstorm.local_stack.rds_proxy import server_statements
from connstorm.local_stack.rds_proxy.server_statements import (
    PREFIX,
    ServerStatements,
    Statement,
    StatementRegistry,
)

__all__ = ["PREFIX", "ServerStatements", "Statement", "StatementMux", "StatementRegistry"]

#: Statements one client may hold, and bytes of their text and parameter types.
MAX_CLIENT_STATEMENTS = 10_000
MAX_CLIENT_STATEMENT_BYTES = 32 << 20

_MARKER = re.compile(re.escape(PREFIX) + rb"[0-9a-z_]+")
_LENGTH = struct.Struct("!i")
_length = _LENGTH.unpack_from


class _Act:
    """What to do when the server answers (or skips) one injected or rewritten message."""

    __slots__ = ("fail", "ok", "ordinal", "seq", "swallow")

    def __init__(self, seq: int, ordinal: int, swallow: bool,
                 ok: Callable[[], None] | None, fail: Callable[[], None] | None) -> None:
        self.seq, self.ordinal, self.swallow = seq, ordinal, swallow
        self.ok, self.fail = ok, fail


class StatementMux:
    """One client's statements and the bookkeeping of the responses that change.

    The client side counts what it sends in the current batch (Parses and
    Closes since the last Sync, ``open_*``; Syncs, ``syncs_sent``); the server
    side counts what comes back (``parses_seen``/``closes_seen`` since the last
    ReadyForQuery, ``syncs_done``). An action belongs to the n-th Parse (or
    Close) of a given batch; the server answers them in order, so the n-th
    ParseComplete of that batch is its answer, and a ReadyForQuery that ends
    the batch before it means the server failed or skipped it.
    """

    def __init__(self, registry: StatementRegistry) -> None:
        self.registry = registry
        self.names: dict[bytes, Statement] = {}
        self.bytes = 0
        self.parse_acts: collections.deque[_Act] = collections.deque()
        self.close_acts: collections.deque[_Act] = collections.deque()
        self.synthetic: dict[bytes, tuple[int, bytes]] = {}
        self._markers = itertools.count(1)
        #: The client's last unnamed Parse: (bytes sent, offset of the message in them).
        self.unnamed: tuple[bytes, int] | None = None
        self.unnamed_gen = 0
        self.reset()

    def reset(self) -> None:
        """Nothing sent, nothing answered (counters run on across the connections lent)."""
        self.syncs_sent = self.open_parses = self.open_closes = 0
        self.syncs_done = self.parses_seen = self.closes_seen = 0

    def close(self) -> None:
        """The client left: forget its statements."""
        for stmt in self.names.values():
            self.registry.release(stmt)
        self.names.clear()
        self.bytes = 0

    # ------------------------------------------------------------ client to server

    def translate(self, buf: bytearray, start: int, end: int,
                  cache: ServerStatements) -> bytearray:
        """``buf[start:end]`` (whole messages) as the server must get it."""
        out = bytearray()
        copied = pos = start
        while pos < end:
            kind = buf[pos]
            mend = pos + 1 + _length(buf, pos + 1)[0]
            if mend - pos > 6:
                if kind == 80 and buf[pos + 5]:  # P, named
                    out += buf[copied:pos]
                    self._parse(out, bytes(buf[pos + 5:mend]), cache)
                    copied = mend
                elif kind == 66:  # B
                    if self._bind(out, buf, copied, pos, mend, cache):
                        copied = mend
                elif kind in (68, 67) and buf[pos + 5] == 83 and buf[pos + 6]:  # D/C, statement
                    out += buf[copied:pos]
                    body = bytes(buf[pos + 5:mend])
                    (self._describe if kind == 68 else self._close)(out, body, cache)
                    copied = mend
                elif kind == 68 and buf[pos + 5] == 83:  # D of the unnamed statement
                    if self._use_unnamed(out, buf, copied, pos, mend, cache):
                        copied = mend
                elif kind == 80:  # P, unnamed
                    self.open_parses += 1
                    self.parsed_unnamed(bytes(buf[pos:mend]), 0, cache)
                elif kind == 67:
                    self.open_closes += 1
                    if buf[pos + 5] == 83:  # C of the unnamed statement
                        self.unnamed = None
                        if cache.unnamed_owner is self:
                            cache.unnamed_owner = None
            elif kind == 80:
                self.open_parses += 1
                self.parsed_unnamed(bytes(buf[pos:mend]), 0, cache)
            elif kind == 67:
                self.open_closes += 1
            pos = mend
        out += buf[copied:end]
        return out

    def parsed_unnamed(self, data: bytes, offset: int, cache: ServerStatements) -> None:
        """The unnamed Parse at ``data[offset:]`` went to the connection: it is the client's now."""
        self.unnamed = (data, offset)
        self.unnamed_gen += 1
        cache.unnamed_owner, cache.unnamed_gen = self, self.unnamed_gen

    def simple_query(self, cache: ServerStatements | None) -> None:
        """A simple Query went to the connection: no unnamed statement is left, there or here.

        PostgreSQL drops the unnamed statement when it runs a simple Query
        ("Frontend/Backend Protocol", "Extended Query": "a simple Query message
        also destroys the unnamed statement"). So the connection holds nobody's
        (another client's later Bind of its own gets its Parse injected again),
        and the client that sent it has none (its later Bind fails as it would
        on PostgreSQL).
        """
        self.unnamed = None
        if cache is not None:
            cache.unnamed_owner = None

    def _use_unnamed(self, out: bytearray, buf: bytearray, copied: int, pos: int, end: int,
                     cache: ServerStatements) -> bool:
        """Before a Bind/Describe of the unnamed statement: make it the client's own there.

        False when the connection holds the client's already (pass the message on).
        """
        if cache.unnamed_owner is self and cache.unnamed_gen == self.unnamed_gen:
            return False
        out += buf[copied:pos]
        if self.unnamed is None:  # never prepared one: PostgreSQL's error, not another's
            self._synthetic_error(out, "unnamed prepared statement does not exist", "26000")
            return True
        data, offset = self.unnamed
        message = data[offset:offset + 1 + _length(data, offset + 1)[0]]
        out += message
        self.open_parses += 1

        def lost() -> None:
            if cache.unnamed_owner is self:
                cache.unnamed_owner = None

        self.parse_acts.append(_Act(self.syncs_sent, self.open_parses, True, None, lost))
        self.registry.injected += 1
        cache.unnamed_owner, cache.unnamed_gen = self, self.unnamed_gen
        out += buf[pos:end]
        return True

    def _emit_parse(self, out: bytearray, stmt: Statement, swallow: bool,
                    fail: Callable[[], None] | None) -> None:
        out += pg_wire.message(b"P", stmt.server_name + b"\0" + stmt.body)
        self.open_parses += 1
        self.parse_acts.append(_Act(self.syncs_sent, self.open_parses, swallow, None, fail))

    def _emit_close(self, out: bytearray, name: bytes, act: bool = True,
                    ok: Callable[[], None] | None = None,
                    fail: Callable[[], None] | None = None) -> None:
        out += pg_wire.message(b"C", b"S" + name + b"\0")
        self.open_closes += 1
        if act:
            self.close_acts.append(_Act(self.syncs_sent, self.open_closes, True, ok, fail))

    def _synthetic_error(self, out: bytearray, text: str, code: str) -> None:
        """An ErrorResponse in this message's place: a Describe the server must refuse."""
        marker = PREFIX + b"e" + str(next(self._markers)).encode()
        self.synthetic[marker] = (self.syncs_sent,
                                  pg_wire.error_response(text, code, "ERROR"))
        out += pg_wire.message(b"D", b"S" + marker + b"\0")

    def _parse(self, out: bytearray, body: bytes, cache: ServerStatements) -> None:
        cut = body.find(b"\0")
        name, rest = body[:cut], body[cut + 1:]
        if name in self.names:
            self._synthetic_error(out, f'prepared statement "{_text(name)}" already exists',
                                  "42P05")
            return
        if (len(self.names) >= MAX_CLIENT_STATEMENTS
                or self.bytes + len(rest) > MAX_CLIENT_STATEMENT_BYTES):
            self._synthetic_error(
                out, f"RDS Proxy stand-in: this client holds {len(self.names)} prepared "
                f"statements ({self.bytes} bytes), the most it keeps; close some first",
                "53400")
            return
        stmt = self.registry.acquire(rest)
        self.names[name] = stmt
        self.bytes += len(rest)

        def failed() -> None:  # PostgreSQL keeps no statement whose Parse failed
            if self.names.get(name) is stmt:
                del self.names[name]
                self.bytes -= len(rest)
                self.registry.release(stmt)
            self._unsure(cache, stmt)

        state = cache.lru.get(stmt)
        if state is not None or cache.unsure_all:
            # The connection has it (or may): close it, so the client's own Parse
            # is answered by a real ParseComplete in its place.
            self._emit_close(out, stmt.server_name)
        self._track(cache, stmt)
        self._emit_parse(out, stmt, False, failed)
        self._evict(out, cache)

    def _ensure(self, out: bytearray, stmt: Statement, cache: ServerStatements) -> None:
        """Make ``stmt`` prepared on the connection (inject a Parse if need be)."""
        state = cache.lru.get(stmt)
        if state is True:
            cache.lru.move_to_end(stmt)
            return
        if state is not None or cache.unsure_all:
            self._emit_close(out, stmt.server_name)
        self._track(cache, stmt)
        self.registry.injected += 1
        self._emit_parse(out, stmt, True, lambda: self._unsure(cache, stmt))
        self._evict(out, cache)

    def _track(self, cache: ServerStatements, stmt: Statement) -> None:
        state = cache.lru.get(stmt)
        if state is None:
            stmt.refs += 1  # the connection's reference
        elif isinstance(state, _Act):
            cache.closing -= 1
        cache.lru[stmt] = True
        cache.lru.move_to_end(stmt)

    @staticmethod
    def _unsure(cache: ServerStatements, stmt: Statement) -> None:
        if stmt in cache.lru:
            if isinstance(cache.lru[stmt], _Act):
                cache.closing -= 1
            cache.lru[stmt] = False

    def _evict(self, out: bytearray, cache: ServerStatements) -> None:
        """Close the least recently used statements beyond the connection's bound."""
        excess = len(cache.lru) - cache.closing - server_statements.MAX_SERVER_STATEMENTS
        if excess <= 0:
            return
        for stmt, state in list(cache.lru.items()):
            if excess <= 0:
                break
            if isinstance(state, _Act) or (state is True and stmt is next(reversed(cache.lru))):
                continue
            act = _Act(0, 0, True, None, None)

            def closed(stmt: Statement = stmt, act: _Act = act) -> None:
                if cache.lru.get(stmt) is act:
                    del cache.lru[stmt]
                    cache.closing -= 1
                    cache.registry.release(stmt)

            act.ok, act.fail = closed, lambda stmt=stmt: self._unsure(cache, stmt)
            self._emit_close(out, stmt.server_name, act=False)
            act.seq, act.ordinal = self.syncs_sent, self.open_closes
            self.close_acts.append(act)
            cache.lru[stmt] = act
            cache.closing += 1
            excess -= 1

    def _bind(self, out: bytearray, buf: bytearray, copied: int, pos: int, end: int,
              cache: ServerStatements) -> bool:
        """Rewrite the Bind at ``buf[pos:end]`` if it names a known statement.

        False: pass it on as it came (an unknown name gets PostgreSQL's own 26000).
        """
        portal_end = buf.find(0, pos + 5, end)
        name_end = buf.find(0, portal_end + 1, end) if portal_end >= 0 else -1
        if name_end < 0:
            return False
        if name_end == portal_end + 1:
            return self._use_unnamed(out, buf, copied, pos, end, cache)
        stmt = self.names.get(bytes(buf[portal_end + 1:name_end]))
        if stmt is None:
            return False
        out += buf[copied:pos]
        self._ensure(out, stmt, cache)
        body = (portal_end - pos - 4) + len(stmt.server_name) + (end - name_end)
        out += b"B" + _LENGTH.pack(body + 4)
        out += buf[pos + 5:portal_end + 1]
        out += stmt.server_name
        out += buf[name_end:end]
        return True

    def _describe(self, out: bytearray, body: bytes, cache: ServerStatements) -> None:
        stmt = self.names.get(body[1:-1])
        if stmt is None:  # unknown: the server answers PostgreSQL's 26000
            out += pg_wire.message(b"D", body)
            return
        self._ensure(out, stmt, cache)
        out += pg_wire.message(b"D", b"S" + stmt.server_name + b"\0")

    def _close(self, out: bytearray, body: bytes, cache: ServerStatements) -> None:
        name = body[1:-1]
        stmt = self.names.pop(name, None)
        out += pg_wire.message(b"C", body)  # the server answers CloseComplete in order
        self.open_closes += 1
        if stmt is None:
            return
        self.bytes -= len(stmt.body)

        def done() -> None:
            self.registry.release(stmt)

        def skipped() -> None:  # an earlier error: PostgreSQL would not have closed it
            if name not in self.names:
                self.names[name] = stmt
                self.bytes += len(stmt.body)
            else:
                self.registry.release(stmt)

        self.close_acts.append(_Act(self.syncs_sent, self.open_closes, False, done, skipped))

    def forget_all(self, cache: ServerStatements | None) -> None:
        """``DEALLOCATE ALL`` or ``DISCARD ALL`` went to the server."""
        self.close()
        if cache is not None:
            cache.unsure_all = True
            for stmt in cache.lru:
                if cache.lru[stmt] is True:
                    cache.lru[stmt] = False

    # ------------------------------------------------------------ server to client

    def parse_complete(self) -> bool:
        """A ParseComplete came; True when it answers an injected Parse (drop it)."""
        self.parses_seen += 1
        acts = self.parse_acts
        if acts and acts[0].seq == self.syncs_done and acts[0].ordinal == self.parses_seen:
            act = acts.popleft()
            if act.ok is not None:
                act.ok()
            return act.swallow
        return False

    def close_complete(self) -> bool:
        """A CloseComplete came; True when it answers an injected Close (drop it)."""
        self.closes_seen += 1
        acts = self.close_acts
        if acts and acts[0].seq == self.syncs_done and acts[0].ordinal == self.closes_seen:
            act = acts.popleft()
            if act.ok is not None:
                act.ok()
            return act.swallow
        return False

    def ready(self) -> None:
        """A ReadyForQuery ended a batch: what was not answered was failed or skipped."""
        if self.parse_acts or self.close_acts or self.synthetic:
            self._settle(self.syncs_done)
        self.syncs_done += 1
        self.parses_seen = self.closes_seen = 0

    def _settle(self, done: int) -> None:
        for acts in (self.parse_acts, self.close_acts):
            while acts and acts[0].seq <= done:
                act = acts.popleft()
                if act.fail is not None:
                    act.fail()
        if self.synthetic:
            for marker in [m for m, (seq, _) in self.synthetic.items() if seq <= done]:
                del self.synthetic[marker]

    def error(self, payload: bytes) -> bytes | None:
        """An ErrorResponse to give the client instead, or None to pass it on.

        A marker's refusal becomes the error it stands for; a server-side
        statement name in a message becomes the client's own name.
        """
        found = _MARKER.search(payload)
        if found is None:
            return None
        entry = self.synthetic.pop(found.group(), None)
        if entry is not None:
            return entry[1]
        server_name = found.group()
        for name, stmt in self.names.items():
            if stmt.server_name == server_name:
                return pg_wire.message(b"E", payload.replace(server_name, name))
        return None

    @property
    def editing(self) -> bool:
        """Responses must be looked at (some are dropped or rewritten)."""
        return bool(self.parse_acts or self.close_acts or self.synthetic)


def _text(name: bytes) -> str:
    return name.decode(errors="replace")
