"""A function of one's own under load, end to end: real stack, real Locust, real requests.

The function (``own_function/app.py``) prints every request it gets to its log
stream, so what reached it is counted from its side, not only from Locust's.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.loadtests.conftest import connstorm, processes_mentioning, rows

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent / "own_function"
MARK = "connstorm-test-request"


def _function_requests(run_dir: Path) -> Counter[str]:
    """``METHOD path`` of every request the function got, from its environments' logs."""
    seen: Counter[str] = Counter()
    for log in (run_dir / "logs" / "lambda" / "mine").glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(MARK + " "):
                seen[line[len(MARK) + 1:]] += 1
    return seen


def _locust_stats(run_dir: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, name) -> (requests, failures) from locust_stats.csv, without the total."""
    with (run_dir / "locust_stats.csv").open(newline="") as handle:
        return {(row["Type"], row["Name"]): (int(row["Request Count"]), int(row["Failure Count"]))
                for row in csv.DictReader(handle) if row["Name"] != "Aggregated"}


def _no_leftovers(run_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(str(run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(run_dir)) == []


def test_only_route_health_gets_every_request_and_no_404(tmp_path: Path) -> None:
    run_dir = tmp_path / "health"
    # GIVEN a scenario whose one route is GET /health on a function of the user's own
    result = connstorm("run", str(HERE / "health_only.toml"), "--out", str(run_dir))
    # THEN every request went to /health and none failed (no 404 for another path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    stats = _locust_stats(run_dir)
    assert list(stats) == [("GET", "/health")]
    requests, failures = stats[("GET", "/health")]
    assert requests > 100
    assert failures == 0
    seen = _function_requests(run_dir)
    assert list(seen) == ["GET /health"]
    # the function saw at least what Locust counted (a request cut at the end is its alone)
    assert seen["GET /health"] >= requests
    variant = json.loads((run_dir / "summary.json").read_text())["variants"][0]
    assert variant["failures"] == 0
    assert variant["errors_by_kind"] == {}
    _no_leftovers(run_dir)


def test_weights_params_body_and_headers_hold_on_two_processes(tmp_path: Path) -> None:
    run_dir = tmp_path / "mixed"
    # GIVEN GET /nums/{n} (weight 3, n in 5..9) and POST /echo/{word} (weight 1, a body
    # and a header the function checks), loaded by two Locust worker processes
    result = connstorm("run", str(HERE / "mixed_routes.toml"), "--processes", "2",
                       "--out", str(run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    stats = _locust_stats(run_dir)
    assert set(stats) == {("GET", "/nums/{n}"), ("POST", "/echo/{word}")}
    nums, num_failures = stats[("GET", "/nums/{n}")]
    echoes, echo_failures = stats[("POST", "/echo/{word}")]
    # the function answers 400 to a value out of range or a missing body or header
    assert num_failures == 0
    assert echo_failures == 0
    assert nums + echoes > 800  # enough that one unfinished round per user is noise
    # THEN the 3:1 weights hold within 10 %, counted by Locust and by the function
    assert 2.7 <= nums / echoes <= 3.3, (nums, echoes)
    seen = _function_requests(run_dir)
    got_nums = sum(n for key, n in seen.items() if key.startswith("GET /nums/"))
    got_echoes = sum(n for key, n in seen.items() if key.startswith("POST /echo/"))
    assert got_nums + got_echoes == sum(seen.values())  # nothing else was called
    assert 2.7 <= got_nums / got_echoes <= 3.3, (got_nums, got_echoes)
    # ... and the params: every value of the range (both ends), nothing outside it
    assert {key for key in seen if key.startswith("GET ")} == {
        f"GET /nums/{n}" for n in range(5, 10)}
    assert {key for key in seen if key.startswith("POST ")} == {"POST /echo/alpha",
                                                                "POST /echo/beta"}
    variant = json.loads((run_dir / "summary.json").read_text())["variants"][0]
    assert len(variant["requests_by_worker"]) == 2
    _no_leftovers(run_dir)


def test_own_locustfile_runs_its_tasks_and_failures_are_classified(tmp_path: Path) -> None:
    run_dir = tmp_path / "own"
    # GIVEN [load] locustfile = "own_users.py": plain Locust users (HttpUser and
    # FastHttpUser) that never mark a failure themselves; /fail answers a bare 502
    result = connstorm("run", str(HERE / "own_users.toml"), "--processes", "2",
                       "--out", str(run_dir))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "ShopperUser, FastShopperUser" in result.stdout
    # THEN the user's tasks ran, under the user's names
    stats = _locust_stats(run_dir)
    assert set(stats) == {("GET", "own: /health"), ("GET", "own: /fail"),
                          ("GET", "own fast: /fail")}
    assert stats[("GET", "own: /health")][0] > 0
    assert stats[("GET", "own: /health")][1] == 0
    failed = stats[("GET", "own: /fail")][1] + stats[("GET", "own fast: /fail")][1]
    assert failed > 0
    # ... and the failures are classified as connstorm's own users' are: by kind,
    # from the front's X-Connstorm-Error-Kind, not as http_error or other
    with (run_dir / "locust_failures.csv").open(newline="") as handle:
        errors = {row["Error"] for row in csv.DictReader(handle)}
    assert errors == {"CatchResponseError('HTTP 502 [too_many_connections] "
                      "Internal Server Error')"}
    variant = json.loads((run_dir / "summary.json").read_text())["variants"][0]
    assert variant["client_errors_by_kind"] == {"too_many_connections": failed}
    assert variant["errors_by_kind"] == {"too_many_connections": failed}
    # the plugin ran beside them: collectors, the errors-by-kind counter, the report
    locust_rows = rows(run_dir, "locust")
    assert locust_rows
    assert locust_rows[-1]["errors_by_kind"].get("too_many_connections", 0) > 0
    assert (run_dir / "report.html").exists()
    _no_leftovers(run_dir)


@pytest.mark.parametrize(("text", "expected"), [
    (None, "no such locustfile"),
    ("from locust import task\n", "no Locust User class in it"),
])
def test_a_locustfile_that_cannot_run_is_one_line_before_anything_starts(
        tmp_path: Path, text: str | None, expected: str) -> None:
    path = tmp_path / "mine.py"
    if text is not None:
        path.write_text(text)
    run_dir = tmp_path / "run"
    result = connstorm("run", str(HERE / "health_only.toml"), "--locustfile", str(path),
                       "--out", str(run_dir), timeout_s=120)
    assert result.returncode == 12
    assert result.stderr == f"connstorm: error: {path}: {expected}" + (
        "" if text is None else " (define a subclass of HttpUser, FastHttpUser or User with "
        "@task methods)") + "\n"
    assert not run_dir.exists()  # nothing started, nothing written


def test_repro_checks_your_locustfile_before_it_announces_anything(tmp_path: Path) -> None:
    # The repro's banner names a run folder and a time; a missing locustfile must stop
    # it before that, as a bad --baseline does, not after a spinner has started
    path, out = tmp_path / "mine.py", tmp_path / "repro"
    result = connstorm("repro", "--quick", "--locustfile", str(path), "--out", str(out),
                       timeout_s=120)
    assert result.returncode == 12
    assert result.stderr == f"connstorm: error: {path}: no such locustfile\n"
    assert result.stdout == ""
    assert not out.exists()


def test_repro_comparison_runs_your_locustfile_on_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "repro"
    # GIVEN the RDS Proxy pair of connstorm repro, loaded by a user's plain locustfile
    result = connstorm("repro", "--preset", "rds_proxy", "--quick", "--locustfile",
                       str(HERE / "item_reader.py"), "--out", str(out))
    assert result.returncode in (0, 6), result.stdout[-3000:] + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    by_name = {v["name"]: v for v in summary["variants"]}
    assert set(by_name) == {"rds_proxy-resilient", "rds_proxy-session_state"}
    # THEN every variant ran the user's task, and only it
    for name in by_name:
        stats = _locust_stats(out / "variants" / name)
        assert list(stats) == [("GET", "reader: /items/{id}")], name
        assert stats[("GET", "reader: /items/{id}")][0] > 0
    # ... and a pinned pool's failures are named by kind, as the built-in user's are
    pinned = by_name["rds_proxy-session_state"]
    assert set(pinned["client_errors_by_kind"]) <= {"proxy_borrow_timeout"}
    assert by_name["rds_proxy-resilient"]["failures"] == 0
    _no_leftovers(out)
