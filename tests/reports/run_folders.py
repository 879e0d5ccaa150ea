"""Small run folders in the documented format (docs/run-folder.md), for renderer tests.

Writing these files is pure data: the renderers' job is to read the contract,
so tests build exactly what the contract says and check the renderings against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PASSWORD = "s3cretPassw0rdXYZ"  # must never appear in any rendering


def samples(ticks: int = 12, *, max_connections: int = 20, gap_at: int | None = 5,
            pooler: bool = True) -> list[dict[str, Any]]:
    """A run that climbs to max_connections and starts failing half way."""
    rows: list[dict[str, Any]] = []
    t0 = 1_800_000_000.0
    for i in range(ticks):
        t = t0 + i
        base = {"t": t, "elapsed_s": float(i), "ok": True}
        active = min(i * 2, max_connections - 4)
        idle = min(i, 3)
        if i == gap_at:
            rows.append({**base, "collector": "postgres", "ok": False,
                         "error": "FATAL:  sorry, too many clients already"})
        else:
            rows.append({**base, "collector": "postgres", "db_total": active + idle + 1,
                         "db_app": active + idle,
                         "db_by_state": {"active": active, "idle": idle + 1},
                         "db_by_app": {"connstorm": active + idle},
                         "max_connections": max_connections, "superuser_reserved_connections": 3})
        if pooler:
            rows.append({**base, "collector": "pgbouncer", "cl_active": i,
                         "cl_waiting": max(0, i - 5),
                         "sv_active": min(i, 5), "sv_idle": 1, "sv_used": 0, "sv_login": 0,
                         "maxwait_s": 0.0, "pool_mode": "transaction", "total_xact_count": i * 10,
                         "total_query_count": i * 20, "total_wait_time_us": 0})
        rows.append({**base, "collector": "emulator", "env_initializing": 0, "env_busy": i,
                     "env_frozen": i // 2, "env_idle": 0, "env_total": i + i // 2, "env_reaped": 0,
                     "concurrency": i, "concurrency_peak": i, "invocations": i * 30,
                     "cold_starts": i + i // 2, "throttles": 0, "timeouts": 0,
                     "errors": max(0, i - 6),
                     "errors_by_kind": {"too_many_connections": max(0, i - 6)}})
        rows.append({**base, "collector": "locust", "users": i * 5, "requests": i * 30,
                     "failures": max(0, i - 6), "rps": 30.0 + i,
                     "fail_per_s": 1.0 if i > 6 else 0.0,
                     "p50_ms": 3.0 + i, "p95_ms": 10.0 + i, "p99_ms": 20.0 + 2 * i,
                     "errors_by_kind": {"too_many_connections": max(0, i - 6)} if i > 6 else {}})
    return rows


def summary(name: str = "direct-module_level", *, failures: int = 5, passed: bool = False
            ) -> dict[str, Any]:
    return {
        "scenario": "direct-small", "passed": passed,
        "thresholds": [
            {"name": "max_fail_ratio", "limit": 0.01, "actual": 0.42, "passed": passed},
            {"name": "min_rps", "limit": 10, "actual": 41.5, "passed": True},
        ],
        "variants": [{
            "name": name, "db_path": "direct", "pool_mode": None,
            "handler": "handlers.module_level_handler.lambda_handler",
            "requests": 330, "failures": failures,
            "errors_by_kind": {"too_many_connections": failures} if failures else {},
            "peak_db_connections": 20, "max_connections": 20, "peak_pooler_clients": 0,
            "peak_environments": 11, "cold_starts": 16, "throttles": 0,
            "p50_ms": 3.1, "p95_ms": 12.0, "p99_ms": 40.0, "rps": 41.5}],
    }


def write_run(run_dir: Path, *, rows: list[dict[str, Any]] | None = None,
              summary_doc: dict[str, Any] | None = None, with_summary: bool = True) -> Path:
    """A complete run folder: scenario, stack (with passwords), samples, summary, logs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "scenario.json").write_text(json.dumps({
        "name": "direct-small", "description": "module_level handlers <straight> to PostgreSQL",
        "postgres": {"max_connections": 20, "url": f"postgresql://admin:{PASSWORD}@127.0.0.1:1/x"},
    }))
    (run_dir / "stack.json").write_text(json.dumps({
        "scenario": "direct-small", "run_dir": str(run_dir), "pid": 1,
        "postgres_dsn": f"postgresql://app:{PASSWORD}@127.0.0.1:5555/app",
        "postgres_admin_dsn": f"postgresql://postgres:{PASSWORD}@127.0.0.1:5555/postgres",
        "pgbouncer_dsn": f"postgresql://app:{PASSWORD}@127.0.0.1:6666/app",
        "pgbouncer_admin_dsn": None, "api_url": "http://127.0.0.1:7777",
        "app_password": PASSWORD,
        "max_connections": 20, "superuser_reserved_connections": 3,
        "pool_mode": "transaction", "default_pool_size": 10}))
    lines = [json.dumps(r) for r in (rows if rows is not None else samples())]
    (run_dir / "samples.jsonl").write_text("".join(line + "\n" for line in lines))
    if with_summary:
        (run_dir / "summary.json").write_text(json.dumps(summary_doc or summary()))
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "postgres.log").write_text(
        "2026-11-26 22:00:00 UTC LOG:  starting PostgreSQL 15.18 (Debian 15.18-0+deb12u1) "
        "on x86_64\n")
    (logs / "pgbouncer.log").write_text(
        "2026-11-26 22:00:00 UTC LOG process up: PgBouncer 1.18.0, libevent 2.1.12-stable\n")
    return run_dir


def repro_run(out: Path) -> dict[str, Any]:
    """A ``connstorm repro --quick`` run folder, summarised by repro's own code.

    Each variant's run folder is synthetic (:func:`write_run`); the comparison
    (its expectations, the entries, ``summary.json``) is built by
    :mod:`connstorm.loadtests.orchestrator.repro` exactly as after a real run. The direct
    variant fails
    its own thresholds, as it is meant to; the transaction pooler passes them.
    """
    from connstorm.loadtests.orchestrator import repro
    from connstorm.run_folder import variant_dir

    results = []
    for variant in repro.variants_for(quick=True):
        scenario = repro.variant_scenario(variant, repro.QUICK)
        failing = variant.name != "pgbouncer-transaction"
        doc = summary(variant.name, failures=40 if failing else 0, passed=not failing)
        entry_doc = doc["variants"][0]
        entry_doc["peak_db_connections"] = scenario.postgres.max_connections
        entry_doc["peak_pooler_server_connections"] = 2
        entry_doc["peak_pooler_waiting"] = 5 if variant.name == "pgbouncer-session" else 0
        if not failing:
            entry_doc["function_errors_by_kind"] = {}
        run_dir = write_run(variant_dir(out, variant.name), summary_doc=doc)
        results.append((variant, scenario, repro._entry(variant, doc, run_dir)))
    built = repro.build_summary(results, quick=True, elapsed_s=30.0, complete=True)
    (out / "summary.json").write_text(json.dumps(built))
    return built
