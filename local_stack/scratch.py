"""The private scratch folder of one stack, and the cleaning of crashed runs' ones.

Server data (the PostgreSQL cluster, PgBouncer's ini and auth file, sockets)
lives in a scratch folder that is deleted when the stack stops. It is a folder
under :func:`~connstorm.local_stack.os_user.shared_scratch_root` (tmpfs when there is room:
the template copy is 10x faster there) and ``<run_dir>/.stack`` is a small file
naming it. Without tmpfs it is ``<run_dir>/.stack`` itself, unless the server
user cannot reach the run folder (root's 0700 folders) or the path is too long
for a Unix socket.

Every scratch folder holds ``owner.json`` with the pid (and start time) of the
toolkit process that owns it. A folder whose owner is dead belongs to a crashed
run: :func:`clean_stale` stops every process still working in it (found by its
current directory) and deletes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

from connstorm.errors import StackError
from connstorm.local_stack.os_user import (
    TMPFS,
    can_traverse,
    chown_tree,
    scratch_roots,
    shared_scratch_root,
)
from connstorm.local_stack.process import pid_alive
from connstorm.run_folder import SCRATCH_LINK

log = logging.getLogger(__name__)

OWNER_FILE = "owner.json"
LINK_NAME = SCRATCH_LINK
#: Longest scratch path that leaves room for ``/postgres-socket/.s.PGSQL.65535``
#: within the 107 bytes of a Unix socket path.
MAX_PATH_LEN = 70
#: A folder without owner.json younger than this may be one being created.
_GRACE_S = 60.0


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (tells reused pids apart)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def create_scratch(run_dir: Path, user: str | None, link_name: str = LINK_NAME) -> Path:
    """Make this stack's scratch folder (owned by ``user``, mode 0700) and return it.

    ``link_name`` (``.stack`` or ``.stack-<something>``) is its name inside the run
    folder: a server started on its own, outside a Stack, uses its own.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    inside = run_dir / link_name
    if inside.is_dir():
        if _owner_alive(inside):
            raise StackError(f"{run_dir}: already used by a running stack (see {inside})")
        _stop_processes(inside)
        shutil.rmtree(inside, ignore_errors=True)
    elif inside.exists():
        inside.unlink()
    shared = shared_scratch_root()
    if (shared.parent != TMPFS and can_traverse(run_dir, user)
            and len(str(inside.resolve())) <= MAX_PATH_LEN):
        parent, name = run_dir, link_name
    else:
        parent, name = shared, f"{run_dir.name[:24]}-{secrets.token_hex(4)}"
    staging = parent / f".staging-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o700)
    owner = {"pid": os.getpid(), "start_time": process_start_time(os.getpid()),
             "run_dir": str(run_dir.resolve()), "created": time.time()}
    (staging / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
    chown_tree(staging, user)
    target = parent / name
    staging.rename(target)
    if target != inside:
        inside.write_text(str(target) + "\n", encoding="utf-8")
    return target


def remove_scratch(run_dir: Path, scratch: Path, link_name: str = LINK_NAME) -> None:
    """Delete the scratch folder and the run folder's pointer to it."""
    shutil.rmtree(scratch, ignore_errors=True)
    link = run_dir / link_name
    if link.is_file():
        link.unlink(missing_ok=True)


def _owner_alive(folder: Path) -> bool:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        pid = int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return time.time() - folder.stat().st_mtime < _GRACE_S
        except OSError:
            return True
    if not pid_alive(pid):
        return False
    started = owner.get("start_time")
    return started is None or process_start_time(pid) == started


def processes_in(folder: Path) -> list[int]:
    """Pids of processes whose current directory lies inside ``folder``."""
    folder = folder.resolve()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found


def _stop_processes(folder: Path, timeout_s: float = 5.0) -> None:
    pids = processes_in(folder)
    if not pids:
        return
    log.warning("stopping %d leftover server process(es) in %s", len(pids), folder)
    for pid in pids:
        # SIGQUIT: PostgreSQL's immediate shutdown; PgBouncer exits on it too.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stale_candidates(runs_root: Path) -> list[Path]:
    """Scratch folders that may belong to crashed runs under ``runs_root``."""
    found: list[Path] = []
    if runs_root.is_dir():
        for run in runs_root.iterdir():
            if run.is_dir():
                found.extend(p for p in run.glob(LINK_NAME + "*") if p.is_dir())
    for shared in scratch_roots():
        if shared.is_dir():
            found.extend(p for p in shared.iterdir() if p.is_dir())
    return found


def clean_stale(runs_root: Path) -> list[Path]:
    """Stop and delete the scratch folders of crashed runs; returns what was cleaned."""
    cleaned: list[Path] = []
    for folder in stale_candidates(runs_root):
        if _owner_alive(folder):
            continue
        _stop_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)
        cleaned.append(folder)
        log.info("removed stale scratch folder %s", folder)
    if runs_root.is_dir():
        for pointer in runs_root.glob(f"*/{LINK_NAME}*"):
            with contextlib.suppress(OSError, ValueError):
                if pointer.is_file() and not Path(pointer.read_text().strip()).exists():
                    pointer.unlink()
    return cleaned
