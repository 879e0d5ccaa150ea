"""The emulator server process: one asyncio (uvloop) process hosting everything.

It runs the :class:`~connstorm.local_stack.lambda_.emulator.Emulator` (zygotes, Runtime API
listeners, scheduler) and one HTTP listener (:mod:`.http_server`) on 127.0.0.1
that serves the Invoke API (``POST /2015-03-31/functions/{name}/invocations``),
``GET /_connstorm/stats``, ``GET /_connstorm/health`` and
``POST /_connstorm/functions/{name}/deploy`` (publish a new version, the
timeline's ``deploy`` action), and hands every other request to the API
Gateway front.

Started by :class:`~connstorm.local_stack.lambda_.process.EmulatorProcess` as
``python -m connstorm.local_stack.lambda_ --config FILE --ready-file FILE``: it binds a free
port and, once ready, writes ``{"port", "pid"}`` to the ready file (atomically),
so the parent learns the port without racing for one. A compose service, which
needs a port known in advance, passes ``--port``. SIGTERM/SIGINT shut the
environments down the Lambda way before exiting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from connstorm.local_stack.deathsig import set_parent_death_signal
from connstorm.local_stack.lambda_.config import EmulatorConfig
from connstorm.local_stack.lambda_.emulator import Emulator
from connstorm.local_stack.lambda_.front import MAX_PAYLOAD_BYTES, Front
from connstorm.local_stack.lambda_.http_server import HttpServer, Later, Request, Response
from connstorm.local_stack.lambda_.invoke_api import InvokeApi, invoke_function_name
from connstorm.local_stack.priority import raise_priority
from connstorm.run_folder import write_json

log = logging.getLogger(__name__)

_JSON = (("Content-Type", "application/json"),)


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE to its hard limit: 1,000 environments need 2,000+ fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Routes:
    """The listener's one handler: our own paths first, the front's catch-all last.

    ``documents`` maps ``GET`` paths (``/_connstorm/stats``) to functions that
    return the JSON document to answer.
    """

    def __init__(self, invoke_api: InvokeApi, front: Front,
                 documents: Mapping[str, Callable[[], Any]],
                 deploy: Callable[[str], Any] | None = None,
                 kill: Callable[[str, int], Any] | None = None) -> None:
        self.invoke_api = invoke_api
        self.front = front
        self.documents = dict(documents)
        #: Publishes a new version of a function (``KeyError`` for an unknown one).
        self.deploy = deploy
        #: SIGKILLs N environments of a function (``KeyError`` for an unknown one).
        self.kill = kill

    @classmethod
    def of(cls, emulator: Emulator) -> Routes:
        """The emulator's routes: stats, health, the Invoke API and its scenario's API."""
        return cls(InvokeApi(emulator, region=emulator.account.region),
                   Front(emulator, emulator.config.routes), {
                       "/_connstorm/stats": emulator.stats,
                       "/_connstorm/health": lambda: {"ok": True, "pid": os.getpid(),
                                                      "functions": sorted(emulator.pools)}},
                   deploy=emulator.deploy, kill=emulator.kill_environments)

    def __call__(self, request: Request) -> Response | Later:
        path = request.path
        if request.method == "GET":
            document = self.documents.get(path)
            if document is not None:
                return Response(200, json.dumps(document()).encode(), _JSON)
        elif request.method == "POST":
            name = invoke_function_name(path)
            if name is not None:
                return self.invoke_api.handle(request, name)
            target = deploy_function_name(path)
            if target is not None and self.deploy is not None:
                return self._deploy(target)
            target = control_function_name(path, KILL_SUFFIX)
            if target is not None and self.kill is not None:
                return self._kill(target, request.query_string)
        return self.front.handle(request)

    def _deploy(self, name: str) -> Response:
        """``POST /_connstorm/functions/{name}/deploy``: publish a new version of ``name``.

        200 ``{"function", "version", "superseded"}`` (the new version number, and
        the environments of earlier versions still alive, which linger frozen and
        connected until reaped); 404 ``{"message"}`` for an unknown function. The
        timeline's ``deploy`` action calls it (docs/emulator-http.md).
        """
        assert self.deploy is not None
        try:
            doc = self.deploy(name)
        except KeyError:
            return Response(404, json.dumps({"message": f"no function {name!r}"}).encode(),
                            _JSON)
        return Response(200, json.dumps(doc).encode(), _JSON)


    def _kill(self, name: str, query: str) -> Response:
        """``POST /_connstorm/functions/{name}/kill?count=N``: SIGKILL N environments.

        200 ``{"function", "killed", "alive"}``; 400 when ``count`` is not a whole
        number from 1 to 100000; 404 for an unknown function (docs/emulator-http.md).
        """
        assert self.kill is not None
        values = urllib.parse.parse_qs(query).get("count", ["1"])
        try:
            count = int(values[-1])
        except ValueError:
            count = 0
        if not 1 <= count <= 100_000:
            return Response(400, json.dumps({"message": "count must be a whole number from 1 "
                                                        "to 100000"}).encode(), _JSON)
        try:
            doc = self.kill(name, count)
        except KeyError:
            return Response(404, json.dumps({"message": f"no function {name!r}"}).encode(),
                            _JSON)
        return Response(200, json.dumps(doc).encode(), _JSON)


DEPLOY_PREFIX = "/_connstorm/functions/"
DEPLOY_SUFFIX = "/deploy"
KILL_SUFFIX = "/kill"


def control_function_name(path: str, suffix: str) -> str | None:
    """The ``{name}`` of ``/_connstorm/functions/{name}<suffix>``, else None."""
    if path.startswith(DEPLOY_PREFIX) and path.endswith(suffix):
        name = path[len(DEPLOY_PREFIX):-len(suffix)]
        if name and "/" not in name:
            return name
    return None


def deploy_function_name(path: str) -> str | None:
    """The ``{name}`` of ``/_connstorm/functions/{name}/deploy``, else None."""
    return control_function_name(path, DEPLOY_SUFFIX)


def _write_ready(path: Path, port: int) -> None:
    write_json(path, {"port": port, "pid": os.getpid()})


async def serve(config: EmulatorConfig, ready_file: Path | None, port: int = 0) -> None:
    """Run until SIGTERM/SIGINT, then stop the listener and the environments."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    emulator = Emulator(config)
    if config.account.realtime_priority:
        # This thread only: SCHED_RESET_ON_FORK keeps it from the zygotes and environments.
        emulator.scheduling = raise_priority()
    await emulator.start()
    routes = Routes.of(emulator)
    # Bodies up to Lambda's 6 MB reach the handlers; over it they answer 413 themselves.
    http = HttpServer(routes, max_body_bytes=MAX_PAYLOAD_BYTES)
    try:
        port = await http.start(config.host, port)
        log.info("emulator listening on http://%s:%d (%d functions)", config.host, port,
                 len(config.functions))
        if ready_file is not None:
            _write_ready(ready_file, port)
        await stop.wait()
        log.info("emulator stopping")
    finally:
        with contextlib.suppress(Exception):
            await http.stop()
        with contextlib.suppress(Exception):
            await routes.invoke_api.close()
        await emulator.stop()


def run(config: EmulatorConfig, ready_file: Path | None = None, port: int = 0) -> None:
    """Serve ``config`` on uvloop until SIGTERM/SIGINT (the process's main job)."""
    raise_nofile_limit()
    import uvloop

    uvloop.run(serve(config, ready_file, port))


def main(argv: list[str] | None = None) -> int:
    """``python -m connstorm.local_stack.lambda_ --config FILE [--ready-file FILE] [--port N]``."""
    parser = argparse.ArgumentParser(prog="python -m connstorm.local_stack.lambda_",
                                     description="connstorm's Lambda emulator server")
    parser.add_argument("--config", required=True, help="EmulatorConfig JSON file")
    parser.add_argument("--ready-file", help="where to write {port, pid} once serving")
    parser.add_argument("--port", type=int, default=0,
                        help="listen on this port (default: a free one, see --ready-file)")
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
    try:
        run(config, Path(args.ready_file) if args.ready_file else None, args.port)
    except OSError as exc:
        # A port in use (or not ours to bind); the environments were already stopped.
        log.error("cannot listen on %s:%d: %s", config.host, args.port, exc.strerror or exc)
        return 5
    return 0
