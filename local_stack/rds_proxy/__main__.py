"""Run the RDS Proxy stand-in as a process of its own.

``python -m connstorm.local_stack.rds_proxy``.

For benchmarks and anyone who wants the proxy off the stack's interpreter (a
process of its own, like PgBouncer, has a GIL of its own). The password comes
from the environment variable ``RDS_PROXY_PASSWORD``, never the command line;
its log (INFO and up) goes to stderr; when ready the process writes ``{"host",
"port", "metrics_url", "pid"}`` as JSON to ``--ready-file``; SIGTERM or SIGINT
stops it. :class:`.process.RdsProxyProcess`
drives it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from connstorm.run_folder import write_json
from connstorm.sections.rds_proxy import RdsProxyConfig


def main(argv: list[str] | None = None) -> int:
    """Parse the options, serve until a signal, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m connstorm.local_stack.rds_proxy")
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--pool-size", type=int, default=None)
    parser.add_argument("--config", default="{}",
                        help="[rds_proxy] keys as a JSON object")
    args = parser.parse_args(argv)
    password = os.environ.get("RDS_PROXY_PASSWORD")
    if password is None:
        sys.stderr.write("python -m connstorm.local_stack.rds_proxy: "
                         "RDS_PROXY_PASSWORD is not set\n")
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = RdsProxyConfig(**json.loads(args.config))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with RdsProxy(config, upstream_host=args.upstream_host, upstream_port=args.upstream_port,
                  passwords={args.user: password}, pool_size=args.pool_size) as proxy:
        write_json(args.ready_file, {"host": proxy.host, "port": proxy.port, "pid": os.getpid(),
                                     "metrics_url": proxy.metrics_url})
        while not stop.wait(1.0):
            if not proxy.running():
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
