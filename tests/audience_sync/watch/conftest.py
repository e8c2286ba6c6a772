"""A real S3 API server on loopback (moto's server mode) read with a real s3fs client, and real watchers."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.audience_sync.helpers import ROOT

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
_buckets = itertools.count()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An s3fs client of the server (listings never cached), and a new bucket for the test."""
    import s3fs

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, use_listings_cache=False, skip_instance_cache=True)
    bucket = f"exports-{os.getpid()}-{next(_buckets)}"
    fs.mkdir(bucket)
    fs.test_bucket = bucket
    fs.test_endpoint = s3_endpoint
    return fs


class WatchProcess:
    """``audience-sync watch`` as a separate process; its --json lines collected as they come."""

    def __init__(self, args: list[str], *, redis_url: str, log: Path) -> None:
        env = {**os.environ, **CREDENTIALS, "AUDIENCE_SYNC_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
        self.log = log
        self._stderr = open(log, "wb")  # noqa: SIM115 - closed in stop()
        if "--work-dir" not in args:  # beside the log: a SIGKILLed watcher's copy is left in the test's directory
            args = [*args, "--work-dir", str(log.with_suffix(".work"))]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audience_sync.cli", "watch", *args, "--json", "--port", "0"],
            stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=ROOT,
        )  # fmt: skip
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(orjson.loads(line))

    def outcomes(self, outcome: str = "applied") -> list[str]:
        """The files of the exports this watcher reported with that outcome, in order."""
        return [f for line in list(self.lines) if line["outcome"] == outcome for f in line["files"]]

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, signum: int | None = None) -> int:
        if self.process.poll() is None:
            if signum is None:
                self.process.terminate()
            else:
                self.process.send_signal(signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait()
        self._reader.join(timeout=10)
        self._stderr.close()
        return code


@pytest.fixture
def watchers(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WatchProcess]]:
    started: list[WatchProcess] = []

    def start(*args: str) -> WatchProcess:
        process = WatchProcess(list(args), redis_url=redis_url, log=tmp_path / f"watch-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class Proxy:
    """A TCP proxy on loopback in front of a real server (Redis, the S3 server), to fail one exchange as a
    network does: the reply to the first request containing ``marker`` is swallowed after the server sent it
    (``cut``: the client's connection is then closed, the server having done the work), or held until
    ``release()`` (``hold``: a slow download). Every other byte passes through."""

    def __init__(self, target: tuple[str, int], marker: bytes, action: str) -> None:
        self.target = target
        self.marker = marker
        self.action = action
        self.matched = threading.Event()  # the marked request went through to the server
        self.done = threading.Event()  # its reply was swallowed (cut) or held (hold)
        self.released = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            marked = threading.Event()  # this connection carried the marked request
            threading.Thread(target=self._requests, args=(client, server, marked), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, marked), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, marked: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(1 << 16):
                if not self.matched.is_set() and self.marker in data:
                    self.matched.set()
                    marked.set()
                server.sendall(data)
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _replies(self, server: socket.socket, client: socket.socket, marked: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(1 << 16):
                if marked.is_set() and not self.done.is_set():
                    self.done.set()
                    if self.action == "cut":  # the server did the work; the client never hears of it
                        for sock in (client, server):
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)  # the FIN now, and the other thread woken
                            sock.close()
                        return
                    self.released.wait()
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxies() -> Iterator[Callable[[str, bytes, str], Proxy]]:
    """``proxy(url, marker, action)``: a Proxy in front of ``url``'s host and port."""
    made: list[Proxy] = []

    def make(url: str, marker: bytes, action: str) -> Proxy:
        parsed = urllib.parse.urlsplit(url)
        made.append(Proxy((parsed.hostname or "127.0.0.1", int(parsed.port or 0)), marker, action))
        return made[-1]

    yield make
    for proxy in made:
        proxy.close()
