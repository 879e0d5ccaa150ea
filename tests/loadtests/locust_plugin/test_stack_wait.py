"""Locust started before its stack: ``--connstorm-stack-wait-s`` with a real Locust.

``connstorm run`` starts Locust while the local stack starts; the plugin must
hold every user back until ``stack.json`` exists, aim at its ``api_url``, and
end Locust with one line when the file never comes.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connstorm.loadtests.locust_plugin.route_load import ENV_ROUTES
from connstorm.loadtests.orchestrator.locust_process import LocustProcess
from connstorm.loadtests.orchestrator.locustfiles import ROUTES_LOCUSTFILE

ROUTES = json.dumps([{"method": "GET", "path": "/health", "weight": 1}])


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[float] = []  # noqa: RUF012  - shared by the test's one server

    def do_GET(self) -> None:
        _Recorder.seen.append(time.monotonic())
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _locust(tmp_path: Path, wait_s: float, run_s: int) -> LocustProcess:
    args = ["-f", str(ROUTES_LOCUSTFILE), "--headless", "--only-summary", "-u", "2", "-r", "2",
            "-t", f"{run_s}s", "--connstorm-out", str(tmp_path),
            "--connstorm-stack", str(tmp_path / "stack.json"),
            "--connstorm-stack-wait-s", str(wait_s), "--sample-interval-s", "0.5"]
    return LocustProcess(args, tmp_path / "locust.log", env={**os.environ, ENV_ROUTES: ROUTES})


def test_users_wait_for_the_stack_file_and_aim_at_its_api(tmp_path: Path, api: str) -> None:
    with _locust(tmp_path, wait_s=60, run_s=2) as proc:
        time.sleep(1.5)  # Locust is up and waiting by now (it imports in ~0.5 s)
        assert proc.poll() is None
        assert _Recorder.seen == []
        written = time.monotonic()
        (tmp_path / "stack.json").write_text(json.dumps({"api_url": api}))
        assert proc.wait(60) == 0, proc.tail()
    assert _Recorder.seen, proc.tail()
    assert min(_Recorder.seen) >= written


def test_a_stack_that_never_comes_ends_locust_with_one_line(tmp_path: Path, api: str) -> None:
    with _locust(tmp_path, wait_s=0.5, run_s=2) as proc:
        code = proc.wait(60)
    assert code == 3
    assert f"{tmp_path / 'stack.json'} did not appear within 0.5 s; stopping" in proc.tail()
    assert _Recorder.seen == []
