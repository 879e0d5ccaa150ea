"""Loopback ports for the servers of a stack.

Several stacks run side by side on one machine, and a server that happens to
listen on 5432 or 6432 must never be hit by a test, so every listener binds
127.0.0.1 on a port the kernel says is free. Ports handed out by this process
are remembered, so two servers started back to back never get the same one
before either has bound it.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from connstorm.errors import EnvironmentProblemError

if TYPE_CHECKING:
    from connstorm.local_stack.process import ManagedProcess

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: A free port can be taken by another process before our server binds it:
#: a server that fails with "already in use" is retried on a new port this often.
PORT_ATTEMPTS = 3

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


def lost_port_race(process: ManagedProcess, requested: int | None, attempt: int) -> bool:
    """True when ``process`` failed only because its free port was taken meanwhile
    (and a retry on another port is allowed); the failed process is then stopped."""
    if requested or attempt >= PORT_ATTEMPTS or process.running():
        return False
    if "already in use" not in process.log_tail(5):
        return False
    process.stop()
    log.warning("%s: its port was taken before it could bind; retrying", process.name)
    return True
