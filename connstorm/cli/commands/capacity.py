"""`connstorm capacity`: how many connections a Lambda load needs, against RDS's limit.

Numbers are read as text and checked here, not by argparse, so a bad value is
one line naming the option (argparse would add a usage block) and exit code 2.

    connstorm capacity --instance-class db.t3.medium --concurrency 200 --pattern module_level
    connstorm capacity --max-connections 100 --concurrency 300 --pool-size 40 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from connstorm.capacity import (
    ENGINES,
    INSTANCE_MEMORY_GIB,
    PATTERNS,
    POOL_MODES,
    CapacityInputError,
    CapacityRequest,
    class_max_connections,
    describe,
    plan_capacity,
)


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "capacity", help="expected peak connections vs the RDS limit, and what fits",
        description="Expected peak database connections of a Lambda load against RDS's default "
                    "max_connections, the headroom, and the largest concurrency or pool size "
                    "that fits.")
    p.add_argument("--engine", default="postgres", help=f"{' | '.join(ENGINES)} (default postgres)")
    p.add_argument("--instance-class", metavar="CLASS",
                   help="RDS instance class, e.g. db.t3.medium (see --list-classes)")
    p.add_argument("--max-connections", metavar="N", help="an explicit limit instead of a class")
    p.add_argument("--concurrency", metavar="N", help="peak Lambda concurrency (environments)")
    p.add_argument("--pattern", default="module_level", help=" | ".join(PATTERNS))
    p.add_argument("--invocations-per-env", metavar="N", default="10",
                   help="leaky: invocations per environment before it is reaped (default 10)")
    p.add_argument("--env-pool-size", metavar="N", default="2",
                   help="in_process_pool: pool size inside each environment (default 2)")
    p.add_argument("--pool-size", metavar="N",
                   help="a pooler (PgBouncer, RDS Proxy) in front, with this server pool size")
    p.add_argument("--pool-mode", default="transaction", help=" | ".join(POOL_MODES))
    p.add_argument("--rds-proxy-percent", metavar="P",
                   help="RDS Proxy in front: its MaxConnectionsPercent (1-100) sets the pool")
    p.add_argument("--reserved", metavar="N",
                   help="connections the application cannot use (postgres default 3)")
    p.add_argument("--other-connections", metavar="N", default="0",
                   help="connections needed by others: migrations, monitoring (default 0)")
    p.add_argument("--versions", metavar="N", default="1",
                   help="versions whose environments hold connections at once: 1 + the "
                        "deploys made while the old versions' connections are still open "
                        "(reaped, then kept by the database's TCP keepalive; default 1)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--list-classes", action="store_true",
                   help="list the known instance classes and their max_connections")
    p.set_defaults(func=run)


def _whole(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise CapacityInputError(f"{option}: expected a whole number, got {text!r}") from None


def _list_classes(engine: str, as_json: bool) -> str:
    rows = [(name, gib, class_max_connections(engine, name))
            for name, gib in sorted(INSTANCE_MEMORY_GIB.items(), key=lambda kv: (kv[1], kv[0]))]
    if as_json:
        return json.dumps([{"instance_class": n, "memory_gib": g, "max_connections": m}
                           for n, g, m in rows], indent=2) + "\n"
    lines = [f"{'class':<16} {'GiB':>5} {engine + ' max_connections':>28}"]
    lines += [f"{n:<16} {g:>5g} {m:>28}" for n, g, m in rows]
    lines.append("(formula on nominal memory: an upper bound; real instances have 88-97 % of it)")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """Print the plan; exit 0 whether or not it fits (the numbers are the answer)."""
    if args.list_classes:
        from connstorm.capacity import normalise_engine

        sys.stdout.write(_list_classes(normalise_engine(args.engine), args.json))
        return 0
    concurrency = _whole("--concurrency", args.concurrency)
    if concurrency is None:
        raise CapacityInputError("--concurrency: missing (the peak number of Lambda "
                                 "environments)")
    request = CapacityRequest(
        concurrency=concurrency, engine=args.engine, instance_class=args.instance_class,
        max_connections=_whole("--max-connections", args.max_connections),
        pattern=args.pattern,
        invocations_per_env=_whole("--invocations-per-env", args.invocations_per_env) or 0,
        env_pool_size=_whole("--env-pool-size", args.env_pool_size) or 0,
        pooler_pool_size=_whole("--pool-size", args.pool_size), pooler_mode=args.pool_mode,
        proxy_max_connections_percent=_whole("--rds-proxy-percent", args.rds_proxy_percent),
        reserved=_whole("--reserved", args.reserved),
        other_connections=_whole("--other-connections", args.other_connections) or 0,
        versions=_whole("--versions", args.versions) or 0)
    plan = plan_capacity(request)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(describe(plan))
    return 0
