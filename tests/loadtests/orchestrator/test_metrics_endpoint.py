"""The ``/metrics`` endpoint over real HTTP: formats, paths, a port in use, stopping."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from connstorm.errors import EnvironmentProblemError, ExitCode
from connstorm.loadtests.orchestrator.metrics_endpoint import MetricsEndpoint
from connstorm.samples import SampleWriter


def get(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        writer.write("postgres", {"ok": True, "db_total": 2, "db_app": 1,
                                  "db_by_state": {"idle": 2}, "db_by_app": {},
                                  "max_connections": 20, "superuser_reserved_connections": 3})
    return path


def test_endpoint_serves_the_newest_rows_in_both_formats(samples: Path) -> None:
    with MetricsEndpoint(samples, 0) as endpoint:
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        # Prometheus text format by default
        content_type, text = get(endpoint.url)
        assert content_type.startswith("text/plain")
        values = {s.name: s.value for f in text_string_to_metric_families(text)
                  for s in f.samples if not s.labels}
        assert values["connstorm_postgres_max_connections"] == 20
        # OpenMetrics when the scraper asks for it, as Prometheus does
        content_type, text = get(endpoint.url, "application/openmetrics-text; version=1.0.0")
        assert content_type.startswith("application/openmetrics-text")
        assert text.endswith("# EOF\n")
        assert "connstorm_postgres_connections" in {f.name for f in openmetrics_families(text)}
        # a row written now is in the next scrape
        with SampleWriter(samples) as writer:
            writer.write("postgres", {"ok": True, "db_total": 2, "db_app": 1,
                                      "db_by_state": {"idle": 2}, "db_by_app": {},
                                      "max_connections": 30,
                                      "superuser_reserved_connections": 3})
        assert "connstorm_postgres_max_connections 30.0" in get(endpoint.url)[1]


def test_endpoint_answers_only_its_path_and_only_on_loopback(samples: Path) -> None:
    with MetricsEndpoint(samples, 0) as endpoint:
        with pytest.raises(urllib.error.HTTPError) as info:
            get(f"http://127.0.0.1:{endpoint.port}/")
        assert info.value.code == 404
        assert endpoint._server is not None
        assert endpoint._server.server_address[0] == "127.0.0.1"


def test_a_port_in_use_is_one_line_exit_4_and_nothing_runs(samples: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = MetricsEndpoint(samples, port)
        with pytest.raises(EnvironmentProblemError) as info, endpoint:
            pass
    assert str(info.value) == (f"--metrics-port {port}: 127.0.0.1:{port} is in use "
                               "(choose another port, or 0 for a free one)")
    assert info.value.exit_code == ExitCode.ENVIRONMENT
    assert endpoint._server is None


def test_stop_closes_the_port(samples: Path) -> None:
    endpoint = MetricsEndpoint(samples, 0)
    with endpoint:
        port = endpoint.port
    endpoint.stop()  # twice is fine
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
