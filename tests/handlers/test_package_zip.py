"""`connstorm package`: the zip runs in a clean interpreter that has nothing else installed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.handlers import apigw_events
from tests.handlers.conftest import Pg

CONNSTORM = [sys.executable, "-m", "connstorm"]


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86_64 zip, built once through the real CLI (pip fetches from PyPI)."""
    out = tmp_path_factory.mktemp("pkg") / "handlers.zip"
    done = subprocess.run([*CONNSTORM, "package", "--arch", "x86_64", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout
    assert "bytes" in done.stdout
    return out


@pytest.mark.slow
def test_package_zip_holds_handlers_and_linux_wheels(package_zip: Path) -> None:
    names = zipfile.ZipFile(package_zip).namelist()
    assert "handlers/per_invocation_handler.py" in names
    assert "handlers/workload/routes.py" in names
    assert any(n.startswith("psycopg_pool/") for n in names)
    assert any(n.startswith("psycopg_binary/") and "x86_64-linux-gnu.so" in n for n in names)
    assert not any("__pycache__" in n for n in names)


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


def test_package_out_is_a_folder_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*CONNSTORM, "package", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 4
    assert "is a folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
