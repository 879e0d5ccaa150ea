"""The named statements each database connection of the stand-in holds, and their texts.

:class:`Statement` is one statement text (query and parameter types) with the
one name it has on every database connection (``__connstorm_rdsp_<n>``, as
PgBouncer >= 1.21 names its own ``PGBOUNCER_<n>``): clients preparing the same
text share it, so the database prepares a query once per connection, not once
per client. :class:`StatementRegistry` (one per proxy) holds them while some
client or connection refers to one; :class:`ServerStatements` (one per
database connection) is what that connection has prepared, least recently
used first, bounded by :data:`MAX_SERVER_STATEMENTS` (PgBouncer's
``max_prepared_statements`` default), and whose unnamed statement it holds.
:mod:`.statements` decides what to send; this module only keeps the books.
"""

from __future__ import annotations

import collections
import itertools

#: Prefix of the server-side statement names (and of the error markers).
PREFIX = b"__connstorm_rdsp_"
#: Statements kept prepared per database connection (PgBouncer's max_prepared_statements).
MAX_SERVER_STATEMENTS = 200


class Statement:
    """One statement text (query + parameter types) and its server-side name."""

    __slots__ = ("body", "refs", "server_name")

    def __init__(self, body: bytes, server_name: bytes) -> None:
        self.body = body  # the Parse payload after the name: query, int16 n, n oids
        self.server_name = server_name
        self.refs = 0


class StatementRegistry:
    """Every statement some client or connection holds, by text: one per proxy.

    Reference-counted, so a statement no client and no connection holds is
    forgotten (a client inventing statements cannot grow it for ever).
    """

    def __init__(self) -> None:
        self._by_body: dict[bytes, Statement] = {}
        self._ids = itertools.count(1)
        #: Parses injected before a Bind or Describe (connstorm's own metric).
        self.injected = 0

    def acquire(self, body: bytes) -> Statement:
        """The statement for ``body`` (made on first use), with one more reference."""
        stmt = self._by_body.get(body)
        if stmt is None:
            stmt = Statement(body, PREFIX + str(next(self._ids)).encode())
            self._by_body[body] = stmt
        stmt.refs += 1
        return stmt

    def release(self, stmt: Statement) -> None:
        """Drop one reference; the last one forgets the statement."""
        stmt.refs -= 1
        if stmt.refs <= 0:
            self._by_body.pop(stmt.body, None)

    def __len__(self) -> int:
        return len(self._by_body)


class ServerStatements:
    """What one database connection has prepared: statement -> state, least recently used first.

    State ``True``: prepared; ``False``: unsure (close before preparing
    again); an :class:`_Act`: being closed by that injected Close.
    """

    __slots__ = ("closing", "lru", "registry", "unnamed_gen", "unnamed_owner", "unsure_all")

    def __init__(self, registry: StatementRegistry) -> None:
        self.registry = registry
        self.lru: collections.OrderedDict[Statement, object] = collections.OrderedDict()
        self.unsure_all = False
        self.closing = 0
        #: Whose unnamed statement the connection holds: a client's mux and its generation.
        self.unnamed_owner: object | None = None
        self.unnamed_gen = 0

    def release_all(self) -> None:
        """The connection is closed: drop every reference; idempotent."""
        lru, self.lru = self.lru, collections.OrderedDict()
        for stmt in lru:
            self.registry.release(stmt)
        self.closing = 0
