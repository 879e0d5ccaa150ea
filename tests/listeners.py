"""Which TCP ports a process listens on, and on which address, read from /proc.

For the security tests (every listener on 127.0.0.1) and the Runtime API
fuzzer (an environment's listener is a port of the emulator process). A
socket's inode in ``/proc/<pid>/fd`` is matched against the LISTEN rows of
``/proc/<pid>/net/tcp`` and ``tcp6``; no ``ss`` or ``lsof`` needed.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from connstorm.local_stack.process import descendants as process_descendants

_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """One listening socket: the pid holding it, the address and the port."""

    pid: int
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        """Bound to a loopback address (127.0.0.0/8 or ::1), so unreachable from outside."""
        return ipaddress.ip_address(self.address).is_loopback


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hex_addr, 16)))
    words = struct.unpack("<4I", raw)
    return socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))


def listeners(pid: int) -> list[Listener]:
    """Every TCP socket ``pid`` holds in LISTEN state (IPv4 and IPv6)."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != _LISTEN or fields[9] not in inodes:
                continue
            addr, port = fields[1].split(":")
            found.append(Listener(pid, _address(addr), int(port, 16)))
    return sorted(found, key=lambda item: (item.port, item.address))


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``."""
    return set(process_descendants(pid))


def tree_listeners(pid: int) -> list[Listener]:
    """The listeners of ``pid`` and of every process below it."""
    return [item for p in sorted({pid, *descendants(pid)}) for item in listeners(p)]
