"""Loopback ports for the servers of a stack.

Several stacks run side by side on one machine, and a server that happens to
listen on 5432 or 6432 must never be hit by a test, so every listener binds
127.0.0.1 on a port the kernel says is free. Ports handed out by this process
are remembered, so two servers started back to back never get the same one
before either has bound it.
"""

from __future__ import annotations

import socket
import threading

from connstorm.errors import EnvironmentProblemError

HOST = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on (or holds) ``host:port``.

    SO_REUSEADDR, as servers set it, so connections of a stopped server still in
    TIME_WAIT do not count as "in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    """A port on ``host`` that is free now and not handed out before by us."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise EnvironmentProblemError(f"no free port found on {host}")


def claim_port(port: int | None, host: str = HOST) -> int:
    """``port`` if given and free (else an error saying so), or a free one."""
    if port is None or port == 0:
        return free_port(host)
    if port_in_use(port, host):
        raise EnvironmentProblemError(f"port {port} on {host} is in use")
    return port
