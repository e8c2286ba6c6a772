"""README.md's five-minute tour, run as written: every fenced ``sh`` block under its heading, in order.

A block that starts with ``# terminal N (keeps running ...)`` is started in the background and waited for
until it prints ``listening on``; the other blocks run one after the other in a single shell (as typed in
the third terminal: its ``export`` holds for the rest), with ``set -e``, so a command that fails fails the
test, named by the shell's trace. The only changes: free ports instead of the README's (another run or
a developer's server may hold them), through the environment variables the commands read.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from decision.store.embedded import free_port
from tests.conftest import PATIENT_REDIS_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_HEADING = "## A five-minute tour"
README_REDIS_PORT = "6390"
WRITTEN_BY_THE_TOUR = ("my-rules.yaml", "winners.html")


def tour_blocks(text: str) -> list[str]:
    start = text.index(TOUR_HEADING)
    end = text.find("\n## ", start + len(TOUR_HEADING))
    section = text[start : end if end != -1 else len(text)]
    return [m.group(1) for m in re.finditer(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)]


def is_service(block: str) -> bool:
    first = block.lstrip().splitlines()[0]
    return first.startswith("# terminal") and "keeps running" in first


class Service:
    """A background block: its output collected, ready once it printed ``listening on``."""

    def __init__(self, script: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: stopped as a whole, like closing the terminal
        )
        self.output: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if "listening on" in line:
                self.ready.set()

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"a tour service did not start (exit {self.process.poll()}):\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def tour_env() -> Iterator[dict[str, str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DECISION_", "AUDIENCE_SYNC_"))}
    env |= {"DECISION_PORT": str(port), "DECISION_TARGET": f"127.0.0.1:{port}", "DECISION_DRAIN": "0"}
    env |= {"DECISION_CONSOLE_PORT": str(free_port())}
    # A busy machine can take longer than the production budget for the server's first Redis reads: the tour
    # would then show (rightly) a degraded answer where the README shows the VIP banner.
    env |= {"DECISION_REDIS_TIMEOUT_MS": str(int(PATIENT_REDIS_TIMEOUT * 1000))}
    yield env
    for name in WRITTEN_BY_THE_TOUR:
        (ROOT / name).unlink(missing_ok=True)


def test_the_tour_runs_as_written(tour_env: dict[str, str]) -> None:
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 6, "the tour lost its commands"
    for block in blocks:
        for line in block.splitlines():
            command = line.strip()
            if command and not command.startswith(("#", "export ", "sed ", "examples/", "--")):
                assert command.startswith("./dev "), f"a tour command without ./dev: {command}"
    redis_port = str(free_port())
    blocks = [block.replace(README_REDIS_PORT, redis_port) for block in blocks]
    services: list[Service] = []
    pages: dict[str, str] = {}
    try:
        for block in (b for b in blocks if is_service(b)):
            service = Service(block, tour_env)
            services.append(service)
            service.wait_ready()
        script = "\n".join(b for b in blocks if not is_service(b))
        result = subprocess.run(
            ["bash", "-euxo", "pipefail", "-c", script],
            cwd=ROOT,
            env=tour_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode == 0:  # the console (the last terminal), as a browser sees it signed in
            pages = console_pages(blocks, tour_env)
    finally:
        for service in reversed(services):
            service.stop()
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    expected = [
        "rule vip_or_gold",  # p-1001: the VIP banner
        "in_excluded_audience",  # p-1005's explanation
        "the profile leaves audience 'email-unsubscribed'",  # and why not the VIP banner
        "impression of vip_early_access: RECORDED",  # the Python client
        "profile p-1001  (read",  # decision profile p-1001: its audiences...
        "vip-customers",
        "web_banners_weekly",  # ... and the contact policy its decisions counted
        "published retail-2026.12",
        "ruleset retail-2026.12",  # the server follows the publish
        "Winter is here",
        "never win:",  # simulate
    ]
    position = 0
    for text in expected:  # in this order
        found = result.stdout.find(text, position)
        assert found != -1, f"{text!r} missing after position {position}:\n{said}"
        position = found
    services_said = "".join(line for s in services for line in s.output)
    assert "Traceback" not in said + services_said, said + services_said
    profile = pages["/profile?id=p-1001"]
    assert "vip-customers" in profile and "web_banners_weekly" in profile, profile
    assert "retail-2026.12 (active)" in pages["/changes"]


def console_pages(blocks: list[str], env: dict[str, str]) -> dict[str, str]:
    """The console's Profile page of p-1001 and its Changes page, fetched with the tour's token."""
    token = re.search(r"DECISION_AUTH_TOKENS=(\S+)", "\n".join(b for b in blocks if "decision console" in b))
    assert token is not None, "the tour's console lost its token"
    console = f"http://127.0.0.1:{env['DECISION_CONSOLE_PORT']}"
    return {path: console_page(console + path, token.group(1)) for path in ("/profile?id=p-1001", "/changes")}


def console_page(url: str, token: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(response.read().decode())


def test_the_one_command_server_loads_the_sample_audiences(tour_env: dict[str, str]) -> None:
    text = README.read_text(encoding="utf-8")
    command = re.search(r"`(\./dev decision serve --rules [^`]*--load-audiences [^`]*)`", text)
    assert command is not None, "the README lost its one-command server"
    service = Service(command.group(1), tour_env)
    try:
        service.wait_ready()
        result = subprocess.run(
            ["./dev", "decision", "decide", "--profile", "p-1001", "--channel", "web", "--placement", "home_banner"],
            cwd=ROOT,
            env=tour_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        service.stop()
    assert result.returncode == 0, result.stderr
    assert "vip_early_access" in result.stdout, result.stdout
