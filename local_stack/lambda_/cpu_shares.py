"""Each environment's share of a CPU, by memory size, as Lambda allocates it.

Lambda gives a function CPU in proportion to its memory: 1,769 MB is one
vCPU's worth, 10,240 MB six (AWS Lambda developer guide, "Configure Lambda
function memory"). So a 128 MB function runs its handler at about 7 % of a
CPU, and holds its database connection that much longer per request. With
``[lambda] cpu_shares = true`` each environment gets a cgroup of its own whose
CPU bandwidth is ``memory_mb / 1769`` of a CPU: ``cpu.max`` = "quota period" on
cgroup v2; on a cgroup v1 ``cpu`` hierarchy the same limit is
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (the kernel's CFS bandwidth
control behind both). The environment joins its cgroup itself, in the zygote's
fork, before its Init (:mod:`.zygote`), so Init and handler are both limited;
whatever the handler starts is too.

Where no cgroup with a CPU controller is writable (no root, a read-only
``/sys/fs/cgroup``, cgroup v2 without ``cpu`` delegated), :meth:`CpuShares.open`
returns ``None`` and the emulator says so in one line; environments then get
the whole machine, as they do with the setting off.

The period is 100 ms (the kernel's default); the smallest quota is 1 ms.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Memory size that is worth one vCPU on Lambda.
MB_PER_VCPU = 1769
PERIOD_US = 100_000
MIN_QUOTA_US = 1_000


def quota_us(memory_mb: int, period_us: int = PERIOD_US) -> int:
    """CPU time per period for ``memory_mb``: ``memory_mb / 1769`` of a CPU."""
    return max(MIN_QUOTA_US, round(period_us * memory_mb / MB_PER_VCPU))


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy with a CPU controller, and our place in it."""

    version: int
    #: The cgroup folder of this process in that hierarchy.
    own: Path


def _own_paths() -> dict[str, str]:
    """Controller list (``""`` for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3:
                out[parts[1]] = parts[2]
    return out


def find_hierarchies() -> list[Hierarchy]:
    """cgroup hierarchies with a CPU controller this process can see, v2 first."""
    own = _own_paths()
    found: list[Hierarchy] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) < 5 or len(tail) < 3:
                continue
            mount, fstype, options = Path(fields[4]), tail[0], tail[2].split(",")
            if fstype == "cgroup2" and "" in own:
                path = mount / own[""].lstrip("/")
                with contextlib.suppress(OSError):
                    if "cpu" in (path / "cgroup.controllers").read_text().split():
                        found.insert(0, Hierarchy(2, path))
            elif fstype == "cgroup" and "cpu" in options:
                key = next((k for k in own if "cpu" in k.split(",")), None)
                if key is not None:
                    found.append(Hierarchy(1, mount / own[key].lstrip("/")))
    return found


class CpuShares:
    """Per-environment CPU cgroups under one folder of this emulator's own."""

    def __init__(self, hierarchy: Hierarchy, root: Path) -> None:
        self.hierarchy = hierarchy
        self.root = root

    @classmethod
    def open(cls, label: str | None = None) -> tuple[CpuShares | None, str]:
        """A usable instance and a one-line description, or None and why not."""
        hierarchies = find_hierarchies()
        if not hierarchies:
            return None, "no cgroup hierarchy with a CPU controller is mounted"
        why = ""
        for h in hierarchies:
            root = h.own / (label or f"connstorm-{os.getpid()}")
            try:
                if h.version == 2:
                    _write(h.own / "cgroup.subtree_control", "+cpu")
                root.mkdir(exist_ok=True)
                if h.version == 2:
                    _write(root / "cgroup.subtree_control", "+cpu")
                shares = cls(h, root)
                probe = shares.create("probe", MB_PER_VCPU)
                shares.remove(probe)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    root.rmdir()
                why = f"{h.own} (cgroup v{h.version}) is not writable: {exc.strerror or exc}"
                continue
            return shares, f"cgroup v{h.version} at {root}"
        return None, why

    def create(self, name: str, memory_mb: int) -> str:
        """A cgroup for one environment of ``memory_mb``; its folder, for the zygote."""
        path = self.root / name
        path.mkdir(exist_ok=True)
        quota = quota_us(memory_mb)
        if self.hierarchy.version == 2:
            _write(path / "cpu.max", f"{quota} {PERIOD_US}")
        else:
            _write(path / "cpu.cfs_period_us", str(PERIOD_US))
            _write(path / "cpu.cfs_quota_us", str(quota))
        return str(path)

    def remove(self, path: str) -> None:
        """Remove an environment's cgroup (fails quietly while a process is still in it)."""
        with contextlib.suppress(OSError):
            os.rmdir(path)

    def close(self) -> None:
        """Remove what is left (after every environment is gone)."""
        with contextlib.suppress(OSError):
            for child in self.root.iterdir():
                if child.is_dir():
                    self.remove(str(child))
        with contextlib.suppress(OSError):
            self.root.rmdir()


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)
