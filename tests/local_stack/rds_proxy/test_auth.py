"""RDS Proxy stand-in client auth with ``iam_auth = "required"``: real boto3 tokens."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import psycopg
import pytest

from connstorm.local_stack.aws_credentials import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from connstorm.local_stack.postgres import PostgresServer
from connstorm.local_stack.rds_proxy.proxy import RdsProxy
from connstorm.sections.rds_proxy import RdsProxyConfig

pytestmark = pytest.mark.slow


@pytest.fixture
def iam_proxy(pg: PostgresServer) -> Iterator[RdsProxy]:
    with RdsProxy(RdsProxyConfig(iam_auth="required"), upstream_host=pg.host,
                  upstream_port=pg.port, passwords={pg.app_user: pg.app_password or ""},
                  iam_keys={DUMMY_ACCESS_KEY: DUMMY_SECRET_KEY}, pool_size=2) as proxy:
        yield proxy


def _token(proxy: RdsProxy, user: str, port: int | None = None) -> str:
    rds = boto3.session.Session().client("rds", region_name="us-east-1",
                                         aws_access_key_id=DUMMY_ACCESS_KEY,
                                         aws_secret_access_key=DUMMY_SECRET_KEY)
    return str(rds.generate_db_auth_token(DBHostname=proxy.host, Port=port or proxy.port,
                                          DBUsername=user))


def test_iam_required_takes_a_token_and_refuses_the_password(pg: PostgresServer,
                                                             iam_proxy: RdsProxy) -> None:
    with psycopg.connect(host=iam_proxy.host, port=iam_proxy.port, dbname=pg.app_dbname,
                         user=pg.app_user, password=_token(iam_proxy, pg.app_user)) as conn:
        assert conn.execute("select current_user").fetchone() == (pg.app_user,)
    refused = [
        pg.app_password,  # the password is no longer enough
        _token(iam_proxy, pg.app_user, port=iam_proxy.port + 1),  # a token for another host
    ]
    for password in refused:
        with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
            psycopg.connect(host=iam_proxy.host, port=iam_proxy.port, dbname=pg.app_dbname,
                            user=pg.app_user, password=password)
    with pytest.raises(psycopg.OperationalError, match="PAM authentication failed"):
        psycopg.connect(host=iam_proxy.host, port=iam_proxy.port, dbname=pg.app_dbname,
                        user="nobody", password=_token(iam_proxy, "nobody"))
    metrics = iam_proxy.metrics()
    assert metrics["ClientConnectionsSetupFailedAuth"] == 3
    assert metrics["ClientConnectionsSetupSucceeded"] == 1


def test_iam_required_needs_keys() -> None:
    with pytest.raises(ValueError, match="iam_keys"):
        RdsProxy(RdsProxyConfig(iam_auth="required"), upstream_host="127.0.0.1",
                 upstream_port=1, passwords={"app": "x"})
