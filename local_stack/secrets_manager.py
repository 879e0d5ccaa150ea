"""Secrets Manager stand-in: moto's server on 127.0.0.1, holding the app's credentials.

The ``secrets_cached`` handler calls ``GetSecretValue`` with plain boto3; locally
boto3 is pointed here by ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` (boto3's standard
per-service endpoint variable: the service id "Secrets Manager" upper-cased with
``_`` for the space; ``..._SECRETSMANAGER`` is silently ignored), so the
handler's code is the code that runs on AWS. The secret has the shape RDS
writes for a database secret: ``{"username", "password", "host", "port", "dbname"}``.

moto runs in this process, on a thread (werkzeug's threaded server, as moto's
own ``ThreadedMotoServer``), so it can never outlive the stack. Requests are
counted by operation (``calls``) so tests and reports can show how often the
functions really fetched the secret. moto accepts any credentials and
signatures: IAM permissions are not verified locally.

>>> with SecretsManagerServer(username="app", password="pw", host="127.0.0.1",
...                           port=5432, dbname="app") as sm:
...     env = sm.function_env()   # DB_SECRET_ARN, AWS_ENDPOINT_URL_SECRETS_MANAGER
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from connstorm.errors import StackError
from connstorm.local_stack.aws_credentials import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY

_log = logging.getLogger(__name__)


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SecretsManagerServer:
    """moto's Secrets Manager on a free loopback port, with one database secret."""

    def __init__(self, *, username: str, password: str, host: str, port: int,
                 dbname: str, region: str = "us-east-1",
                 secret_name: str | None = None, start_timeout_s: float = 30.0) -> None:
        self.region = region
        self.secret_name = secret_name or f"connstorm/{dbname}/{secrets.token_hex(4)}"
        self._secret = {"username": username, "password": password, "host": host,
                        "port": port, "dbname": dbname, "engine": "postgres"}
        self._start_timeout_s = start_timeout_s
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.secret_arn: str | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve on 127.0.0.1 (free port) and create the secret."""
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class QuietHandler(MotoRequestHandler):
            """No access log on stderr: the stack's output stays readable."""

            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        app = self._counting(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=True,
                                   request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="secrets-manager", daemon=True)
        self._thread.start()
        try:
            answer = self.client().create_secret(Name=self.secret_name,
                                                 SecretString=json.dumps(self._secret))
        except Exception as exc:
            self.stop()
            raise StackError(f"Secrets Manager stand-in (moto) did not start: {exc}") from exc
        self.secret_arn = str(answer["ARN"])
        self.calls.clear()
        _log.info("Secrets Manager stand-in on %s, secret %s", self.endpoint_url,
                  self.secret_arn)

    def stop(self) -> None:
        """Stop serving; safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> SecretsManagerServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------ use

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``, for boto3's ``endpoint_url``."""
        if self._server is None:
            raise StackError("Secrets Manager stand-in is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def function_env(self) -> dict[str, str]:
        """What a ``secrets_cached`` function needs in its environment (no password)."""
        assert self.secret_arn is not None
        return {"DB_SECRET_ARN": self.secret_arn,
                "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.endpoint_url}

    def client(self) -> Any:
        """A boto3 Secrets Manager client for this server (dummy keys)."""
        import boto3

        # A session of its own: the default one may be shared with code that
        # reads AWS_ENDPOINT_URL_* from this process's environment.
        return boto3.session.Session().client("secretsmanager", endpoint_url=self.endpoint_url,
                            region_name=self.region, aws_access_key_id=DUMMY_ACCESS_KEY,
                            aws_secret_access_key=DUMMY_SECRET_KEY)

    def rotate(self, password: str) -> None:
        """Store a new password in the secret (the database's role is the caller's job)."""
        self._secret["password"] = password
        self.client().put_secret_value(SecretId=self.secret_arn,
                                       SecretString=json.dumps(self._secret))
        with self._lock:
            self.calls["PutSecretValue"] -= 1  # our own call, not a function's

    def fetches(self) -> int:
        """``GetSecretValue`` calls served so far (by the functions)."""
        with self._lock:
            return self.calls["GetSecretValue"]

    def _counting(self, app: WsgiApp) -> WsgiApp:
        def counted(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
            if target:
                with self._lock:
                    self.calls[target.rpartition(".")[2]] += 1
            return app(environ, start_response)
        return counted


def secrets_cached_env(stack_env: Mapping[str, str],
                       server: SecretsManagerServer) -> dict[str, str]:
    """A ``secrets_cached`` function's environment: the stack's, credentials from the secret.

    ``DB_USER`` and ``DB_PASSWORD`` are removed, so the function can only log in
    with what it read from Secrets Manager; ``DB_HOST``/``DB_PORT`` stay (they
    win over the secret's, as an RDS Proxy endpoint would).
    """
    env = {k: v for k, v in stack_env.items() if k not in ("DB_USER", "DB_PASSWORD")}
    env.update(server.function_env())
    return env
