"""A Docker engine stand-in on a unix socket, for the docker backend's failure paths.

The failures of a docker-backend start (no registry for the reaper's image, an
image that was never built) need an engine to happen, and this machine and most
CI runners have none. This stand-in speaks just enough of the Engine API for
the real docker SDK and the real testcontainers to get there: ``/_ping``,
``/version``, image inspection (only the names given exist), image pulls
(refused as an engine without a registry refuses them), and an empty container
list. Anything else is answered 500 and recorded, so a test can assert that no
container was ever created (``created``).
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import unquote, urlsplit

API_VERSION = "1.43"
#: What dockerd says when it cannot reach a registry (its own wording).
NO_REGISTRY = ('Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
               "registry-1.docker.io: no such host")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    images: frozenset[str]
    calls: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:
        return "engine-client"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Api-Version", API_VERSION)
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = re.sub(r"^/v[0-9.]+", "", urlsplit(self.path).path)
        self.server.calls.append(f"{self.command} {path}")
        if path == "/_ping":
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            self.wfile.write(data)
        elif path == "/version":
            self._answer(200, {"ApiVersion": API_VERSION, "Version": "24.0.0",
                               "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"})
        elif path == "/info":
            self._answer(200, {"OperatingSystem": "stand-in", "ServerVersion": "24.0.0"})
        elif path in ("/containers/json", "/images/json"):
            self._answer(200, [])
        elif m := re.fullmatch(r"/images/(.+)/json", path):
            name = unquote(m.group(1))
            if name in self.server.images:
                self._answer(200, {"Id": "sha256:" + "0" * 64, "RepoTags": [name]})
            else:
                self._answer(404, {"message": f"No such image: {name}"})
        elif path == "/images/create":
            self._answer(500, {"message": NO_REGISTRY})
        else:
            self._answer(500, {"message": f"the engine stand-in does not serve {path}"})

    do_GET = do_POST = do_DELETE = do_HEAD = _route


class EngineStandIn:
    """``with EngineStandIn(tmp_path, images={"connstorm:latest"}) as engine:`` then
    ``DOCKER_HOST=engine.url``."""

    def __init__(self, folder: Path, *, images: set[str]) -> None:
        self.socket_path = folder / "engine.sock"
        self._server = _Server(str(self.socket_path), _Handler)
        self._server.images = frozenset(images)
        self._server.calls = []
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The ``DOCKER_HOST`` value that reaches this engine."""
        return f"unix://{self.socket_path}"

    @property
    def calls(self) -> list[str]:
        """``METHOD /path`` of every request, API version stripped."""
        return list(self._server.calls)

    @property
    def created(self) -> list[str]:
        """Requests that would have made a container."""
        return [c for c in self.calls if c.startswith("POST /containers/create")]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
