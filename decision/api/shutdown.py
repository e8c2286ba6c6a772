"""Graceful shutdown of one worker: every call is served, or refused before the server saw it.

Why not just ``server.stop(grace)``: grpc core, once shutdown starts
(``Server::ShutdownAndNotify``), cancels every call it has accepted from a
connection but not yet handed to the application (``KillPendingWorkLocked`` ->
``ZombifyPending``), and every stream that arrives after that
(``Server::CallData::StartNewRpc``: ``ShutdownCalled()`` -> ``KillZombie``) --
including those a client sent before it read the GOAWAY that the stop sends.
Under callers that never stop there are always calls in both places; their
clients get ``CANCELLED`` (not safe to retry: a Decide may have counted) or,
when the connection is torn down, ``UNAVAILABLE`` "Stream removed". ``grace``
protects only calls a servicer has started, and refusing calls from an
interceptor does not help: the refused caller retries on the same connection.

grpcio sends a GOAWAY without shutting down in one case only: a connection
that reaches its maximum age (``grpc.max_connection_age_ms``, +-10 % jitter) is
sent a graceful GOAWAY (NO_ERROR, a ping, then the last stream id), keeps
serving the calls it got, and is closed once they are answered; the client
moves its next calls to a new connection, and a stream it sent after the last
id is retried by the client transparently. The server is not shutting down
meanwhile, so nothing is cancelled. So every connection lives at most
``max_connection_age`` (:func:`connection_options`), and a worker stops in
three steps:

1. drain: health reports NOT_SERVING and every call is served, so that load
   balancers and Kubernetes endpoints stop sending here;
2. at the end of the drain -- a fixed point, whatever the traffic -- the
   listening socket is shut (:func:`close_listeners`): a client's new
   connection is refused, and it connects elsewhere (or fails with
   ``UNAVAILABLE`` on its side: nothing ran). Calls on the connections already
   open are still served until each connection reaches its age and goes;
3. once no connection is left (:func:`wait_connections_gone`), ``server.stop``:
   nothing is queued in grpc, nothing is cancelled.

If connections are still open when :data:`CONNECTIONS_SHARE` of the grace is
spent (a client that ignores GOAWAY, or an in-process stop given a short
grace), the server stops all the same with the rest of the grace, and the
calls grpc had queued are cancelled (logged). ``max_connection_age`` at most
half the grace keeps that from happening to well-behaved clients.

The listening and connected sockets are found among the process's file
descriptors (``/dev/fd``): grpcio offers no handle on them. grpc core logs
"Closing acceptor. Failed accept4: Invalid argument" once per listener when
its socket is shut: that is this step, not a fault.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import closing

log = logging.getLogger(__name__)

# Of the grace: how long open connections may take to go (their GOAWAY comes within 0.55 of it when
# max_connection_age is at most half the grace); the rest is for the calls they still carry.
CONNECTIONS_SHARE = 0.75
POLL = 0.05  # seconds between two counts of the open connections
# Port families grpc listens on.
_INET = (socket.AF_INET, socket.AF_INET6)


def default_connection_age(grace: float) -> float:
    """The connection age when none is given: half the grace (every GOAWAY comes within 0.55 of it)."""
    return grace / 2


def connection_options(max_age: float, grace: float) -> list[tuple[str, int]]:
    """grpc server options: a GOAWAY to each connection at ``max_age`` (+-10 %), closed ``grace`` later at most."""
    return [
        ("grpc.max_connection_age_ms", max(int(max_age * 1000), 1)),
        ("grpc.max_connection_age_grace_ms", max(int(grace * 1000), 1)),
    ]


def _sockets_on(port: int) -> Iterator[tuple[socket.socket, bool]]:
    """The process's TCP sockets bound to ``port`` (each once), and whether each is a listener.

    Each is a duplicate of the descriptor grpc holds (closed by the caller): shutting it down acts on
    the socket grpc uses, closing it does not.
    """
    seen: set[int] = set()
    try:
        names = os.listdir("/dev/fd")
    except OSError:  # pragma: no cover - every Linux and macOS has it
        return
    for name in names:
        try:
            fd = int(name)
            status = os.fstat(fd)
            if not stat.S_ISSOCK(status.st_mode) or status.st_ino in seen:
                continue
            copy = os.dup(fd)
        except (OSError, ValueError):  # closed meanwhile
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket Python knows
            os.close(copy)
            continue
        with closing(sock):
            try:
                if sock.family not in _INET or sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != port:
                    continue
                listening = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
                if not listening:
                    sock.getpeername()  # a shut listener is neither listening nor connected
            except OSError:
                continue
            seen.add(status.st_ino)
            yield sock, listening


def close_listeners(port: int) -> int:
    """Shut the listening sockets on ``port``: new connections are refused from now on. Returns how many."""
    closed = 0
    for sock, listening in _sockets_on(port):
        if listening:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError as exc:  # another descriptor of the same socket was shut first
                if exc.errno != errno.ENOTCONN:
                    raise
            closed += 1
    return closed


def open_connections(port: int) -> int:
    """How many client connections to ``port`` this process holds."""
    return sum(1 for _, listening in _sockets_on(port) if not listening)


async def wait_connections_gone(port: int, deadline: float) -> int:
    """Wait until no connection to ``port`` is open, or ``deadline`` (monotonic); the number left."""
    while True:
        left = await asyncio.to_thread(open_connections, port)
        if left == 0 or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(min(POLL, max(deadline - time.monotonic(), 0.0)))
