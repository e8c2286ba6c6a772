"""No call lost on shutdown: `decision serve` as a real process, SIGTERM under 100 calls in flight.

A Kubernetes rollout does exactly this. Every call in flight at SIGTERM must be
answered OK (before the fix, grpcio cancelled most of them: decision/api/shutdown.py);
a call made later is served (during the drain) or refused with UNAVAILABLE, never
CANCELLED; health turns NOT_SERVING while calls are still served; with several
workers, the parent exits only after all of them.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from decision.api.shutdown import REFUSED_DETAILS
from decision.cli.main import _settings as cli_settings
from decision.cli.main import build_parser
from decision.store.embedded import free_port
from decision.v1 import decision_pb2_grpc
from tests.conftest import StartServer, decision_stub
from tests.decision.cli.test_main import RULES, decision_command, wait_serving
from tests.decision.helpers import decide_request

IN_FLIGHT = 100
CONNECTIONS = 10  # several connections: with SO_REUSEPORT each worker gets some
DRAIN = 2.0
GRACE = 10.0
OK = grpc.StatusCode.OK
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Outcome:
    in_flight: collections.Counter[str] = field(default_factory=collections.Counter)
    # (monotonic start, status) of every call started after SIGTERM.
    later: list[tuple[float, grpc.StatusCode]] = field(default_factory=list)
    not_serving_seen: float | None = None
    exited_after: float = 0.0


@dataclass
class Served:
    process: subprocess.Popen[str]
    target: str
    port: int


@pytest.fixture
def serve(tmp_path: Path, redis_url: str) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"))

    def _serve(workers: int, drain: float = DRAIN) -> Served:
        port = free_port()
        args = ["serve", "--rules", str(rules), "--host", "127.0.0.1", "--port", str(port), "--redis-url", redis_url]
        args += ["--workers", str(workers), "--drain", str(drain), "--grace", str(GRACE)]
        process = subprocess.Popen(decision_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(process)
        wait_serving(f"127.0.0.1:{port}")
        return Served(process, f"127.0.0.1:{port}", port)

    yield _serve
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def worker_pids(parent: int) -> set[int]:
    """The parent's worker processes (not multiprocessing's resource tracker)."""
    shown = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True, check=False)
    pids = {int(pid) for pid in shown.stdout.split()}
    return {pid for pid in pids if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def decide(stub: decision_pb2_grpc.DecisionServiceStub, profile: str) -> grpc.StatusCode:
    try:
        await stub.Decide(decide_request(profile_id=profile, context={"cart": 120}), timeout=GRACE + 20)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return OK


async def sigterm_under_load(served: Served) -> Outcome:
    """100 callers keep one Decide each in flight; SIGTERM; their calls then, and later calls, are counted."""
    outcome = Outcome()
    # A local subchannel pool per channel: separate connections (else all share one, to one worker).
    channels = [
        grpc.aio.insecure_channel(served.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS + 2)
    ]
    stubs = [decision_pb2_grpc.DecisionServiceStub(channel) for channel in channels]
    signalled = asyncio.Event()
    warmed = asyncio.Event()
    calls_made = 0

    async def caller(index: int) -> None:
        """Always one call in flight until SIGTERM; the call in flight then is counted."""
        nonlocal calls_made
        stub = stubs[index % CONNECTIONS]
        while True:
            status = await decide(stub, f"p{index}")
            if signalled.is_set():
                outcome.in_flight[status.name] += 1
                return
            assert status == OK, status
            calls_made += 1
            if calls_made >= 5 * IN_FLIGHT:
                warmed.set()

    async def later_caller(index: int) -> None:
        """A client that calls every few ms from SIGTERM on and goes elsewhere once refused."""
        stub = stubs[index % CONNECTIONS]
        while True:
            started = time.monotonic()
            status = await decide(stub, f"late{index}")
            outcome.later.append((started, status))
            if status != OK:
                return
            await asyncio.sleep(0.02)

    async def health_watcher() -> None:
        stub = health_pb2_grpc.HealthStub(channels[-1])
        while outcome.not_serving_seen is None and served.process.poll() is None:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.aio.AioRpcError:
                return
            if reply.status == NOT_SERVING:
                outcome.not_serving_seen = time.monotonic()
            await asyncio.sleep(0.02)

    callers = [asyncio.create_task(caller(i)) for i in range(IN_FLIGHT)]
    await asyncio.wait_for(warmed.wait(), 60)  # the server is under load: every caller has a call in flight
    served.process.send_signal(signal.SIGTERM)
    signalled.set()
    sent = time.monotonic()
    later = [asyncio.create_task(later_caller(i)) for i in range(CONNECTIONS)]
    watcher = asyncio.create_task(health_watcher())
    await asyncio.gather(*callers, *later, watcher)
    await asyncio.to_thread(served.process.wait, DRAIN + GRACE + 30)
    outcome.exited_after = time.monotonic() - sent
    for channel in channels:
        await channel.close()
    return outcome


def check(outcome: Outcome, served: Served) -> None:
    assert served.process.returncode == 0
    # Every call in flight at SIGTERM was answered, none CANCELLED or failed.
    assert outcome.in_flight == {"OK": IN_FLIGHT}, outcome.in_flight
    statuses = collections.Counter(status.name for _, status in outcome.later)
    assert set(statuses) <= {"OK", "UNAVAILABLE"}, statuses
    assert statuses["UNAVAILABLE"] >= 1, statuses  # refused once the drain was over
    # Health said NOT_SERVING while Decide was still served: the drain.
    assert outcome.not_serving_seen is not None
    assert any(status == OK and started > outcome.not_serving_seen for started, status in outcome.later), statuses
    # The drain was waited for, and the grace not run out (generous bounds: a busy 2-core box).
    assert DRAIN <= outcome.exited_after < DRAIN + GRACE
    # Nothing listens any more (binding the port could still fail: its closed connections are in TIME_WAIT).
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", served.port)) == errno.ECONNREFUSED
    with grpc.insecure_channel(served.target) as channel, pytest.raises(grpc.RpcError) as refused:
        decision_pb2_grpc.DecisionServiceStub(channel).Decide(decide_request(), timeout=5)
    assert refused.value.code() == UNAVAILABLE  # type: ignore[attr-defined]


@pytest.mark.timeout(90)
def test_sigterm_loses_no_call_with_two_workers(serve: object) -> None:
    served: Served = serve(2)  # type: ignore[operator]
    workers = worker_pids(served.process.pid)
    assert len(workers) == 2
    outcome = asyncio.run(sigterm_under_load(served))
    output, _ = served.process.communicate(timeout=30)
    # The parent waited for both workers: when it exited, neither was still running.
    assert not [pid for pid in workers if alive(pid)]
    for pid in workers:
        assert f"worker {pid} stopped" in output, output
    check(outcome, served)


@pytest.mark.timeout(90)
def test_sigterm_loses_no_call_with_one_worker(serve: object) -> None:
    served: Served = serve(1)  # type: ignore[operator]
    outcome = asyncio.run(sigterm_under_load(served))
    output, _ = served.process.communicate(timeout=30)
    assert f"worker {served.process.pid} stopped" in output, output
    check(outcome, served)


@pytest.mark.timeout(90)
def test_without_a_drain_calls_in_flight_end_ok_or_unavailable_never_cancelled(serve: object) -> None:
    """--drain 0: calls grpcio had queued are refused UNAVAILABLE (not run, retry-safe), none CANCELLED."""
    served: Served = serve(2, drain=0.0)  # type: ignore[operator]
    outcome = asyncio.run(sigterm_under_load(served))
    served.process.communicate(timeout=30)
    assert served.process.returncode == 0
    assert sum(outcome.in_flight.values()) == IN_FLIGHT
    assert set(outcome.in_flight) <= {"OK", "UNAVAILABLE"}, outcome.in_flight
    assert {status.name for _, status in outcome.later} <= {"OK", "UNAVAILABLE"}


async def test_the_closed_gate_refuses_calls_unavailable_but_answers_health(
    start_server: StartServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"))
    running = await start_server(rules)
    async with decision_stub(running.port) as stub:
        assert (await stub.Decide(decide_request(), timeout=5)).propositions
        running.gate.close()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Decide(decide_request(), timeout=5)
    assert refused.value.code() == UNAVAILABLE
    assert refused.value.details() == REFUSED_DETAILS
    assert running.gate.refused == 1
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING  # load balancers still get an answer


def test_drain_and_grace_come_from_options_or_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DECISION_DRAIN", "0")
    monkeypatch.setenv("DECISION_GRACE", "2.5")
    settings = cli_settings(build_parser().parse_args(["serve"]))
    assert (settings.shutdown_drain, settings.shutdown_grace) == (0.0, 2.5)
    assert cli_settings(build_parser().parse_args(["serve", "--drain", "7"])).shutdown_drain == 7.0
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(["serve", "--drain", bad])
        assert refused.value.code == 2
        assert "argument --drain" in capsys.readouterr().err
