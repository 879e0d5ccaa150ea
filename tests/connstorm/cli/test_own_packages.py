"""connstorm inside a Lambda project that has its own ``handlers``, ``reports`` and ``loadtests``.

Such projects are common, and connstorm used to install those very names at the
top level: the user's ``handlers/`` then hid connstorm's and the
``lambda_rds_stack`` fixture failed with ``No module named 'handlers.workload'``.
connstorm now installs everything under ``connstorm.``; these tests install the
real wheel (built from this checkout) and run it from inside such a project, with
the project's folder first on ``sys.path`` as ``python -m`` and pytest put it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow

OWN_PACKAGE = '"""The project\'s own {name} package."""\nOWNER = "the project"\n'


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """connstorm's wheel, built from this checkout and unpacked into a folder of its own."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", str(ROOT), "-w", str(out)],
                   check=True, timeout=600, capture_output=True)
    (wheel,) = out.glob("connstorm-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"connstorm"}
    site = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", "--target", str(site), str(wheel)],
                   check=True, timeout=600, capture_output=True)
    return site


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A Lambda project with its own handlers/, reports/ and loadtests/ packages."""
    root = tmp_path / "my-lambda-project"
    for name in ("handlers", "reports", "loadtests"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(OWN_PACKAGE.format(name=name))
    (root / "handlers" / "orders.py").write_text(
        "def lambda_handler(event, context):\n    return {'statusCode': 200}\n")
    return root


def _env(project: Path, site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    # The project first, as its own tools would have it; then the installed wheel.
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(site)])
    return env


def test_own_packages_repro_quick_runs_from_inside_the_project(
        wheel_site: Path, project: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "connstorm", "repro", "--quick"],
                            cwd=project, env=_env(project, wheel_site), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The installed copy ran, not this checkout, and it gave its verdicts.
    assert "direct-module_level: REFUSED" in result.stdout
    assert "pgbouncer-transaction: OK" in result.stdout
    assert (project / "handlers" / "__init__.py").read_text() == OWN_PACKAGE.format(
        name="handlers")


def test_own_packages_the_pytest_fixture_runs_beside_the_projects_handlers(
        wheel_site: Path, project: Path) -> None:
    example = ROOT / "examples" / "pytest-suite"
    shutil.copy(example / "pytest.ini", project / "pytest.ini")
    shutil.copy(example / "test_lambda_rds.py", project / "test_lambda_rds.py")
    (project / "test_own.py").write_text(
        "import handlers, handlers.orders, reports, loadtests\n\n"
        "def test_the_projects_packages_are_its_own(lambda_rds_stack):\n"
        "    assert lambda_rds_stack.info()['api_url']\n"
        "    assert handlers.OWNER == reports.OWNER == loadtests.OWNER == 'the project'\n"
        "    assert handlers.orders.lambda_handler({}, None) == {'statusCode': 200}\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                            cwd=project, env=_env(project, wheel_site), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 passed" in result.stdout
    import connstorm
    assert Path(connstorm.__file__).is_relative_to(ROOT)  # this process was not touched
