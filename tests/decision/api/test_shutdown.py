"""The sockets a stop acts on, found among the process's descriptors: plain sockets stand in for grpc's."""

from __future__ import annotations

import errno
import socket

from decision.api.shutdown import close_listeners, connection_options, default_connection_age, open_connections


def test_closing_the_listeners_refuses_new_connections_and_keeps_the_open_ones() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, socket.create_server(("127.0.0.1", 0)) as other:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        with client, accepted, listener.dup():  # grpc holds two: shut once
            assert open_connections(port) == 1  # the accepted end; the client's end is bound to another port
            assert close_listeners(port) == 1
            with socket.socket() as late:
                assert late.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
            client.sendall(b"still open")
            assert accepted.recv(10) == b"still open"
            assert open_connections(port) == 1  # the shut listener is not counted as a connection
            with socket.socket() as elsewhere:  # another port's listener is left alone
                assert elsewhere.connect_ex(other.getsockname()) == 0
        assert open_connections(port) == 0


def test_every_connection_gets_a_goaway_at_half_the_grace_by_default() -> None:
    assert default_connection_age(10.0) == 5.0
    assert connection_options(5.0, 10.0) == [
        ("grpc.max_connection_age_ms", 5000),
        ("grpc.max_connection_age_grace_ms", 10000),
    ]
