"""The emulator server process: one asyncio (uvloop) process hosting everything.

It runs the :class:`~local_stack.lambda_.emulator.Emulator` (zygotes, Runtime API
listeners, scheduler) and one aiohttp app on a free 127.0.0.1 port with the API
Gateway front and the Invoke API (the HTTP side's ``front.add_front_routes`` and
``invoke_api.add_invoke_routes``, when they are importable) plus
``GET /_connstorm/stats`` and ``GET /_connstorm/health``.

Started by :class:`~local_stack.lambda_.process.EmulatorProcess` as
``python -m local_stack.lambda_ --config FILE --ready-file FILE``. When ready it
writes ``{"port", "pid"}`` to the ready file (atomically), so the parent learns the
port without racing for one. SIGTERM/SIGINT shut the environments down the
Lambda way before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from local_stack.deathsig import set_parent_death_signal
from local_stack.lambda_.config import EmulatorConfig
from local_stack.lambda_.emulator import Emulator

log = logging.getLogger(__name__)

#: Bodies up to this size reach the handlers, so the HTTP side can answer 413 itself
#: for payloads over Lambda's 6 MB.
CLIENT_MAX_SIZE = 8 * 1024 * 1024
EMULATOR_KEY = web.AppKey("emulator", Emulator)


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit: 1,000 environments need 2,000+ fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[EMULATOR_KEY].stats())


async def _health(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    return web.json_response({"ok": True, "pid": os.getpid(),
                              "functions": sorted(emulator.pools)})


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        log.warning("%s.%s not available (%s): serving without it", module, name, exc)
        return None


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp app: Invoke API and our endpoints first, the front's catch-all last."""
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[EMULATOR_KEY] = emulator
    app.router.add_get("/_connstorm/stats", _stats)
    app.router.add_get("/_connstorm/health", _health)
    add_invoke = _optional("local_stack.lambda_.invoke_api", "add_invoke_routes")
    if add_invoke is not None:
        add_invoke(app, emulator, region=emulator.account.region)
    add_front = _optional("local_stack.lambda_.front", "add_front_routes")
    if add_front is not None:
        add_front(app, emulator, emulator.config.routes)
    return app


def _write_ready(path: Path, port: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}), encoding="utf-8")
    tmp.replace(path)


async def serve(config: EmulatorConfig, ready_file: Path | None) -> None:
    """Run until SIGTERM/SIGINT, then stop the app and the environments."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(config)
    await emulator.start()
    runner = web.AppRunner(build_app(emulator), access_log=None, handle_signals=False)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        log.info("emulator listening on http://%s:%d (%d functions)", config.host, port,
                 len(config.functions))
        if ready_file is not None:
            _write_ready(ready_file, port)
        await stop.wait()
        log.info("emulator stopping")
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        await emulator.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m local_stack.lambda_ --config FILE [--ready-file FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m local_stack.lambda_",
                                     description="connstorm's Lambda emulator server")
    parser.add_argument("--config", required=True, help="EmulatorConfig JSON file")
    parser.add_argument("--ready-file", help="where to write {port, pid} once serving")
    parser.add_argument("--parent-pid", type=int,
                        help="die (SIGTERM) with this process, even if it is SIGKILLed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.parent_pid:
        set_parent_death_signal(signal.SIGTERM, expected_parent=args.parent_pid)
    try:
        config = EmulatorConfig.read(args.config)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("cannot read the emulator config %s: %s", args.config, exc)
        return 3
    raise_nofile_limit()
    import uvloop

    uvloop.run(serve(config, Path(args.ready_file) if args.ready_file else None))
    return 0
