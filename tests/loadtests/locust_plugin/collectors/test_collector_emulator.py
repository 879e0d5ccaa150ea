"""The emulator collector against a real HTTP server that comes and goes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from connstorm.loadtests.locust_plugin.collectors.emulator import EmulatorCollector, stats_to_row
from connstorm.samples import SampleWriter, read_samples

STATS: dict[str, Any] = {
    "t": 1.0, "env_initializing": 1, "env_busy": 4, "env_frozen": 10, "env_idle": 0,
    "env_stopping": 0, "env_total": 15, "env_reaped": 2, "concurrency": 4,
    "concurrency_peak": 9, "invocations": 120, "cold_starts": 15, "throttles": 3, "timeouts": 1,
    "errors": 7, "errors_by_kind": {"too_many_connections": 6, "lambda_timeout": 1},
    "vanished_connections": 5, "vanished_environments": 4,
    "functions": {"api": {}},
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(STATS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def stats_server(port: int = 0) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_emulator_stats_map_to_the_documented_columns() -> None:
    row = stats_to_row(STATS)
    assert row["env_total"] == 15
    assert row["env_frozen"] == 10
    assert row["concurrency"] == 4
    assert row["concurrency_peak"] == 9
    assert row["errors_by_kind"] == {"too_many_connections": 6, "lambda_timeout": 1}
    # reaped environments' connections the server still holds: a series of their own
    assert (row["vanished_connections"], row["vanished_environments"]) == (5, 4)
    nested = stats_to_row({"environments": {"busy": 2, "frozen": 3},
                           "concurrency": {"now": 2, "peak": 5}})
    assert nested["env_total"] == 5
    assert nested["concurrency_peak"] == 5


def test_emulator_collector_records_a_gap_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        with stats_server() as server:
            port = server.server_address[1]
            collector = EmulatorCollector(writer, f"http://127.0.0.1:{port}/_connstorm/stats",
                                          timeout_s=2)
            first = collector.tick()
        # GIVEN the emulator is gone WHEN sampling THEN a gap row, and no exception
        gap = collector.tick()
        with stats_server(port):
            again = collector.tick()
    assert first["ok"] is True
    assert first["cold_starts"] == 15
    assert gap["ok"] is False
    assert "refused" in gap["error"].lower()
    assert again["ok"] is True
    assert [r["ok"] for r in read_samples(path)] == [True, False, True]
    assert collector.gaps == 1


def test_collector_loop_keeps_sampling_through_failures(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        collector = EmulatorCollector(writer, "http://127.0.0.1:9/none", interval_s=0.05,
                                      timeout_s=0.5)
        with collector:
            deadline = time.monotonic() + 10
            while collector.ticks < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
        ticks = collector.ticks
    rows = read_samples(path)
    assert ticks >= 3
    assert len(rows) == ticks
    assert all(r["collector"] == "emulator" and r["ok"] is False for r in rows)
