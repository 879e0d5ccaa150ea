"""moto in server mode on 127.0.0.1, started by the tests that talk to "AWS".

One werkzeug server on a free loopback port serves every service (CloudFormation,
CloudWatch, CloudWatch Logs); boto3 reaches it through ``AWS_ENDPOINT_URL``, the
standard setting ``connstorm live`` honours, so the code under test runs
unchanged. The credentials are made up: moto accepts any, and the tests grep the
run folder for the secret to show it never lands there.

moto keeps its state per process, not per server: every server a test session
starts sees the same stacks, metrics and log groups (and the local stack's
Secrets Manager stand-in runs in the same process). So tests never reset it;
each names its resources apart instead.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REGION = "eu-west-1"
ACCESS_KEY = "AKIACONNSTORMTEST01"
#: A secret no file of a run folder may contain.
SECRET_KEY = "connstorm-test-secret-Zq8vK2mN4pR7"


@contextmanager
def moto_server() -> Iterator[str]:
    """Start moto on 127.0.0.1:<free port>; yields its URL; stopped on exit.

    moto keeps one state per process, whatever server serves it: a server starts
    with it emptied, so that a module's fixture that runs again in the same
    process (pytest-xdist hands a worker tests of several modules in turn, so a
    module's fixtures may be set up more than once) does not find what it created
    the time before.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"),
                               timeout=30).close()
        yield url
    finally:
        server.stop()


def aws_env(url: str, *, credentials: bool = True) -> dict[str, str]:
    """Environment for a ``connstorm`` subprocess that talks to moto only.

    No profile files, no instance metadata (it would leave the loopback).
    """
    env = {"AWS_ENDPOINT_URL": url, "AWS_CONFIG_FILE": "/nonexistent/aws-config",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "",
           "AWS_REGION": "", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "",
           "AWS_ACCESS_KEY_ID": ACCESS_KEY if credentials else "",
           "AWS_SECRET_ACCESS_KEY": SECRET_KEY if credentials else ""}
    return env


def client(url: str, service: str, *, attempts: int | None = None) -> Any:
    """A boto3 client of ``service`` on the moto server (``attempts``: botocore's retries)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": attempts, "mode": "standard"}) if attempts else None
    return boto3.client(service, endpoint_url=url, region_name=REGION, config=config,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def create_stack(url: str, name: str, outputs: dict[str, str]) -> None:
    """A CloudFormation stack whose only point is its outputs."""
    import json

    template = {"Resources": {"Marker": {"Type": "AWS::Logs::LogGroup", "Properties": {
                    "LogGroupName": f"/connstorm-test/{name}"}}},
                "Outputs": {key: {"Value": value} for key, value in outputs.items()}}
    client(url, "cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
