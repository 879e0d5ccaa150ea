"""Which PgBouncer programs this machine has, and building one that tracks prepared statements.

Why two PgBouncers: Debian 12 ships PgBouncer 1.18, which cannot carry
protocol-level named prepared statements in transaction mode (a client's
``Parse`` lands on one server connection, its next ``Bind`` on another:
``prepared statement "_pg3_0" does not exist``; the PgBouncer FAQ, "How to use
prepared statements with transaction pooling?"). PgBouncer 1.21 added
``max_prepared_statements`` (NEWS, "PgBouncer 1.21.0 - The one with prepared
statements"), 1.22 made ``DEALLOCATE ALL`` and ``DISCARD ALL`` work with it
(NEWS, "PgBouncer 1.22.0 - DEALLOCATE ALL"), and 1.24 turned it on by default
with 200 statements (NEWS, "PgBouncer 1.24.0", Changes). Users run both in
2026, and a driver's verdict differs between them, so connstorm runs both.

Where they come from:

* the installed one: ``pgbouncer`` on ``PATH`` or in ``/usr/sbin`` (Debian's);
* built ones: ``<cache>/pgbouncer/<version>/bin/pgbouncer`` under
  :func:`connstorm.local_stack.cache.cache_root`, made by :func:`build_from_debian`
  from Debian 13 (trixie)'s source package, fetched through a private APT
  configuration (its own sources list, lists and cache folders: nothing of
  trixie enters the system's APT state) and built against Debian 12's own
  libraries (``libevent-dev``, ``libc-ares-dev``, ``libssl-dev``) without
  systemd and PAM, so nothing of the system is upgraded. About 30-60 s, once
  per machine; the repository's ``scripts/bootstrap.sh`` does it, and so does the
  first run that needs it (``connstorm drivers``, a scenario asking for
  ``[pgbouncer] binary = "1.24"``).

``python -m connstorm.local_stack.pgbouncer_binaries`` ensures a PgBouncer >= 1.21
is available (building it when needed) and prints one line saying what it did.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connstorm.errors import EnvironmentProblemError
from connstorm.local_stack.cache import cache_root

log = logging.getLogger(__name__)

#: The first PgBouncer that tracks protocol-level named prepared statements.
PREPARED_STATEMENTS_SINCE = (1, 21)
#: Debian 13's suite, whose source package is built on Debian 12.
SOURCE_SUITE = "trixie"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Debian 12 packages the build needs (the compiler, dpkg-source, the libraries' headers).
BUILD_PACKAGES = ("build-essential", "dpkg-dev", "pkg-config", "libevent-dev",
                  "libc-ares-dev", "libssl-dev")
INSTALL_HINT = ("PgBouncer 1.21 or later is needed for prepared statements in transaction "
                "mode; install it (https://www.pgbouncer.org/install.html) or run connstorm "
                "on Debian, where it is built from Debian 13's source")
_VERSION = re.compile(r"PgBouncer (\d+(?:\.\d+)+)")
_STEP_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PgBouncerBinary:
    """One pgbouncer program and the version it reports."""

    path: Path
    version: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        """``(1, 24, 1)`` for ``1.24.1``."""
        return tuple(int(part) for part in self.version.split("."))

    @property
    def tracks_prepared_statements(self) -> bool:
        """Whether this version has ``max_prepared_statements`` (1.21 and later)."""
        return self.version_tuple >= PREPARED_STATEMENTS_SINCE

    @property
    def installed_by_system(self) -> bool:
        """True for a program under ``/usr`` (readable by every user)."""
        return self.path.resolve().is_relative_to("/usr")


def read_version(program: Path) -> str:
    """The version ``program --version`` reports; EnvironmentProblemError if none."""
    try:
        out = subprocess.run([str(program), "--version"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblemError(f"{program}: cannot run it: {exc}") from None
    match = _VERSION.search(out.stdout + out.stderr)
    if match is None:
        raise EnvironmentProblemError(f"{program}: not a PgBouncer (--version says "
                                      f"{(out.stdout or out.stderr).strip()[:80]!r})")
    return match.group(1)


def installed_program() -> Path | None:
    """``pgbouncer`` on PATH, else Debian's ``/usr/sbin/pgbouncer``."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    return Path(found) if found else None


def built_root() -> Path:
    """Where built PgBouncers live: ``<cache>/pgbouncer/<version>/bin/pgbouncer``."""
    return cache_root() / "pgbouncer"


def available() -> list[PgBouncerBinary]:
    """Every PgBouncer found (installed and built), one per version, oldest first."""
    found: dict[str, PgBouncerBinary] = {}
    candidates = [installed_program()]
    root = built_root()
    if root.is_dir():
        candidates += sorted(p / "bin" / "pgbouncer" for p in root.iterdir()
                             if not p.name.startswith("."))
    for program in candidates:
        if program is None or not program.is_file():
            continue
        try:
            binary = PgBouncerBinary(program, read_version(program))
        except EnvironmentProblemError as exc:
            log.warning("ignoring %s", exc)
            continue
        found.setdefault(binary.version, binary)
    return sorted(found.values(), key=lambda b: b.version_tuple)


def resolve(spec: str, *, announce: Callable[[str], None] | None = None) -> PgBouncerBinary:
    """The program a ``[pgbouncer] binary`` value names.

    ``""``: the installed one. A version (``"1.24"``, ``"1.18.0"``): the newest
    found whose version starts with it; asking for 1.21 or later on Debian
    builds it when missing. Anything else is a path to a pgbouncer program.
    """
    spec = spec.strip()
    if not spec:
        program = installed_program()
        if program is None:
            raise EnvironmentProblemError(
                "pgbouncer not found; install it with: apt-get install -y pgbouncer")
        return PgBouncerBinary(program, read_version(program))
    if re.fullmatch(r"\d+(?:\.\d+)*", spec):
        wanted = tuple(int(p) for p in spec.split("."))

        def matching(binaries: list[PgBouncerBinary]) -> list[PgBouncerBinary]:
            return [b for b in binaries if b.version_tuple[:len(wanted)] == wanted]

        found = matching(available())
        if not found and wanted[:2] >= PREPARED_STATEMENTS_SINCE:
            found = matching(ensure_prepared_statement_support(announce))
        if not found:
            have = ", ".join(b.version for b in available()) or "none"
            raise EnvironmentProblemError(f"no PgBouncer {spec} found (found: {have}); "
                                          "give [pgbouncer] binary as a path instead")
        return found[-1]
    program = Path(spec).expanduser()
    if not program.is_file() or not os.access(program, os.X_OK):
        raise EnvironmentProblemError(f"[pgbouncer] binary {spec}: no such program")
    return PgBouncerBinary(program, read_version(program))


def on_debian() -> bool:
    """Whether Debian's tools can fetch and build the source package here."""
    return Path("/etc/debian_version").is_file() and shutil.which("apt-get") is not None


def ensure_prepared_statement_support(
        announce: Callable[[str], None] | None = None) -> list[PgBouncerBinary]:
    """Every PgBouncer found, a >= 1.21 one built first if none is (Debian only).

    Elsewhere, or when the build is impossible, says in one line what to install
    (through ``announce``) and returns what there is: the caller carries on with it.
    """
    say = announce or (lambda line: log.info("%s", line))
    found = available()
    if any(b.tracks_prepared_statements for b in found):
        return found
    if not on_debian():
        say(INSTALL_HINT)
        return found
    say(f"building PgBouncer from Debian 13's source into {built_root()} "
        "(once per machine, about a minute): the installed "
        f"{found[0].version if found else 'none'} cannot carry prepared statements "
        "in transaction mode")
    try:
        build_from_debian(built_root())
    except EnvironmentProblemError as exc:
        say(f"could not build PgBouncer: {exc}")
    return available()


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """One build at a time per cache (several checkouts may bootstrap at once)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(argv: list[str], *, cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                              timeout=_STEP_TIMEOUT_S, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblemError(f"building PgBouncer: {what} failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        raise EnvironmentProblemError(f"building PgBouncer: {what} failed: {last}")


def _missing_build_tools() -> list[str]:
    missing = [pkg for tool, pkg in (("cc", "build-essential"), ("make", "build-essential"),
                                     ("dpkg-source", "dpkg-dev"), ("pkg-config", "pkg-config"))
               if shutil.which(tool) is None]
    if shutil.which("pkg-config") is not None:
        for module, pkg in (("libevent", "libevent-dev"), ("libcares", "libc-ares-dev"),
                            ("openssl", "libssl-dev")):
            probe = subprocess.run(["pkg-config", "--exists", module], check=False)
            if probe.returncode != 0:
                missing.append(pkg)
    else:
        missing += ["libevent-dev", "libc-ares-dev", "libssl-dev"]
    return sorted(set(missing))


def _install_build_packages() -> None:
    """Debian 12's own build dependencies, from the system's sources (root only)."""
    missing = _missing_build_tools()
    if not missing:
        return
    if os.geteuid() != 0:
        raise EnvironmentProblemError("missing build tools; install them with: sudo apt-get "
                                      f"install -y {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
         cwd=Path("/"), what="apt-get install " + " ".join(missing), env=env)


def _private_apt(folder: Path) -> list[str]:
    """APT options that read and write only ``folder``: trixie never touches the system."""
    (folder / "lists" / "partial").mkdir(parents=True)
    (folder / "cache" / "archives" / "partial").mkdir(parents=True)
    sources = folder / "sources.list"
    sources.write_text(f"deb-src [signed-by={KEYRING}] "
                       f"{os.environ.get('CONNSTORM_DEBIAN_MIRROR', DEBIAN_MIRROR)} "
                       f"{SOURCE_SUITE} main\n", encoding="utf-8")
    return ["-o", f"Dir::Etc::sourcelist={sources}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={folder / 'lists'}", "-o", f"Dir::Cache={folder / 'cache'}",
            "-o", "Dir::State::status=/var/lib/dpkg/status", "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1", "-qq"]


def build_from_debian(root: Path) -> PgBouncerBinary:
    """Fetch trixie's ``pgbouncer`` source package, build it, install it under ``root``.

    Returns the installed program; EnvironmentProblemError names the step that failed.
    Safe to call from several processes at once (a file lock; a finished build is reused).
    """
    with _build_lock(root):
        for binary in available():
            if binary.tracks_prepared_statements and binary.path.is_relative_to(root):
                return binary
        _install_build_packages()
        with tempfile.TemporaryDirectory(prefix="pgbouncer-build-", dir=root) as tmp:
            work = Path(tmp)
            apt = ["apt-get", *_private_apt(work / "apt")]
            _run([*apt, "update"], cwd=work, what=f"apt-get update ({SOURCE_SUITE} sources)")
            _run([*apt, "source", "--only-source", "pgbouncer"], cwd=work,
                 what="apt-get source pgbouncer")
            source = next((p for p in work.glob("pgbouncer-*") if p.is_dir()), None)
            if source is None:
                raise EnvironmentProblemError("building PgBouncer: apt-get source unpacked "
                                              "no pgbouncer-* folder")
            staging = work / "install"
            _run(["./configure", f"--prefix={staging}", "--without-systemd", "--without-pam"],
                 cwd=source, what="./configure")
            _run(["make", "-j2"], cwd=source, what="make")
            _run(["make", "install"], cwd=source, what="make install")
            version = read_version(staging / "bin" / "pgbouncer")
            final = root / version
            if final.exists():
                shutil.rmtree(final)
            staging.chmod(0o755)
            staging.rename(final)
        log.info("built PgBouncer %s in %s", version, final)
        return PgBouncerBinary(final / "bin" / "pgbouncer", version)


def main(argv: list[str] | None = None) -> int:
    """Ensure a PgBouncer >= 1.21 (scripts/bootstrap.sh); one line on stderr.

    Exits 0 either way: without one, everything but the 1.21+ column of
    ``connstorm drivers`` works, and the line has said what to install.
    """
    del argv

    def say(line: str) -> None:
        sys.stderr.write(f"connstorm: {line}\n")

    found = ensure_prepared_statement_support(say)
    if found:
        say("PgBouncer " + ", ".join(f"{b.version} ({b.path})" for b in found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
