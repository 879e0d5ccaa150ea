"""The shared wire-protocol pieces: SCRAM both ways, framing, error fields (pure logic)."""

from __future__ import annotations

import pytest

from connstorm.local_stack import pg_wire


@pytest.mark.parametrize(("password", "accepted"), [("right", True), ("wrong", False)])
def test_scram_server_checks_the_clients_proof(password: str, accepted: bool) -> None:
    secret = pg_wire.ScramSecret.from_password("right")
    client, server = pg_wire.ScramClient(password), pg_wire.ScramServer(secret)
    final = server.final(client.final(server.first(client.first().decode()).encode()).decode())
    assert (final is not None) == accepted
    if final is not None:
        client.check(final.encode())  # the client verifies the server knew the secret too


def test_scram_server_refuses_channel_binding_and_a_replayed_nonce() -> None:
    server = pg_wire.ScramServer(pg_wire.ScramSecret.from_password("pw"))
    with pytest.raises(pg_wire.ProtocolViolation):
        server.first("p=tls-server-end-point,,n=,r=abc")
    server.first("n,,n=,r=abc")
    assert server.final("c=biws,r=abc-not-ours,p=AAAA") is None


def test_messages_and_errors_round_trip() -> None:
    error = pg_wire.error_response("boom", "08006", "ERROR")
    assert error[:1] == b"E"
    assert pg_wire.length_of(error, 1) == len(error) - 1
    assert pg_wire.error_fields(error[5:]) == {"S": "ERROR", "V": "ERROR", "C": "08006",
                                                "M": "boom"}
    assert pg_wire.ready_for_query(b"T") == b"Z\x00\x00\x00\x05T"
    packet = pg_wire.startup_packet({"user": "app"})
    assert pg_wire.length_of(packet) == len(packet)
