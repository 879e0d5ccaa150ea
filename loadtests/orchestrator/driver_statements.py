"""Named prepared statements that outlive their transaction behind a transaction pooler.

Why a request's error is not enough: behind PgBouncer in transaction mode
without statement tracking (before 1.21), a server connection goes back to the
pool at each transaction's end, and the next transaction on it may be any
client's (PgBouncer, "Features", "SQL feature map for pooling modes":
protocol-level prepared plans in transaction pooling need
``max_prepared_statements``, 1.21 and later). A
named statement still prepared on that server connection when its transaction
ends is a defect in itself: the client that prepared it will ``Bind`` it on
whichever server connection its next transaction gets (``prepared statement
"_pg3_0" does not exist``), and another client that prepares the same name on
this one meets it (``... already exists``). Whether a short load trips over it
depends on which client lands where: SQLAlchemy's QueuePool over psycopg 3
prepares the order's ``executemany()`` at once, keeps it across the
``COMMIT``, and its next rollback's ``DEALLOCATE ALL`` runs as a transaction of
its own, on whatever server connection is free (2 of 6 surveys failed the
plain configuration, 1 of 6 the pre-ping one). So the verdict is read off the
server itself: PostgreSQL logs every Parse, Bind and statement with its backend
and virtual transaction id (``log_min_duration_statement = 0``, ``%p`` and
``%v`` in ``log_line_prefix``: PostgreSQL, "Error Reporting and Logging",
"What to Log"), and a named statement is *stranded* when its transaction ends
(``COMMIT``, ``ROLLBACK``) with it still prepared: from then on PgBouncer may
hand that server connection to any client. This holds for every such statement,
not only for those a request of the run happened to meet. Only statements are
seen that a simple-query ``DEALLOCATE`` removes; a protocol-level Close is not
logged (none of the configurations that prepare send one before the end of
their transaction).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: postgresql.conf settings that make the log say what this module reads.
LOG_SETTINGS: Mapping[str, Any] = {
    "log_min_duration_statement": 0, "log_line_prefix": "%m [%p] %d %v "}

_LINE = re.compile(
    r"\[(?P<pid>\d+)\] (?P<db>\S+) (?P<vxid>\d+/\d+) LOG:  duration: [\d.]+ ms  "
    r"(?P<what>parse|bind|execute|statement)(?: (?P<name>[^:]*?))?: (?P<text>.*)$")
_DEALLOCATE = re.compile(r"^\s*(?:DEALLOCATE\s+(?:PREPARE\s+)?(?P<name>\S+)|DISCARD\s+ALL)",
                         re.IGNORECASE)
UNNAMED = "<unnamed>"


@dataclass
class Stranded:
    """The named statements of one database that outlived their transaction."""

    count: int = 0
    first: str = ""
    names: set[str] = field(default_factory=set)


def stranded(lines: Iterable[str], databases: set[str]) -> dict[str, Stranded]:
    """Per database of ``databases``: named statements still prepared when their transaction ended.

    The end shows as the next line of the same backend with another virtual
    transaction id: the ``COMMIT`` or ``ROLLBACK`` itself (logged once the
    transaction is over, ``N/0``) or the next transaction, whichever client's.
    A ``DEALLOCATE`` in the same transaction removes the statement first.
    """
    prepared: dict[str, dict[str, tuple[str, str]]] = {}  # pid -> name -> (vxid, sql)
    found: dict[str, Stranded] = {}
    for line in lines:
        match = _LINE.search(line)
        if match is None or match["db"] not in databases:
            continue
        pid, vxid, text = match["pid"], match["vxid"], match["text"].strip()
        names = prepared.setdefault(pid, {})
        if match["what"] == "statement" and (gone := _DEALLOCATE.match(text)):
            if gone["name"] is None or gone["name"].upper() == "ALL":
                names.clear()
            else:
                names.pop(gone["name"].strip('"'), None)
            continue
        for name, (since, sql) in list(names.items()):
            if since != vxid:
                entry = found.setdefault(match["db"], Stranded())
                entry.count += 1
                entry.names.add(name)
                if not entry.first:
                    entry.first = (f'prepared statement "{name}" outlived its transaction '
                                   f"on a server connection ({sql[:120]})")
                del names[name]
        if match["what"] == "parse" and match["name"] and match["name"] != UNNAMED:
            names[match["name"]] = (vxid, text)
    return found


def error_entry(found: Stranded) -> dict[str, Any]:
    """The cell's ``errors`` entry: how often, the first, and the names left."""
    return {"count": found.count, "first": found.first, "names": sorted(found.names)}
