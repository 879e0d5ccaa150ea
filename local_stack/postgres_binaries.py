"""Where Debian keeps the PostgreSQL server programs, and which settings they know.

Debian installs ``initdb`` and ``postgres`` under ``/usr/lib/postgresql/<major>/bin``,
off ``PATH``. Scenario settings are checked against ``postgres --describe-config``
before a server starts, so a typo is a ScenarioError naming ``[postgres] <key>``
rather than a server that refuses to start.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from connstorm.errors import EnvironmentProblemError, ScenarioError
from connstorm.scenario import SettingValue

INSTALL_HINT = ("PostgreSQL server binaries (initdb, postgres) not found; install them with: "
                "apt-get install -y postgresql (or set CONNSTORM_PG_BINDIR)")


@dataclass(frozen=True)
class PostgresBinaries:
    """Where Debian keeps the server programs, and which version they are."""

    bindir: Path
    version: str

    @property
    def major(self) -> int:
        """The major version, e.g. 15."""
        return int(self.version.split(".")[0])

    def path(self, program: str) -> str:
        """Absolute path of ``program`` (``initdb``, ``postgres``)."""
        return str(self.bindir / program)


def _has_server(bindir: Path) -> bool:
    return (bindir / "postgres").is_file() and (bindir / "initdb").is_file()


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


@functools.cache
def find_binaries() -> PostgresBinaries:
    """Find the server binaries: ``$CONNSTORM_PG_BINDIR``, then ``pg_config
    --bindir``, then the highest ``/usr/lib/postgresql/*/bin``."""
    candidates: list[Path] = []
    override = os.environ.get("CONNSTORM_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    else:
        pg_config = shutil.which("pg_config")
        if pg_config:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                     timeout=10, check=True).stdout.strip()
                candidates.append(Path(out))
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
        candidates.extend(Path(p) for p in found)
        on_path = shutil.which("postgres")
        if on_path:
            candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if _has_server(bindir):
            out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
            match = re.search(r"(\d+(?:\.\d+)?)", out)
            if match:
                return PostgresBinaries(bindir=bindir, version=match.group(1))
    if override:
        raise EnvironmentProblemError(
            f"CONNSTORM_PG_BINDIR={override}: no PostgreSQL server binaries (initdb, postgres) "
            "in it; point it at their folder, or unset it to use the installed ones "
            "(apt-get install -y postgresql installs them)")
    raise EnvironmentProblemError(INSTALL_HINT)


@functools.cache
def known_settings(bindir: Path) -> frozenset[str]:
    """Every setting name this server knows (``postgres --describe-config``)."""
    out = subprocess.run([str(bindir / "postgres"), "--describe-config"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    return frozenset(line.split("\t", 1)[0] for line in out.splitlines() if line)


def validate_settings(settings: Mapping[str, SettingValue], binaries: PostgresBinaries,
                      source: str) -> None:
    """Raise ScenarioError naming ``[postgres] <key>`` for a setting the server
    does not know. Names with a dot are extensions' own and pass unchecked."""
    known = known_settings(binaries.bindir)
    for key in settings:
        if "." in key or key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ScenarioError(f"{source}: [postgres] {key}: unknown PostgreSQL "
                            f"{binaries.version} setting{hint}")


