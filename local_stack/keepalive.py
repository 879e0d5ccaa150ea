"""How long each database server keeps the connection of a client that vanished.

A reaped Lambda environment's microVM disappears without closing its sockets
(:mod:`connstorm.local_stack.lambda_.vanished`), so the server at the other end
keeps the connection until it notices the dead peer. The emulator holds the
sockets that long; this module works the time out for each server the stack
starts, from the settings that server actually runs with:

* **PostgreSQL** notices by TCP keepalive: ``tcp_keepalives_idle`` +
  ``tcp_keepalives_interval`` x ``tcp_keepalives_count`` (AWS, "Dead connection
  handling in PostgreSQL", "Understanding TCP keepalive"; RDS for PostgreSQL's
  defaults, under "Key TCP keepalive parameters in RDS for PostgreSQL", are 300,
  30 and 2: 360 s; the local cluster runs with those, see ``[postgres]``). The
  values are read from ``pg_settings`` over TCP, where PostgreSQL shows the ones
  in force on the socket, the system's when a setting is 0. A
  ``tcp_user_timeout`` above 0 ends the probing earlier: Linux then closes the
  connection at the first probe that finds it unacknowledged for that long (tcp(7),
  ``TCP_USER_TIMEOUT``: "when used with the TCP keepalive (SO_KEEPALIVE) option,
  TCP_USER_TIMEOUT will override keepalive to determine when to close a
  connection due to keepalive failure").
* **PgBouncer** keeps a dead client by the same rule with its own settings
  (PgBouncer, "Configuration", ``tcp_keepalive``: "Turns on basic keepalive with
  OS defaults. On Linux, the system defaults are tcp_keepidle=7200,
  tcp_keepintvl=75, tcp_keepcnt=9", default 1; ``tcp_keepidle``,
  ``tcp_keepintvl``, ``tcp_keepcnt``: "not set"), read from its console's
  ``SHOW CONFIG``; unset ones are this machine's ``net.ipv4.tcp_keepalive_*``.
  With ``tcp_keepalive = 0`` it never notices (``None``: held until PgBouncer
  closes it itself, e.g. by ``client_idle_timeout``). In transaction mode such a
  client holds only a client slot, no server connection.
* **The RDS Proxy stand-in**: AWS documents no TCP keepalive towards clients;
  what it documents is ``IdleClientTimeout``, "how long a client connection can
  be idle before the proxy closes it. The default is 1,800 seconds" (AWS, "RDS
  Proxy connection considerations", "IdleClientTimeout"). A dead client is an
  idle one, so the stand-in keeps it that long (``idle_client_timeout_s``) and
  then closes it, as it does any idle client; a pinned one keeps its database
  connection until then.

``[lambda] vanished_linger_s`` overrides all of these.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

#: Linux's keepalive defaults (tcp(7): tcp_keepalive_time, _intvl, _probes), if /proc has none.
LINUX_DEFAULTS = (7200, 75, 9)
_SYSCTL = Path("/proc/sys/net/ipv4")

_PG_SETTINGS = """
SELECT name, setting FROM pg_settings
WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',
               'tcp_user_timeout')
"""


def endpoint(host: str, port: int | str) -> str:
    """``"address:port"`` as a peer's ``getpeername`` shows it (a host name resolved)."""
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            address = socket.gethostbyname(host)
        except OSError:
            address = host
    return f"{address}:{int(port)}"


def keepalive_linger_s(idle_s: float, interval_s: float, count: int,
                       user_timeout_ms: float = 0) -> float:
    """When a server's keepalive gives up on a silent peer, in seconds after it fell silent.

    Without ``user_timeout_ms``: the first probe after ``idle_s``, then ``count``
    unanswered probes ``interval_s`` apart. With it, the first probe time (from
    the first one on) at which the peer has been silent for ``user_timeout_ms``.
    """
    if user_timeout_ms > 0:
        probes = max(1, math.ceil((user_timeout_ms / 1000 - idle_s) / max(interval_s, 1e-9)))
        return idle_s + interval_s * probes
    return idle_s + interval_s * count


def system_keepalive() -> tuple[int, int, int]:
    """This machine's ``net.ipv4.tcp_keepalive_time``, ``_intvl`` and ``_probes``."""
    values = []
    for name, default in zip(("tcp_keepalive_time", "tcp_keepalive_intvl",
                              "tcp_keepalive_probes"), LINUX_DEFAULTS, strict=True):
        try:
            values.append(int((_SYSCTL / name).read_text(encoding="ascii").strip()))
        except (OSError, ValueError):
            values.append(default)
    return values[0], values[1], values[2]


def postgres_linger_s(admin_dsn: str) -> float:
    """The keepalive linger of the PostgreSQL at ``admin_dsn`` (a TCP address)."""
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        rows: dict[str, str] = {str(k): str(v) for k, v in conn.execute(_PG_SETTINGS).fetchall()}
    system = system_keepalive()
    idle = int(rows.get("tcp_keepalives_idle") or 0) or system[0]
    interval = int(rows.get("tcp_keepalives_interval") or 0) or system[1]
    count = int(rows.get("tcp_keepalives_count") or 0) or system[2]
    return keepalive_linger_s(idle, interval, count, int(rows.get("tcp_user_timeout") or 0))


def pgbouncer_linger_s(config: Mapping[str, Any]) -> float | None:
    """The linger of a PgBouncer whose ``SHOW CONFIG`` is ``config`` (key -> value).

    ``None`` when its ``tcp_keepalive`` is off: it never notices a dead client.
    """
    def number(key: str) -> int:
        try:
            return int(str(config.get(key) or 0))
        except ValueError:
            return 0

    if not number("tcp_keepalive"):
        return None
    system = system_keepalive()
    return keepalive_linger_s(number("tcp_keepidle") or system[0],
                              number("tcp_keepintvl") or system[1],
                              number("tcp_keepcnt") or system[2],
                              number("tcp_user_timeout"))


def pgbouncer_config(console: Any) -> dict[str, str]:
    """``SHOW CONFIG`` of a PgBouncer console connection, as key -> value."""
    with console as conn:
        rows = conn.execute("SHOW CONFIG").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}
