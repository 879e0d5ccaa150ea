"""Which statements pin a client session to its database connection, and why.

RDS Proxy for PostgreSQL pins a client to its database connection for the rest
of the session when the client leaves state on that connection the proxy does
not track (AWS, "Avoiding pinning an RDS Proxy", section "Conditions that
cause pinning for RDS for PostgreSQL"). This module decides that from the SQL
text of a simple Query or of a Parse message.

A *named* Parse does not pin by itself any more: RDS Proxy multiplexes the
extended query protocol's prepared statements since November 2023 (AWS
Database Blog, "Amazon RDS Proxy multiplexing support for PostgreSQL Extended
Query Protocol"); see :mod:`.statements`. Its text is judged like any other.
Only the SQL-level ``PREPARE``, ``EXECUTE``, ``DEALLOCATE`` and ``DISCARD``
still pin, as the page lists them.

Reason strings: :data:`SESSION_SETTINGS` is RDS Proxy's own log wording (seen
in its CloudWatch logs for ``SET search_path``); the others are written in the
same style because AWS does not publish the full list: they are close, not
verbatim.

Decisions:

* ``SET``/``RESET``/``set_config(..., false)`` pin; ``SET LOCAL``,
  ``SET TRANSACTION``, ``SET CONSTRAINTS`` and ``set_config(..., true)`` do not
  (they end with the transaction). The page names "using ``SET`` and
  ``set_config`` commands" without regard to how the arguments come: a
  ``set_config`` whose third argument is a parameter (``$3``, as drivers and
  ORMs send it) pins when the Bind carries false, in text (``false``, ``f``,
  ``off``, ``0``, ... as PostgreSQL's boolean input reads them) or binary
  (a zero byte) format (:class:`SessionWatch`).
* Session advisory locks (``pg_advisory_lock``, ``pg_try_advisory_lock`` and
  their ``_shared`` forms) pin; the ``_xact_`` forms end with the transaction
  and do not.
* Any ``DECLARE`` pins (AWS lists "declaring cursors", WITH HOLD or not).
* A fast pre-check (one regular expression over the text) lets the common
  statement through without tokenising it: the proxy does this per query.
"""

from __future__ import annotations

import re
from typing import Final

from connstorm.local_stack import pg_wire

#: Statements longer than this pin (AWS: "statements over 16 KB").
MAX_UNPINNED_STATEMENT_BYTES: Final = 16 * 1024

SESSION_SETTINGS: Final = ("SQL changed session settings that the proxy doesn't track. "
                           "Consider moving session configuration to the proxy's "
                           "initialization query.")
PREPARED_STATEMENT: Final = ("A SQL-level prepared statement (PREPARE, EXECUTE or DEALLOCATE) "
                             "was detected.")
DISCARD: Final = "A DISCARD statement was detected."
TEMPORARY_OBJECT: Final = "A temporary table, sequence or view was created."
CURSOR: Final = "A DECLARE CURSOR statement was detected."
LISTEN: Final = "A LISTEN statement was detected."
ADVISORY_LOCK: Final = "A session-level advisory lock function was called."
SEQUENCE_FUNCTION: Final = "A sequence function (nextval or setval) was called."
LOAD: Final = "A LOAD statement was detected."
LARGE_STATEMENT: Final = "The statement is larger than 16 KB."

#: Every reason, for reports and tests.
ALL_REASONS: Final = (SESSION_SETTINGS, PREPARED_STATEMENT, DISCARD, TEMPORARY_OBJECT,
                      CURSOR, LISTEN, ADVISORY_LOCK, SEQUENCE_FUNCTION, LOAD, LARGE_STATEMENT)
#: Reasons whose statement may drop every prepared statement of the session.
CLEARING_REASONS: Final = frozenset({PREPARED_STATEMENT, DISCARD})

_MAYBE = re.compile(
    r"\b(set|reset|prepare|execute|deallocate|discard|temp|temporary|declare|listen|load|"
    r"pg_(?:try_)?advisory_lock(?:_shared)?|nextval|setval|set_config)\b", re.IGNORECASE)
#: The same pre-check on the raw message body (no decoding for the common statement).
_MAYBE_BYTES = re.compile(_MAYBE.pattern.encode(), re.IGNORECASE)
_STRIP = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|\$\$.*?\$\$",
                    re.DOTALL)
_WORD = re.compile(r"[a-z_]+")
_ADVISORY = re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(")
_SEQUENCE = re.compile(r"\b(?:nextval|setval)\s*\(")
_SET_CONFIG = re.compile(r"\bset_config\s*\(", re.IGNORECASE)
_CAST = re.compile(r"::\s*(?:pg_catalog\.)?bool(?:ean)?\s*$")
_PARAMETER = re.compile(r"^\$(\d+)$")
#: PostgreSQL's boolean input for false: the words and their unique prefixes ("Boolean Type").
_FALSE = frozenset({"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"})
#: Named statements whose set_config scope a session remembers at most.
MAX_WATCHED_STATEMENTS = 10_000
_TEMP_CREATE = re.compile(
    r"^create\s+(?:or\s+replace\s+)?(?:(?:global|local)\s+)?(?:temp|temporary)\s+"
    r"(?:(?:recursive|unlogged)\s+)?(?:table|sequence|view)\b")
_INTO_TEMP = re.compile(r"\binto\s+(?:temp|temporary)\b")
_MAY_CLEAR = re.compile(rb"deallocate|discard", re.IGNORECASE)
_CLEARS = re.compile(r"^(?:deallocate\s+(?:prepare\s+)?all|discard\s+all)\s*$")


def _statement_reason(stmt: str) -> str | None:
    words = _WORD.findall(stmt[:80])
    if not words:
        return None
    first = words[0]
    second = words[1] if len(words) > 1 else ""
    if first == "set":
        if second in ("local", "transaction", "constraints"):
            return None
        if second == "session" and len(words) > 2 and words[2] == "characteristics":
            return SESSION_SETTINGS
        return SESSION_SETTINGS
    if first == "reset":
        return SESSION_SETTINGS
    if first == "prepare" and second != "transaction":
        return PREPARED_STATEMENT
    if first in ("execute", "deallocate"):
        return PREPARED_STATEMENT
    if first == "discard":
        return DISCARD
    if first == "declare":
        return CURSOR
    if first == "listen":
        return LISTEN
    if first == "load":
        return LOAD
    if first == "create" and _TEMP_CREATE.match(stmt):
        return TEMPORARY_OBJECT
    if _INTO_TEMP.search(stmt):
        return TEMPORARY_OBJECT
    if _ADVISORY.search(stmt):
        return ADVISORY_LOCK
    if _SEQUENCE.search(stmt):
        return SEQUENCE_FUNCTION
    return None


def set_config_scopes(sql: str) -> list[str]:
    """The third argument of each ``set_config`` call in ``sql``, normalised.

    Lower case, without spaces, quotes and a ``::boolean`` cast: ``false``,
    ``true``, ``$3``, or the expression as written. Calls inside string
    literals and comments do not count.
    """
    masked = _STRIP.sub(lambda m: "x" * len(m.group()), sql)
    scopes = []
    for call in _SET_CONFIG.finditer(masked):
        depth, commas, arg_start = 0, 0, -1
        for i in range(call.end(), len(masked)):
            ch = masked[i]
            if ch == "(":
                depth += 1
            elif ch == ")" and depth:
                depth -= 1
            elif ch in ",)" and depth == 0:
                if commas == 2:
                    scopes.append(_normal(sql[arg_start:i]))
                    break
                if ch == ")":
                    break
                commas += 1
                arg_start = i + 1
    return scopes


def _normal(arg: str) -> str:
    text = arg.strip().lower()
    while True:
        uncast = _CAST.sub("", text).strip()
        if uncast.startswith("(") and uncast.endswith(")"):
            uncast = uncast[1:-1].strip()
        if uncast.startswith("e'"):
            uncast = uncast[1:]
        if len(uncast) > 1 and uncast[0] == uncast[-1] == "'":
            uncast = uncast[1:-1].strip()
        if uncast == text:
            return text
        text = uncast


def _set_config_reason(sql: str) -> str | None:
    """SESSION_SETTINGS when some ``set_config`` is given a literal false."""
    if any(scope in _FALSE for scope in set_config_scopes(sql)):
        return SESSION_SETTINGS
    return None


def set_config_parameter(sql: str) -> int | None:
    """The 1-based parameter number of the first ``set_config`` scope given as ``$n``."""
    for scope in set_config_scopes(sql):
        found = _PARAMETER.match(scope)
        if found:
            return int(found.group(1))
    return None


def bound_false(fmt: int, value: bytes | None) -> bool:
    """Whether a bound boolean parameter is false (text or binary format; NULL is not)."""
    if value is None:
        return False
    if fmt == 1:
        return value == b"\0"
    return value.decode(errors="replace").strip().lower() in _FALSE


def pin_reason(sql: str) -> str | None:
    """Why running ``sql`` (one or more statements) pins the session, or None.

    Only the statements' text counts here; the size rule and named Parse
    messages are the caller's (:func:`message_reason`).
    """
    if _MAYBE.search(sql) is None:
        return None
    text = _STRIP.sub(" ", sql).lower()
    for stmt in text.split(";"):
        reason = _statement_reason(stmt.strip())
        if reason is not None:
            return reason
    if "set_config" in text:
        return _set_config_reason(sql)
    return None


def statement_text(kind: bytes, body: bytes | memoryview) -> tuple[bytes, str]:
    """(statement name, SQL) of a Query (``Q``, no name) or Parse (``P``) body."""
    raw = bytes(body)
    if kind == b"Q":
        return b"", raw[:-1].decode(errors="replace")
    end = raw.find(b"\0")
    return raw[:end], raw[end + 1:raw.find(b"\0", end + 1)].decode(errors="replace")


def message_reason(kind: bytes, body: bytes | memoryview) -> tuple[str | None, str]:
    """The pin reason of a client message (``Q`` query or ``P`` parse), and its SQL.

    ``body`` is the message without kind and length. Any other kind never pins.
    The SQL comes back only with a reason (it is the audit's sample). A named
    Parse is judged by its text like an unnamed one (see the module's docstring).
    """
    if kind not in (b"Q", b"P"):
        return None, ""
    if len(body) <= MAX_UNPINNED_STATEMENT_BYTES and _MAYBE_BYTES.search(body) is None:
        return None, ""  # the fast path: small, no trigger word anywhere
    _, sql = statement_text(kind, body)
    if len(body) > MAX_UNPINNED_STATEMENT_BYTES:
        return LARGE_STATEMENT, sql
    return pin_reason(sql), sql


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def digest(sql: str, limit: int = 300) -> str:
    """``sql`` as RDS Proxy's log shows it: literals as ``$1``, ``$2``..., one line.

    (RDS Proxy's pin lines end with ``Digest: "set search_path to $1,$2,$3"``,
    the statement without its values: no secret in a literal reaches the log.)
    """
    numbers = iter(range(1, 1 << 30))
    text = _LITERAL.sub(lambda _: f"${next(numbers)}", " ".join(sql.split()))
    return text[:limit]


def may_clear_statements(body: bytes | memoryview) -> bool:
    """Cheap pre-check: could this Query/Parse body drop prepared statements?"""
    return _MAY_CLEAR.search(body) is not None


def clears_statements(sql: str) -> bool:
    """Whether ``sql`` drops every prepared statement of the session.

    PostgreSQL's ``DEALLOCATE [PREPARE] ALL`` and ``DISCARD ALL`` do
    (PostgreSQL, "DEALLOCATE" and "DISCARD").
    """
    text = _STRIP.sub(" ", sql).lower()
    return any(_CLEARS.match(stmt.strip()) for stmt in text.split(";"))


class SessionWatch:
    """What one client session has said that pins, or will pin when bound.

    :meth:`message` judges each Query and Parse; a Parse whose ``set_config``
    takes its scope from a parameter is remembered (by statement name, the
    unnamed one included) and :meth:`bind` judges the value each Bind gives
    it. :attr:`clears` says a ``DEALLOCATE ALL``/``DISCARD ALL`` is on its way
    (the session's prepared statements must be forgotten).
    """

    def __init__(self) -> None:
        self.clears = False
        #: Statement name -> (parameter number, SQL) of a set_config scope to read at Bind.
        self.deferred: dict[bytes, tuple[int, str]] = {}

    def message(self, kind: int, body: memoryview, unpinned: bool) -> tuple[str, str] | None:
        """(reason, sample) when this Query (81) or Parse (80) pins the session."""
        q = b"Q" if kind == 81 else b"P"
        if not unpinned:
            if may_clear_statements(body):
                self.clears = self.clears or clears_statements(statement_text(q, body)[1])
            return None
        reason, sql = message_reason(q, body)
        if reason is not None:
            if reason in CLEARING_REASONS and clears_statements(sql):
                self.clears = True
            return reason, sql
        if kind == 80 and (sql or self.deferred):
            raw = bytes(body)
            name = raw[:raw.find(b"\0")]
            number = set_config_parameter(sql) if "set_config" in sql.lower() else None
            if number is not None and len(self.deferred) < MAX_WATCHED_STATEMENTS:
                self.deferred[name] = (number, sql)
            else:
                self.deferred.pop(name, None)
        return None

    def bind(self, body: memoryview) -> tuple[str, str] | None:
        """(reason, sample) when this Bind gives a watched ``set_config`` a false scope."""
        if not self.deferred:
            return None
        raw = bytes(body)
        portal_end = raw.find(b"\0")
        watched = self.deferred.get(raw[portal_end + 1:raw.find(b"\0", portal_end + 1)])
        if watched is None:
            return None
        try:
            _, fmt, value = pg_wire.bind_parameter(raw, watched[0] - 1)
        except ValueError:
            return None  # the server refuses the Bind: nothing is set
        return (SESSION_SETTINGS, watched[1]) if bound_false(fmt, value) else None
