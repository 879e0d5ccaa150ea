"""``--metrics-port``: the run's newest samples at ``http://127.0.0.1:PORT/metrics``.

For the dashboards teams already run: while ``connstorm up``, ``run`` or ``ui``
runs, Prometheus (or anything that reads its text format) scrapes the
collectors' latest values. The endpoint runs in the orchestrator's process and
follows ``samples.jsonl`` as the live terminal view does
(:class:`connstorm.samples.SampleFollower`), so it never talks to Locust, the
collectors keep sampling once per interval whoever scrapes, and a scrape shows
exactly what the run folder holds; :mod:`.metrics_families` turns the rows into
metric families.

The answer is the Prometheus text format, or OpenMetrics when the scraper's
``Accept`` header asks for it (prometheus_client's ``choose_encoder``, as
Prometheus's own client libraries negotiate). Only ``GET /metrics`` (and
``HEAD``) answer; anything else is 404. The server binds 127.0.0.1 only, as
every listener connstorm starts. Port 0 takes a free port; :attr:`url` says which.

>>> with MetricsEndpoint(run_dir / "samples.jsonl", 9464) as endpoint:
...     print(endpoint.url)       # http://127.0.0.1:9464/metrics
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector as RegistryCollector

from connstorm.errors import EnvironmentProblemError
from connstorm.loadtests.orchestrator.metrics_families import families
from connstorm.local_stack.resource import Resource
from connstorm.samples import SampleFollower

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PATH = "/metrics"


class _SamplesCollector(RegistryCollector):
    """A prometheus_client collector whose every ``collect`` reads the newest rows."""

    def __init__(self, follower: SampleFollower) -> None:
        self.follower = follower

    def collect(self) -> Iterator[Any]:
        yield from families(self.follower.poll())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self, with_body: bool) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self.send_error(404, f"only {PATH} is served here")
            return
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception:  # a malformed row must not take the endpoint down
            log.exception("metrics: rendering the samples failed")
            self.send_error(500, "rendering the samples failed; see the log")
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class MetricsEndpoint(Resource):
    """The ``/metrics`` server of one run, following ``samples_path``."""

    def __init__(self, samples_path: Path, port: int) -> None:
        if not 0 <= port <= 65535:
            raise EnvironmentProblemError(f"--metrics-port {port}: not a TCP port (0-65535)")
        self.samples_path = samples_path
        self.requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the free one chosen for 0)."""
        if self._server is None:
            raise RuntimeError("the metrics endpoint is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/metrics``."""
        return f"http://{HOST}:{self.port}{PATH}"

    def start(self) -> None:
        """Bind 127.0.0.1 (one line and exit code 4 when the port is taken) and serve."""
        try:
            server = _Server((HOST, self.requested_port), _Handler)
        except OSError as exc:
            where = f"--metrics-port {self.requested_port}: {HOST}:{self.requested_port}"
            if exc.errno == errno.EADDRINUSE:
                raise EnvironmentProblemError(
                    f"{where} is in use (choose another port, or 0 for a free one)") from None
            raise EnvironmentProblemError(f"{where}: {exc.strerror or exc}") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_SamplesCollector(SampleFollower(self.samples_path)))
        server.registry = registry
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="metrics-endpoint",
                                        daemon=True)
        self._thread.start()
        log.info("metrics endpoint on %s", self.url)

    def stop(self) -> None:
        """Stop serving and close the socket; safe twice and after a failed start."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
