"""``decision console`` as a command: its refusals are one line and an exit status; it serves until SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from decision.store.embedded import free_port
from inbound_common.cli import Exit
from tests.decision.cli.test_conventions import one_line_error, run
from tests.waiting import DEADLINE, eventually_sync


def test_without_a_console_token_it_refuses_to_start(redis_url: str, tmp_path: Path) -> None:
    one_line_error(run("console", "--redis-url", redis_url), Exit.USAGE, "decision console: no token accepted")
    tokens = tmp_path / "tokens"
    tokens.write_text("a-decide-token-0123456789 decide\n")
    result = run("console", "--redis-url", redis_url, "--auth-tokens-file", str(tokens))
    one_line_error(result, Exit.USAGE, "no token has the console scope", "'<token> console'")
    tokens.write_text("short console\n")
    result = run("console", "--redis-url", redis_url, "--auth-tokens-file", str(tokens))
    one_line_error(result, Exit.USAGE, f"{tokens}:1: a token must be at least 16 characters")
    result = run("console", "--redis-url", redis_url, "--tls-cert", str(tokens), env={"DECISION_AUTH_TOKENS": "x" * 20})
    one_line_error(result, Exit.USAGE, "--tls-cert and --tls-key go together")
    result = run("console", "--redis-url", redis_url, "--metrics-url", "ftp://x/metrics")
    one_line_error(result, Exit.USAGE, "--metrics-url: not an http(s) URL")


def test_a_busy_port_is_one_line_and_unavailable(redis_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("console", "--redis-url", redis_url, "--port", str(port), env={"DECISION_AUTH_TOKENS": "t" * 20})
    one_line_error(result, Exit.UNAVAILABLE, f"decision console: cannot listen on 127.0.0.1:{port}", "in use")


def test_it_serves_a_page_to_a_token_until_sigterm(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "DECISION_AUTH_TOKENS": "a-token-with-every-scope", "DECISION_CONSOLE_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "decision.cli", "console", "--redis-url", redis_url],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        eventually_sync(lambda: "listening on" in process.stdout.readline(), "the console listening")  # type: ignore[union-attr]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/changes", headers={"Authorization": "Bearer a-token-with-every-scope"}
        )
        with urllib.request.urlopen(request, timeout=DEADLINE) as response:
            assert response.status == 200 and b"Published versions" in response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=DEADLINE)
    assert process.returncode == Exit.OK and "Traceback" not in out, out
