"""summary.json's lambda_lifecycle: from sample rows (pure logic), and from a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connstorm.loadtests.orchestrator.lifecycle_summary import lifecycle_figures
from connstorm.scenario import load_scenario
from tests.loadtests.conftest import connstorm

SCENARIO = """
name = "pc"
[[functions]]
name = "api"
pattern = "module_level"
database = "direct"
provisioned_concurrency = 4
"""


def _emulator(provisioned: int, busy: int, spill: int, superseded: int = 0) -> dict[str, object]:
    return {"collector": "emulator", "ok": True, "provisioned": provisioned,
            "provisioned_busy": busy, "provisioned_invocations": 10,
            "spillover_invocations": spill, "superseded": superseded, "deploys": 1,
            "scheduled_invocations": 3, "rejections": 0}


def test_lifecycle_figures_utilization_spillover_and_baseline(tmp_path: Path) -> None:
    path = tmp_path / "pc.toml"
    path.write_text(SCENARIO)
    rows = [
        {"collector": "postgres", "ok": True, "db_app": 4},  # before the load: the baseline
        _emulator(4, 1, 0),
        {"collector": "emulator", "ok": False},
        _emulator(4, 4, 7, superseded=4),
        {"collector": "postgres", "ok": True, "db_app": 11},
        _emulator(4, 2, 9),
    ]
    out = lifecycle_figures(rows, load_scenario(path))
    assert out["provisioned_concurrency"] == 4
    assert out["baseline_db_connections"] == 4
    assert out["provisioned_utilization"] == {"mean": round(7 / 12, 4), "max": 1.0}
    assert out["spillover_invocations"] == 9
    assert out["provisioned_invocations"] == 10
    assert out["peak_superseded_environments"] == 4
    assert out["deploys"] == 1
    assert out["scheduled_invocations"] == 3


def test_lifecycle_figures_without_provisioned_concurrency_or_samples(tmp_path: Path) -> None:
    path = tmp_path / "pc.toml"
    path.write_text(SCENARIO.replace("provisioned_concurrency = 4", ""))
    out = lifecycle_figures([], load_scenario(path))
    assert out["provisioned_concurrency"] == 0
    assert out["provisioned_utilization"] is None
    assert out["baseline_db_connections"] is None
    assert out["spillover_invocations"] == 0


@pytest.mark.slow
def test_run_with_provisioned_concurrency_reports_baseline_and_spillover(tmp_path: Path) -> None:
    run_dir = tmp_path / "pc"
    # WHEN 8 users hit a function with 5 provisioned environments, straight to PostgreSQL
    result = connstorm("run", "direct-small", "--set", "functions.api.provisioned_concurrency=5",
                       "-u", "8", "-r", "8", "-t", "6s", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    (variant,) = json.loads((run_dir / "summary.json").read_text())["variants"]
    life = variant["lambda_lifecycle"]
    # THEN the five held their connections before the load, and the rest spilled over
    assert life["provisioned_concurrency"] == 5
    assert life["baseline_db_connections"] == 5
    assert life["spillover_invocations"] > 0
    assert life["provisioned_invocations"] > life["spillover_invocations"]
    assert 0 < life["provisioned_utilization"]["max"] <= 1
    assert variant["cold_starts"] <= 3  # only the environments beyond the provisioned five
    # AND the report says so
    assert "provisioned concurrency 5 held 5 DB connections before any request" in (
        run_dir / "summary.md").read_text()


@pytest.mark.slow
def test_run_with_a_deploy_shows_old_and_new_generations_connected_at_once(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "deploy"
    # WHEN a new version is deployed in the middle of a steady load
    result = connstorm("run", "direct-small", "--set",
                       'timeline=[{at_s=3, action="deploy", target="api"}]',
                       "-u", "6", "-r", "6", "-t", "8s", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    (variant,) = json.loads((run_dir / "summary.json").read_text())["variants"]
    life = variant["lambda_lifecycle"]
    old = life["peak_superseded_environments"]
    # THEN the old generation stayed connected while the new one opened its own
    assert life["deploys"] == 1
    assert old >= 1
    assert variant["cold_starts"] > old  # new requests, new environments
    # every environment ever started, old or new, held its connection at the peak
    assert variant["peak_db_app_connections"] == variant["peak_environments"] == \
        variant["cold_starts"]
    assert f"up to {old} environments of the old version stayed connected" in (
        run_dir / "summary.md").read_text()


def test_refusals_while_vanished_connections_were_held(tmp_path: Path) -> None:
    path = tmp_path / "pc.toml"
    path.write_text(SCENARIO.replace("provisioned_concurrency = 4", ""))

    def row(refused: int, held: int) -> dict[str, object]:
        return {"collector": "emulator", "ok": True, "vanished_connections": held,
                "errors_by_kind": {"too_many_connections": refused}}

    rows = [row(0, 0), row(2, 0),  # refused before any environment vanished: not counted
            row(2, 4), row(7, 4), {"collector": "emulator", "ok": False}, row(9, 6),
            row(10, 0)]  # the last one after the held connections were gone
    out = lifecycle_figures(rows, load_scenario(path))
    assert out["refused_while_vanished"] == 7
    assert lifecycle_figures([], load_scenario(path))["refused_while_vanished"] == 0
