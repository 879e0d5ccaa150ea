"""The template deploys what ``connstorm package`` builds: same file, architecture, modules."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from connstorm.packaging import default_out
from tests.deploy.cfn import ROOT, TEMPLATE, Resolved, load

FUNCTIONS = ("WorkloadFunction", "SchemaFunction")


def test_codeuri_is_the_default_package_output() -> None:
    res = Resolved(load()).resources()
    for name in FUNCTIONS:
        props = res[name]["Properties"]
        # SAM resolves a local CodeUri against the template's folder; `connstorm
        # package` writes dist/handlers-<arch>.zip under the folder it runs in,
        # the project root in the README's sequence.
        (arch,) = props["Architectures"]
        assert (TEMPLATE.parent / props["CodeUri"]).resolve() == ROOT / default_out(arch), name
        assert props["Runtime"] == "python3.11"  # packaging.py's default --python-version


@pytest.mark.slow
def test_connstorm_package_builds_the_file_and_modules_the_template_names(
        tmp_path: Path) -> None:
    # GIVEN the project's layout in an empty folder (deploy/ beside the build's dist/)
    (tmp_path / "deploy").mkdir()
    copy = tmp_path / "deploy" / "template.yaml"
    copy.write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    # WHEN `connstorm package` runs there with its defaults (pip fetches the wheels)
    done = subprocess.run([sys.executable, "-m", "connstorm", "package"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    # THEN the zip is where the template's CodeUri points, and holds every
    # module a Handler of the template can name
    r = Resolved(load(copy))
    props = r.resources()["WorkloadFunction"]["Properties"]
    built = (copy.parent / props["CodeUri"]).resolve()
    assert built.is_file(), done.stdout
    names = set(zipfile.ZipFile(built).namelist())
    patterns = r.template["Parameters"]["HandlerPattern"]["AllowedValues"]
    for module in [f"handlers.{p}_handler" for p in patterns] + [
            r.resources()["SchemaFunction"]["Properties"]["Handler"].rsplit(".", 1)[0]]:
        assert module.replace(".", "/") + ".py" in names, module
    assert any("x86_64-linux-gnu.so" in n for n in names)  # Architectures: [x86_64]
