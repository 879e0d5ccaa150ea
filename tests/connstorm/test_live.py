"""``connstorm live`` against moto in server mode (CloudFormation, CloudWatch, Logs) on loopback.

Bad input is one line and its own exit code, with nothing sent and no run
folder; ``--dry-run`` prints the plan and sends nothing (its API URL does not
even answer). The end-to-end run loads the local stack's API Gateway front as
the "deployed" API and reads the metrics and log lines put into moto beforehand.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from connstorm.errors import ExitCode
from connstorm.loadtests.orchestrator.cloudwatch import floor_to
from connstorm.loadtests.orchestrator.summary import build_summary
from connstorm.scenario import load_scenario
from tests.loadtests.orchestrator.test_lambda_report_line import DOCS_COLD, WARM_SPACES
from tests.moto_server import REGION, SECRET_KEY, aws_env, client, create_stack, moto_server

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "summary.schema.json").read_text())
OUTPUTS = {"FunctionName": "connstorm-fn", "DbInstanceId": "connstorm-db",
           "ProxyName": "connstorm-proxy", "Region": REGION}
# moto keeps one state per process, shared by every server a session starts: the
# end-to-end run's resources have names no other test writes to.
E2E_OUTPUTS = {"FunctionName": "e2e-fn", "DbInstanceId": "e2e-db", "ProxyName": "e2e-proxy",
               "Region": REGION}


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as url:
        create_stack(url, "no-api", dict(OUTPUTS.items()))
        create_stack(url, "dead-api", {"ApiUrl": closed_port_url(), **OUTPUTS})
        create_stack(url, "other-region", {"ApiUrl": closed_port_url(),
                                           **{**OUTPUTS, "Region": "us-east-1"}})
        yield url


def live(url: str, *args: str, credentials: bool = True,
         timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k != "GITHUB_STEP_SUMMARY"}
    env.update({k: v for k, v in aws_env(url, credentials=credentials).items() if v})
    return subprocess.run([sys.executable, "-m", "connstorm", "live", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.mark.parametrize(("args", "code", "words"), [
    (("--stack-name", "nope", "--region", REGION), ExitCode.LIVE_STACK, "stack 'nope' not found"),
    (("--stack-name", "no-api", "--region", REGION), ExitCode.LIVE_OUTPUT, "no output ApiUrl"),
    (("--stack-name", "dead-api", "--region", "mars-north-9"), ExitCode.LIVE_REGION,
     "mars-north-9"),
    (("--stack-name", "other-region", "--region", REGION), ExitCode.LIVE_REGION,
     "use --region us-east-1"),
    (("--stack-name", "dead-api"), ExitCode.LIVE_REGION, "no AWS region"),
    (("--stack-name", "dead-api", "--region", REGION), ExitCode.LIVE_API, "does not answer"),
    (("--stack-name", "dead-api", "--region", REGION, "--locustfile", "no-such-users.py"),
     ExitCode.LOCUSTFILE, "no-such-users.py: no such locustfile"),
])
def test_bad_input_is_one_line_with_its_exit_code_and_no_run_folder(
        moto: str, tmp_path: Path, args: tuple[str, ...], code: int, words: str) -> None:
    out = tmp_path / "run"
    result = live(moto, *args, "--out", str(out))
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_no_credentials_is_one_line(moto: str, tmp_path: Path) -> None:
    result = live(moto, "--stack-name", "dead-api", "--region", REGION, "--out",
                  str(tmp_path / "run"), credentials=False)
    assert result.returncode == ExitCode.LIVE_CREDENTIALS, result.stderr
    assert result.stderr.startswith("connstorm: error: no AWS credentials")
    assert result.stderr.count("\n") == 1


def test_dry_run_prints_url_load_and_metrics_and_sends_nothing(moto: str,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = live(moto, "ci-smoke", "--stack-name", "dead-api", "--region", REGION,
                  "-u", "5", "-t", "30s", "--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    stack = client(moto, "cloudformation").describe_stacks(StackName="dead-api")["Stacks"][0]
    api = next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "ApiUrl")
    assert f"would load: {api}" in text  # a URL that does not answer: nothing was sent
    assert "5 users" in text
    assert "for 30 s" in text
    assert "at most 7500 requests" in text  # 5 users x 30 s / 20 ms think time
    for line in ("AWS/Lambda ConcurrentExecutions Maximum (Count) by FunctionName = connstorm-fn",
                 "AWS/RDS DatabaseConnections Maximum (Count) by DBInstanceIdentifier = "
                 "connstorm-db",
                 "AWS/RDS DatabaseConnectionsBorrowLatency Average (Microseconds) by ProxyName "
                 "= connstorm-proxy",
                 "/aws/lambda/connstorm-fn"):
        assert line in text
    assert not out.exists()


def test_a_local_summary_validates_against_the_schema(tmp_path: Path) -> None:
    scenario = load_scenario("ci-smoke")
    now = time.time()
    rows = [{"t": now + i, "elapsed_s": i, "collector": c, "ok": True, **v}
            for i in range(3) for c, v in (
                ("postgres", {"db_total": 4 + i, "db_app": 2, "max_connections": 20}),
                ("emulator", {"env_total": 2, "cold_starts": 2, "errors_by_kind": {}}),
                ("locust", {"users": 3, "rps": 9.0, "errors_by_kind": {}}))]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads(json.dumps(build_summary(tmp_path, scenario), default=str))
    jsonschema.validate(summary, SCHEMA)
    assert summary["variants"][0]["series_sources"]["postgres"] == {"source": "local",
                                                                    "period_s": 1.0}


# ----------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from connstorm.local_stack.stack import Stack

    run_dir = tmp_path_factory.mktemp("api")
    with Stack(load_scenario("ci-smoke"), run_dir):
        yield json.loads((run_dir / "stack.json").read_text())["api_url"]


def _put_metrics(url: str, minutes: list[float]) -> dict[str, float]:
    cw = client(url, "cloudwatch")
    values = {"DatabaseConnections": 17.0, "ClientConnections": 42.0,
              "ConcurrentExecutions": 9.0, "Throttles": 2.0}
    for t in minutes:
        stamp = datetime.fromtimestamp(t, UTC)
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
            {"MetricName": "DatabaseConnections", "Timestamp": stamp, "Value": 17.0,
             "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "e2e-db"}]},
            {"MetricName": "ClientConnections", "Timestamp": stamp, "Value": 42.0,
             "Dimensions": [{"Name": "ProxyName", "Value": "e2e-proxy"}]}])
        cw.put_metric_data(Namespace="AWS/Lambda", MetricData=[
            {"MetricName": "ConcurrentExecutions", "Timestamp": stamp, "Value": 9.0,
             "Dimensions": [{"Name": "FunctionName", "Value": "e2e-fn"}]},
            {"MetricName": "Throttles", "Timestamp": stamp, "Value": 1.0,
             "Dimensions": [{"Name": "FunctionName", "Value": "e2e-fn"}]}])
    return values


def _put_logs_once_loading(url: str, samples: Path) -> None:
    """Put the functions' log lines as they would arrive: once the load has begun."""
    deadline = time.monotonic() + 120
    while not samples.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    at = time.time()
    logs = client(url, "logs")
    group = "/aws/lambda/e2e-fn"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s1")
    messages = [DOCS_COLD, WARM_SPACES,
                "[ERROR] OperationalError: FATAL:  sorry, too many clients already"]
    logs.put_log_events(logGroupName=group, logStreamName="s1", logEvents=[
        {"timestamp": int((at + i) * 1000), "message": m} for i, m in enumerate(messages)])
    # RDS Proxy's own log group, its enhanced logging on: two sessions pinned by a SET.
    proxy_group = "/aws/rds/proxy/e2e-proxy"
    logs.create_log_group(logGroupName=proxy_group)
    logs.create_log_stream(logGroupName=proxy_group, logStreamName="proxy")
    logs.put_log_events(logGroupName=proxy_group, logStreamName="proxy", logEvents=[
        {"timestamp": int((at + i) * 1000), "message": m}
        for i, m in enumerate([PROXY_PIN_LINE, "[INFO] [default] A new client connected.",
                               PROXY_PIN_LINE])])


PROXY_PIN_REASON = ("SQL changed session settings that the proxy doesn't track. Consider moving "
                    "session configuration to the proxy's initialization query.")
PROXY_PIN_LINE = ("[WARN] [proxyEndpoint=default] [clientConnection=2125203372] The client "
                  "session was pinned to the database connection [dbConnection=1953961465] for "
                  "the remainder of the session. The proxy can't reuse this connection until "
                  f'the session ends. Reason: {PROXY_PIN_REASON} Digest: "set search_path to '
                  '$1".')


@pytest.mark.slow
def test_live_run_end_to_end_reads_cloudwatch_into_the_run_folder(
        moto: str, api: str, tmp_path: Path) -> None:
    create_stack(moto, "e2e", {"ApiUrl": api, **E2E_OUTPUTS})
    now = time.time()
    minute = floor_to(now, 60)
    # every minute the run's window can reach on a slow machine (a minute left out
    # would be a gap row: that is another test's subject)
    _put_metrics(moto, [minute + 60 * k for k in range(-1, 6)])
    out = tmp_path / "live"
    putter = threading.Thread(target=_put_logs_once_loading, args=(moto, out / "samples.jsonl"))
    putter.start()
    result = live(moto, "ci-smoke", "--stack-name", "e2e", "--region", REGION, "-u", "3",
                  "-r", "3", "-t", "4s", "--metrics-wait", "5s", "--poll-interval", "1s",
                  "--out", str(out), timeout_s=240)
    putter.join()
    assert result.returncode in (0, ExitCode.THRESHOLDS), result.stdout[-3000:] + result.stderr
    assert "CloudWatch (60 s points" in result.stdout  # the live figures as they arrived
    assert "waiting for CloudWatch's last data points" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    variant = summary["variants"][0]
    assert variant["requests"] > 0
    # No PgBouncer on AWS: the pooled scenario's live counterpart is the proxy.
    assert variant["db_path"] == "rds_proxy"
    assert variant["name"] == "rds_proxy-module_level"
    assert variant["pool_size"] is None
    assert variant["peak_db_connections"] == 17
    assert variant["peak_pooler_clients"] == 42
    assert variant["peak_concurrency"] == 9
    assert variant["cold_starts"] == 1
    assert variant["invocation_errors_by_kind"] == {"too_many_connections": 1}
    assert variant["series_sources"]["rds"] == {"source": "cloudwatch", "period_s": 60}
    assert variant["series_sources"]["locust"]["source"] == "local"
    cw = variant["cloudwatch"]
    assert cw["metrics"]["rds.DatabaseConnections"]["peak"] == 17.0
    assert "lambda.ProvisionedConcurrencySpilloverInvocations" in cw["no_data"]
    assert cw["target"]["stack_name"] == "e2e"
    assert cw["logs"]["invocations"] == 2
    # the pinning audit of a live run, from the proxy's log group, reads like a local one
    assert variant["pin_reasons"] == {PROXY_PIN_REASON: 2}
    assert variant["pin_samples"] == {PROXY_PIN_REASON: "set search_path to $1"}
    assert cw["proxy_log"]["group"] == "/aws/rds/proxy/e2e-proxy"
    assert cw["proxy_log"]["pin_lines"] == 2

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    rds = [r for r in samples if r["collector"] == "rds"]
    assert rds
    assert all(r["t"] % 60 == 0 for r in rds)
    assert {r.get("DatabaseConnections") for r in rds} == {17.0}, [
        (r["t"], r.get("DatabaseConnections")) for r in rds]

    assert "## CloudWatch" in (out / "summary.md").read_text()
    report = (out / "report.html").read_text()
    for title in ("<h2>CloudWatch</h2>", "Lambda (CloudWatch)", "RDS Proxy",
                  "set search_path to $1",
                  "rds.DatabaseConnections", "rds_proxy.ClientConnections",
                  "ClientConnections (cloudwatch, 60 s)"):
        assert title in report, title
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path
    assert SECRET_KEY not in result.stdout + result.stderr

    # The same scenario run locally (connstorm run on the same API), then side by side.
    local = tmp_path / "local"
    local_run = subprocess.run(
        [sys.executable, "-m", "connstorm", "run", "ci-smoke", "--target-url", api, "-u", "2",
         "-r", "2", "-t", "3s", "--out", str(local)], cwd=REPO, capture_output=True, text=True,
        timeout=240, check=False)
    assert local_run.returncode in (0, ExitCode.THRESHOLDS), local_run.stderr[-2000:]
    jsonschema.validate(json.loads((local / "summary.json").read_text()), SCHEMA)
    compared = tmp_path / "compare.html"
    rendered = subprocess.run([sys.executable, "-m", "connstorm", "report", str(out), str(local),
                               "--out", str(compared)], cwd=REPO, capture_output=True,
                              text=True, timeout=120, check=False)
    assert rendered.returncode == 0, rendered.stderr
    page = compared.read_text()
    assert "rds_proxy.ClientConnections" in page  # the live column's CloudWatch panel
    assert "locust.rps" in page  # both columns' load


def test_live_run_loads_the_deployed_api_with_your_own_locustfile(
        moto: str, api: str, tmp_path: Path) -> None:
    create_stack(moto, "own-users", {"ApiUrl": api, **{k: f"own-{v}" for k, v in
                                                       E2E_OUTPUTS.items() if k != "Region"},
                                     "Region": REGION})
    out = tmp_path / "own"
    reader = REPO / "tests" / "loadtests" / "own_function" / "item_reader.py"
    result = live(moto, "ci-smoke", "--stack-name", "own-users", "--region", REGION,
                  "--locustfile", str(reader), "-u", "2", "-r", "2", "-t", "3s",
                  "--metrics-wait", "1s", "--poll-interval", "1s", "--out", str(out),
                  timeout_s=240)
    assert result.returncode in (0, ExitCode.THRESHOLDS), result.stdout[-3000:] + result.stderr
    assert "Locust users from" in result.stdout
    names = {line.split(",")[1] for line in
             (out / "locust_stats.csv").read_text().splitlines()[1:]}
    assert names == {"reader: /items/{id}", "Aggregated"}  # the user's task, and only it
    assert json.loads((out / "summary.json").read_text())["variants"][0]["requests"] > 0


def test_credentials_aws_refuses_are_their_own_line() -> None:
    from botocore.exceptions import ClientError

    from connstorm.errors import LiveCredentialsError, LiveStackError
    from connstorm.loadtests.orchestrator.live_target import _client_error

    refused = ClientError({"Error": {"Code": "InvalidClientTokenId",
                                     "Message": "The security token is invalid."}},
                          "DescribeStacks")
    assert isinstance(_client_error(refused, "reading stack 's'"), LiveCredentialsError)
    other = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                        "DescribeStacks")
    err = _client_error(other, "reading stack 's'")
    assert isinstance(err, LiveStackError)
    assert str(err) == "reading stack 's': Throttling: Rate exceeded"


def test_the_live_section_names_the_stack_and_its_settings(moto: str, tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text((REPO / "loadtests" / "scenarios" / "ci-smoke.toml").read_text()
                        + f'\n[live]\nstack_name = "dead-api"\nregion = "{REGION}"\n'
                          "wait_for_metrics_s = 42\npoll_interval_s = 7\n")
    result = live(moto, str(scenario), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "stack dead-api, region eu-west-1" in result.stdout
    assert "wait up to 42 s" in result.stdout
    assert "polled every 7 s" in result.stdout
    flags = live(moto, str(scenario), "--dry-run", "--metrics-wait", "1m")
    assert "wait up to 60 s" in flags.stdout


def test_dry_run_of_an_execute_api_url_reads_api_gateway_by_its_id(moto: str) -> None:
    api = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
    create_stack(moto, "http-api", {"ApiUrl": api, **OUTPUTS})
    result = live(moto, "--stack-name", "http-api", "--region", REGION, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would load: {api}" in result.stdout  # never contacted: a dry run
    for metric in ("4xx Sum", "5xx Sum", "Count Sum", "Latency Average",
                   "IntegrationLatency Average"):
        assert f"AWS/ApiGateway {metric}" in result.stdout
    assert "by ApiId = a1b2c3d4e5" in result.stdout


def test_explicit_resources_need_no_stack(moto: str) -> None:
    api = "https://f9e8d7c6b5.execute-api.eu-west-1.amazonaws.com"
    result = live(moto, "--target-url", api, "--function", "fn-x", "--proxy", "px",
                  "--region", REGION, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would load: {api}" in result.stdout
    assert "by FunctionName = fn-x" in result.stdout
    assert "by ProxyName = px" in result.stdout
    assert "DBInstanceIdentifier" not in result.stdout  # not given: not read
    nothing = live(moto, "--region", REGION, "--dry-run")
    assert nothing.returncode == ExitCode.LIVE_OUTPUT
    assert "give --stack-name NAME" in nothing.stderr
