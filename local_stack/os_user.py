"""Which OS user runs the servers, and the folders it may use.

PostgreSQL and PgBouncer refuse to run as root. When we are root they run as an
unprivileged user: Debian's ``postgres`` (it exists once the server package is
installed), or else a system user ``connstorm`` created here. When we are not
root they run as ourselves and nothing here changes ownership.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from connstorm.errors import EnvironmentProblemError

PREFERRED_USERS = ("postgres", "connstorm")


@functools.cache
def server_user() -> str | None:
    """The user to run servers as, or None to run them as ourselves (not root)."""
    if os.geteuid() != 0:
        return None
    for name in PREFERRED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run([useradd, "--system", "--no-create-home", "--shell",
                             "/usr/sbin/nologin", "connstorm"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EnvironmentProblemError(
            f"running as root and no unprivileged user to run servers as; creating user "
            f"connstorm failed: {result.stderr.strip()}")
    return "connstorm"


def chown_tree(path: Path, user: str | None) -> None:
    """Give ``path`` and everything below it to ``user`` (no-op for None)."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    uid, gid = entry.pw_uid, entry.pw_gid
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def can_traverse(path: Path, user: str | None) -> bool:
    """True when ``user`` can reach ``path``'s parent folders (search permission).

    Root's own folders (``/root``, pytest's ``/tmp/pytest-of-root``) are often
    mode 0700: a server running as ``postgres`` cannot reach data kept there.
    """
    if user is None:
        return True
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid} | {g.gr_gid for g in _groups_of(user)}
    current = path.resolve()
    for folder in [current, *current.parents]:
        try:
            st = folder.stat()
        except FileNotFoundError:
            continue
        if st.st_uid == entry.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            return False
    return True


def _groups_of(user: str) -> list[grp.struct_group]:
    return [g for g in grp.getgrall() if user in g.gr_mem]


#: tmpfs is preferred for server data: copying the template cluster there takes
#: 0.2 s against 1-3 s on this machine's ext4, and a stack's data is disposable.
TMPFS = Path("/dev/shm")
TMPFS_MIN_FREE_BYTES = 1 << 30


def scratch_roots() -> list[Path]:
    """Every folder :func:`shared_scratch_root` may choose (to look for stale data)."""
    explicit = os.environ.get("CONNSTORM_SCRATCH_DIR")
    if explicit:
        return [Path(explicit)]
    return [TMPFS / "connstorm-scratch", Path(tempfile.gettempdir()) / "connstorm-scratch"]


def _tmpfs_usable() -> bool:
    try:
        st = os.statvfs(TMPFS)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= TMPFS_MIN_FREE_BYTES


def shared_scratch_root(prefer_tmpfs: bool = True) -> Path:
    """A folder every server user can reach, for data kept outside the run folder.

    ``$CONNSTORM_SCRATCH_DIR`` if set; else ``/dev/shm/connstorm-scratch`` when
    ``/dev/shm`` has at least 1 GiB free (Docker's default 64 MB has not); else
    ``<tmp>/connstorm-scratch``. Mode 0711: others may pass through, not list.
    """
    roots = scratch_roots()
    if len(roots) > 1 and not (prefer_tmpfs and _tmpfs_usable()):
        roots = roots[1:]
    root = roots[0]
    root.mkdir(parents=True, exist_ok=True)
    if root.stat().st_uid == os.geteuid():
        root.chmod(0o711)
    return root
