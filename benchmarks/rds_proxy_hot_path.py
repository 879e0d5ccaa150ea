"""RDS Proxy stand-in: Python time per query on its hot path, without sockets or the event loop.

One client session (:class:`connstorm.local_stack.rds_proxy.session.ClientSession`)
with stub transports is fed a query's bytes and the server's answer, N times:
what psycopg sends without prepared statements (Parse/Bind/Describe/Execute/Sync,
unnamed), and with psycopg's defaults once prepared (a Bind of ``_pg3_0``, which
the stand-in translates to its server-side name). The figure is the best of
``--rounds`` (the machine is shared; the minimum is the least disturbed) and
counts only the stand-in's Python work per query: a real query also pays its
syscalls and the event loop (``rds_proxy_throughput.py`` measures those).

``--before DIR`` runs the same in a child whose ``PYTHONPATH`` starts with
``DIR`` (a worktree of the commit before a change), alternating with this
checkout, so both are measured in the same minutes.

    .venv/bin/python benchmarks/rds_proxy_hot_path.py --before /tmp/before-worktree
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from connstorm.local_stack import pg_wire

_m = pg_wire.message
UNPREPARED = (_m(b"P", b"\0SELECT 1\0\0\0") + _m(b"B", b"\0\0\0\0\0\0\0\0") + _m(b"D", b"P\0")
              + _m(b"E", b"\0\0\0\0\0") + _m(b"S", b""))
PREPARE = (_m(b"P", b"_pg3_0\0SELECT 1\0\0\0") + _m(b"B", b"\0_pg3_0\0\0\0\0\0\0\0")
           + _m(b"D", b"P\0") + _m(b"E", b"\0\0\0\0\0") + _m(b"S", b""))
PREPARED = _m(b"B", b"\0_pg3_0\0\0\0\0\0\0\0") + _m(b"E", b"\0\0\0\0\0") + _m(b"S", b"")
_ROWS = _m(b"D", b"\0\1\0\0\0\0011") + _m(b"C", b"SELECT 1\0") + _m(b"Z", b"I")
ANSWER = _m(b"1", b"") + _m(b"2", b"") + _m(b"T", b"\0\1?column?\0" + b"\0" * 18) + _ROWS
PREPARED_ANSWER = _m(b"2", b"") + _ROWS


class _Transport:
    def write(self, data: bytes) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_closing(self) -> bool: return False
    def close(self) -> None: ...


class _Writer:
    transport = _Transport()


class _Core:
    queries = 0

    def __init__(self) -> None:
        try:  # the registry of named statements (absent before they were multiplexed)
            from connstorm.local_stack.rds_proxy.statements import StatementRegistry
            self.statements = StatementRegistry()
        except ImportError:
            pass

    def pinned(self, *args: Any) -> None: ...
    def session_ended(self, session: Any) -> None: ...


class _Pool:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def try_borrow(self) -> Any:
        return self.conn

    def release(self, conn: Any) -> None: ...


async def _round(n: int) -> dict[str, float]:
    from connstorm.local_stack.rds_proxy.pool import ServerConnection
    from connstorm.local_stack.rds_proxy.session import ClientSession

    session = ClientSession(_Core(), None, _Writer())  # type: ignore[arg-type]
    session.pool = _Pool(ServerConnection(None, _Writer()))  # type: ignore[arg-type]
    out: dict[str, float] = {}
    for name, query, answer, first in (("unprepared", UNPREPARED, ANSWER, None),
                                       ("prepared", PREPARED, PREPARED_ANSWER, PREPARE)):
        if first is not None:
            session.client_data(first)
            session.server_data(ANSWER)
        for _ in range(n // 10):
            session.client_data(query)
            session.server_data(answer)
        start = time.perf_counter()
        for _ in range(n):
            session.client_data(query)
            session.server_data(answer)
        out[name] = (time.perf_counter() - start) / n * 1e6
    return out


def measure(n: int, rounds: int) -> dict[str, float]:
    """Best µs per query over ``rounds``, by case."""
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, value in asyncio.run(_round(n)).items():
            best[name] = min(best.get(name, float("inf")), value)
    return best


def main() -> int:
    """Print the figures (JSON with ``--json``, for the --before child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=4, help="alternations with --before")
    parser.add_argument("--before", metavar="DIR")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure(args.queries, args.rounds)))
        return 0
    results: dict[str, dict[str, float]] = {}
    checkouts = [("after", None)] + ([("before", args.before)] if args.before else [])
    for _ in range(args.pairs if args.before else 1):
        for label, path in checkouts:
            env = {**os.environ, **({"PYTHONPATH": path} if path else {})}
            done = subprocess.run([sys.executable, "-P", __file__, "--json", "--queries",
                                   str(args.queries), "--rounds", str(args.rounds)],
                                  env=env, capture_output=True, text=True, check=True)
            for case, value in json.loads(done.stdout).items():
                key = results.setdefault(label, {})
                key[case] = min(key.get(case, float("inf")), value)
    load = os.getloadavg()
    print(f"{args.queries} queries, best of {args.rounds} rounds x {args.pairs} alternations; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| checkout | unprepared µs/query | prepared µs/query |")
    print("|---|---|---|")
    for label, figures in results.items():
        print(f"| {label} | {figures['unprepared']:.2f} | {figures['prepared']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
