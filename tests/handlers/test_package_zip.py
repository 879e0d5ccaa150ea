"""`connstorm package`: the zip runs in a clean interpreter that has nothing else installed.

With ``--rds-ca-bundle`` the zip carries the certificates ``sslmode=verify-full``
checks the server with, and the zipped handler connects with verify-full to a
real PostgreSQL whose certificate one of them signed.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connstorm.handlers.workload import schema
from connstorm.local_stack.postgres import PostgresServer
from connstorm.packaging import CA_BUNDLE_NAME
from tests.deploy.cfn import load
from tests.handlers import apigw_events
from tests.handlers.conftest import Pg
from tests.handlers.tls import Ca, make_ca, tls_postgres

CONNSTORM = [sys.executable, "-m", "connstorm"]


@pytest.fixture(scope="module")
def rds_ca() -> Ca:
    """Plays the RDS CA that signs the instance's certificate."""
    return make_ca("connstorm test RDS CA")


@pytest.fixture(scope="module")
def bundles(rds_ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two PEM files, as the README has users download: the RDS bundle and a root CA."""
    folder = tmp_path_factory.mktemp("bundles")
    (folder / "global-bundle.pem").write_text(rds_ca.pem, encoding="ascii")
    (folder / "AmazonRootCA1.pem").write_text(make_ca("a root CA").pem, encoding="ascii")
    return [folder / "global-bundle.pem", folder / "AmazonRootCA1.pem"]


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory: pytest.TempPathFactory, bundles: list[Path]) -> Path:
    """The x86_64 zip, built once through the real CLI (pip fetches from PyPI)."""
    out = tmp_path_factory.mktemp("pkg") / "handlers.zip"
    done = subprocess.run([*CONNSTORM, "package", "--arch", "x86_64", "--out", str(out),
                           "--rds-ca-bundle", str(bundles[0]), "--rds-ca-bundle",
                           str(bundles[1]), "--driver", "asyncpg_pool_1"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    assert "bytes" in done.stdout
    assert f"{CA_BUNDLE_NAME}: 2 CA certificates" in done.stdout
    return out


@pytest.fixture(scope="module")
def tls_pg(rds_ca: Ca, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with tls_postgres(rds_ca, tmp_path_factory.mktemp("tls-pg")) as server:
        schema.install(server.app_dsn, 100)
        yield server


@pytest.mark.slow
def test_package_zip_holds_handlers_and_linux_wheels(package_zip: Path) -> None:
    names = zipfile.ZipFile(package_zip).namelist()
    assert "handlers/per_invocation_handler.py" in names
    assert "handlers/workload/routes.py" in names
    assert any(n.startswith("psycopg_pool/") for n in names)
    assert any(n.startswith("psycopg_binary/") and "x86_64-linux-gnu.so" in n for n in names)
    assert not any("__pycache__" in n for n in names)


@pytest.mark.slow
def test_package_zip_holds_the_ca_bundles_at_the_path_the_template_names(
        package_zip: Path, bundles: list[Path]) -> None:
    zipped = zipfile.ZipFile(package_zip).read(CA_BUNDLE_NAME).decode("ascii")
    # every certificate of every file, in order, at the zip's root
    assert zipped == "".join(b.read_text("ascii").strip() + "\n" for b in bundles)
    files = load()["Mappings"]["Database"]["Files"]
    assert files["CaBundle"] == CA_BUNDLE_NAME


@pytest.mark.slow
def test_zipped_handler_connects_with_verify_full(package_zip: Path, tls_pg: PostgresServer,
                                                  tmp_path: Path) -> None:
    # GIVEN the zip unpacked as Lambda unpacks it, and the template's TLS settings
    folder = tmp_path / "task"
    folder.mkdir()
    zipfile.ZipFile(package_zip).extractall(folder)
    event = json.dumps(apigw_events.v2("GET", "/items/5"))
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "import handlers.per_invocation_handler as h\n"
        f"out = h.lambda_handler(json.loads({event!r}), None)\n"
        "sys.stderr.write(json.dumps(out))\n"
    )
    env = {"DB_HOST": tls_pg.host, "DB_PORT": str(tls_pg.port), "DB_USER": tls_pg.app_user,
           "DB_PASSWORD": tls_pg.app_password, "DB_NAME": "app",
           "DB_SSLMODE": "verify-full", "DB_SSLROOTCERT": CA_BUNDLE_NAME,
           "LAMBDA_TASK_ROOT": str(folder), "AWS_LAMBDA_FUNCTION_NAME": "zipped",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]" + secrets.token_hex(16)}
    # WHEN the handler runs in `python -I -S` from another folder
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], env=env, cwd="/",
                          capture_output=True, text=True, timeout=60, check=False)
    # THEN the bundled libpq verified the server against the zip's bundle
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stderr.strip().splitlines()[-1])
    assert out["statusCode"] == 200, out


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["per_invocation", "module_level", "in_process_pool"])
def test_package_zip_runs_in_a_clean_interpreter(package_zip: Path, tmp_path: Path, pg: Pg,
                                                 pattern: str) -> None:
    # GIVEN the zip unpacked into an empty folder
    folder = tmp_path / "task"
    folder.mkdir()
    zipfile.ZipFile(package_zip).extractall(folder)
    event = json.dumps(apigw_events.v2("GET", "/items/5"))
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        f"import handlers.{pattern}_handler as h\n"
        "import psycopg\n"
        f"assert psycopg.__file__.startswith({str(folder)!r}), psycopg.__file__\n"
        "assert psycopg.pq.__impl__ == 'binary', psycopg.pq.__impl__\n"
        f"out = h.lambda_handler(json.loads({event!r}), None)\n"
        "sys.stderr.write(json.dumps(out))\n"
    )
    env = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_USER": "app",
           "DB_PASSWORD": pg.app_password, "DB_NAME": "app", "DB_SSLMODE": "disable",
           "AWS_LAMBDA_FUNCTION_NAME": "zipped"}
    # WHEN a handler runs in `python -I -S` (no site-packages, no PYTHONPATH)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=60, check=False)
    # THEN it answers from the database
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stderr.strip().splitlines()[-1])
    assert out["statusCode"] == 200
    assert json.loads(out["body"])["item"]["id"] == 5
    assert json.loads(done.stdout.strip().splitlines()[-1])["pattern"] == pattern


@pytest.mark.slow
def test_a_driver_configuration_runs_from_the_zip_with_its_own_driver(
        package_zip: Path, tmp_path: Path, pg: Pg) -> None:
    # GIVEN the zip built with --driver asyncpg_pool_1, unpacked into an empty folder
    folder = tmp_path / "task"
    folder.mkdir()
    zipfile.ZipFile(package_zip).extractall(folder)
    assert any(p.name.startswith("asyncpg-") for p in folder.glob("*.dist-info"))
    event = json.dumps(apigw_events.v2("GET", "/items/5"))
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "import handlers.drivers.asyncpg_pool_1.handler as h\n"
        f"out = h.lambda_handler(json.loads({event!r}), None)\n"
        "sys.stderr.write(json.dumps(out))\n"
    )
    env = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_USER": "app",
           "DB_PASSWORD": pg.app_password, "DB_NAME": "app", "DB_SSLMODE": "disable"}
    # WHEN its handler runs in `python -I -S` (no site-packages)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=60, check=False)
    # THEN it answers from the database through the zipped asyncpg
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stderr.strip().splitlines()[-1])
    assert out["statusCode"] == 200
    assert json.loads(out["body"])["item"]["id"] == 5


def test_package_bad_arch_is_a_usage_error() -> None:
    done = subprocess.run([*CONNSTORM, "package", "--arch", "sparc"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.slow
def test_package_offline_without_wheels_is_one_line_exit_4(tmp_path: Path) -> None:
    empty = tmp_path / "wheels"
    empty.mkdir()
    out = tmp_path / "h.zip"
    done = subprocess.run([*CONNSTORM, "package", "--find-links", str(empty), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 4
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("connstorm: error: pip could not fetch")
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file (the RDS bundle is published at "
           "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"),
    ("not a certificate\n", "holds no CA certificate (expected PEM "
                            "'-----BEGIN CERTIFICATE-----' blocks)"),
])
def test_package_bad_ca_bundle_is_one_line_exit_2(tmp_path: Path, content: str | None,
                                                  reason: str) -> None:
    bundle = tmp_path / "global-bundle.pem"
    if content is not None:
        bundle.write_text(content, encoding="ascii")
    out = tmp_path / "h.zip"
    # no --find-links: the bundle is refused before pip would try PyPI
    done = subprocess.run([*CONNSTORM, "package", "--rds-ca-bundle", str(bundle), "--out",
                           str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"connstorm: error: --rds-ca-bundle {bundle}: {reason}"], done.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))


def test_package_out_is_a_folder_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*CONNSTORM, "package", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 4
    assert "is a folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
