"""What each handler pattern costs: Init (module import) and a warm invocation.

* **import, fresh interpreter**: ``import handlers.<pattern>_handler`` in a new
  ``python`` with nothing preloaded, as a Lambda cold start on AWS pays it
  (module-level connects included; boto3 is imported lazily by the credential
  patterns, at their first connect, so it is not in this figure);
* **Init Duration under the emulator**: the emulator's own ``init_ms`` for the
  first invocation of a fresh environment (its zygote has preloaded psycopg,
  psycopg_pool and boto3, so this is the handler's own init, mostly the connect);
* **invocation**: ``GET /items/{id}`` through the handler, in this process,
  against PostgreSQL directly: per_invocation pays a SCRAM connect each time.

Usage::

    .venv/bin/python benchmarks/handlers_init.py --runs 7 --calls 300
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connstorm.handlers.workload import schema  # noqa: E402
from connstorm.local_stack.lambda_.process import EmulatorProcess  # noqa: E402
from connstorm.local_stack.postgres import PostgresServer  # noqa: E402
from connstorm.scenario import FunctionConfig, LambdaConfig, PostgresConfig, Scenario  # noqa: E402
from tests.handlers import apigw_events  # noqa: E402

PATTERNS = ("per_invocation", "leaky", "module_level", "module_level_resilient",
            "in_process_pool")
WARM = ("per_invocation", "module_level", "module_level_resilient", "in_process_pool")


def fresh_import_ms(pattern: str, env: dict[str, str], runs: int) -> float:
    code = ("import time; t = time.perf_counter(); "
            f"import handlers.{pattern}_handler; "
            "print((time.perf_counter() - t) * 1000)")
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                             cwd=ROOT, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def emulator_init_ms(env: dict[str, str], runs: int, run_dir: Path) -> dict[str, float]:
    functions = tuple(FunctionConfig(p.replace("_", "-"), f"handlers.{p}_handler.lambda_handler",
                                     pattern=p, database="direct", max_lifetime_s=0.001)
                      for p in PATTERNS)
    scenario = Scenario(name="bench", source=str(run_dir / "bench.toml"),
                        lambda_=LambdaConfig(concurrency_limit=20), functions=functions)
    result: dict[str, float] = {}
    with EmulatorProcess(scenario, run_dir, {f.name: env for f in functions}) as emu:
        event = json.dumps(apigw_events.v2("GET", "/health")).encode()
        for fn in functions:
            for _ in range(runs):
                req = urllib.request.Request(
                    f"{emu.invoke_url}/2015-03-31/functions/{fn.name}/invocations",
                    data=event, method="POST")
                with urllib.request.urlopen(req, timeout=30) as resp:
                    assert json.load(resp)["statusCode"] == 200
                time.sleep(0.3)  # let the retired environment go: the next one is cold
    rows = [json.loads(line) for line in (run_dir / "invocations.jsonl").read_text().splitlines()]
    for fn in functions:
        inits = [r["init_ms"] for r in rows if r["function"] == fn.name and r["cold"]
                 and r["init_ms"] is not None]
        result[fn.pattern or fn.name] = statistics.median(inits) if inits else float("nan")
        result[f"{fn.pattern}_cold"] = len(inits)
    return result


def warm_call_ms(pattern: str, env: dict[str, str], calls: int) -> float:
    os.environ.update(env)
    module = importlib.import_module(f"handlers.{pattern}_handler")
    event = apigw_events.v2("GET", "/items/7")
    module.lambda_handler(event, None)
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the handlers' log lines
    stdout, sys.stdout = sys.stdout, devnull
    try:
        started = time.perf_counter()
        for _ in range(calls):
            module.lambda_handler(event, None)
        return (time.perf_counter() - started) * 1000 / calls
    finally:
        sys.stdout = stdout
        devnull.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = PostgresConfig(settings={"max_connections": 100})
        with PostgresServer(cfg, Path(tmp) / "pg") as pg:
            schema.install(pg.app_dsn, 1000)
            env = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_NAME": "app",
                   "DB_USER": "app", "DB_PASSWORD": pg.app_password, "DB_SSLMODE": "disable",
                   "AWS_LAMBDA_FUNCTION_NAME": "bench"}
            print("| pattern | import, fresh interpreter (ms, median) "
                  "| Init Duration under the emulator (ms, median) "
                  "| warm GET /items/{id} in-process (ms, mean) |")
            print("|---|---|---|---|")
            inits = emulator_init_ms(env, args.runs, Path(tmp) / "emu")
            for pattern in PATTERNS:
                fresh = fresh_import_ms(pattern, env, args.runs)
                warm = (f"{warm_call_ms(pattern, env, args.calls):.2f}"
                        if pattern in WARM else "n/a (leaks)")
                print(f"| {pattern} | {fresh:.0f} | {inits[pattern]:.1f} "
                      f"(n={inits[pattern + '_cold']:.0f}) | {warm} |")


if __name__ == "__main__":
    main()
