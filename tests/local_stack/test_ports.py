"""Free loopback ports, and a clear error for a port that is taken."""

from __future__ import annotations

import socket

import pytest

from connstorm.errors import EnvironmentProblemError
from connstorm.local_stack.ports import claim_port, free_port, port_in_use


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    assert not any(port_in_use(p) for p in ports)


def test_claim_port_in_use_names_the_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(EnvironmentProblemError) as err:
            claim_port(port)
    assert str(err.value) == f"port {port} on 127.0.0.1 is in use"


def test_claim_port_without_a_port_picks_a_free_one() -> None:
    assert not port_in_use(claim_port(None))
