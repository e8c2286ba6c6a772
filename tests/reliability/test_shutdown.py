"""No call lost on shutdown: `decision serve` as a real process, SIGTERM under calls in flight.

A Kubernetes rollout does exactly this. Every call in flight at SIGTERM must be
answered OK (before the fix, grpcio cancelled most of them: decision/api/shutdown.py);
a call made later is served or refused with UNAVAILABLE before it ran, never
CANCELLED, however long its caller keeps calling; health turns NOT_SERVING while
calls are still served; with several workers, the parent exits only after all of them.
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
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from decision.api.shutdown import open_connections
from decision.cli.main import _settings as cli_settings
from decision.cli.main import build_parser, main
from decision.core.outcomes import rows_of
from decision.rules.types import DECISION
from decision.store.embedded import free_port
from decision.v1 import decision_pb2_grpc
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.cli.test_main import RULES, decision_command, wait_serving
from tests.decision.helpers import decide_request
from tests.waiting import eventually

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
    key_prefix: str


@pytest.fixture
def serve(tmp_path: Path, redis_url: str) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"))

    def _serve(workers: int, drain: float = DRAIN, grace: float = GRACE) -> Served:
        port = free_port()
        prefix = f"shutdown{port}"  # this server's own counters
        args = ["serve", "--rules", str(rules), "--host", "127.0.0.1", "--port", str(port), "--redis-url", redis_url]
        args += ["--workers", str(workers), "--drain", str(drain), "--grace", str(grace), "--key-prefix", prefix]
        process = subprocess.Popen(decision_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(process)
        wait_serving(f"127.0.0.1:{port}")
        return Served(process, f"127.0.0.1:{port}", port, prefix)

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
    assert statuses["UNAVAILABLE"] >= 1, statuses  # turned away once the listener closed and its connection went
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
def test_without_a_drain_every_call_in_flight_is_answered(serve: object) -> None:
    """--drain 0: the listener closes at SIGTERM, but the calls of open connections are still served."""
    served: Served = serve(2, drain=0.0)  # type: ignore[operator]
    outcome = asyncio.run(sigterm_under_load(served))
    served.process.communicate(timeout=30)
    assert served.process.returncode == 0
    assert outcome.in_flight == {"OK": IN_FLIGHT}, outcome.in_flight
    assert {status.name for _, status in outcome.later} <= {"OK", "UNAVAILABLE"}


# -- callers that never stop -------------------------------------------------------------------------
CALLERS = 200  # half retry at once what failed, half after BACKOFF
BACKOFF = 0.2
SHORT_DRAIN, SHORT_GRACE = 1.0, 4.0  # connections live 2 s (half the grace)


@dataclass
class Calls:
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    # (status, details) of every call that failed: what a client would log.
    failures: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    after_sigterm: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def ok(self) -> int:
        return self.statuses["OK"]


async def call_through_shutdown(served: Served) -> Calls:
    """CALLERS keep calling, before SIGTERM and after, until the server has exited; every status counted."""
    calls = Calls()
    channels = [
        grpc.aio.insecure_channel(served.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS * 2)
    ]
    stubs = [decision_pb2_grpc.DecisionServiceStub(channel) for channel in channels]
    signalled = False
    started: set[int] = set()
    all_started = asyncio.Event()

    async def caller(index: int) -> None:
        stub = stubs[index % len(stubs)]
        backoff = BACKOFF if index % 2 else 0.0
        while served.process.poll() is None:
            try:
                await stub.Decide(decide_request(profile_id=f"p{index}", context={"cart": 120}), timeout=GRACE + 20)
                status = "OK"
            except grpc.aio.AioRpcError as exc:
                status = exc.code().name
                calls.failures[(status, exc.details() or "")] += 1
            calls.statuses[status] += 1
            if signalled:
                calls.after_sigterm[status] += 1
            elif status == "OK":
                started.add(index)
                if len(started) == CALLERS:
                    all_started.set()
            if status != "OK" and backoff:
                await asyncio.sleep(backoff)

    tasks = [asyncio.create_task(caller(i)) for i in range(CALLERS)]
    await asyncio.wait_for(all_started.wait(), 60)  # every caller is calling
    served.process.send_signal(signal.SIGTERM)
    signalled = True
    await asyncio.gather(*tasks)  # each ends at its first call after the server exited
    for channel in channels:
        await channel.close()
    return calls


def proposals_counted(redis_url: str, prefix: str) -> int:
    """The server's count of answers (its outcome counters): each answer here proposes the offer ``fb``
    (eligible to all, and the fallback of a degraded answer)."""
    keys = KeySpace(prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        total = 0
        for key in client.scan_iter(match=keys.outcomes_pattern(), count=1000):
            parsed = keys.outcome_key_of(key)
            if parsed is not None and parsed[0] == "fb":
                total += sum(row.count for row in rows_of(*parsed, client.hgetall(key)) if row.counted == DECISION)
        return total
    finally:
        client.close()


def check_never_cancelled(calls: Calls, served: Served, redis_url: str) -> None:
    print(f"{CALLERS} callers through SIGTERM: {dict(calls.statuses)}; after SIGTERM {dict(calls.after_sigterm)}")
    assert served.process.returncode == 0
    assert calls.after_sigterm["OK"] > 0, calls  # served after SIGTERM (drain, then the open connections)
    assert calls.after_sigterm["UNAVAILABLE"] > 0, calls  # turned away once the listener was closed
    # No call cancelled or torn down ("Stream removed", "Broken pipe", INTERNAL): each was served or never ran.
    assert set(calls.statuses) <= {"OK", "UNAVAILABLE"}, calls.failures
    torn = [details for (_, details), _ in calls.failures.items() if "Stream removed" in details or "pipe" in details]
    assert not torn, calls.failures
    # Nothing was counted for a call that failed: the server counted exactly the proposals it answered.
    assert proposals_counted(redis_url, served.key_prefix) == calls.ok, calls


@pytest.mark.timeout(120)
def test_callers_that_never_stop_are_served_or_turned_away_with_two_workers(serve: object, redis_url: str) -> None:
    served: Served = serve(2, drain=SHORT_DRAIN, grace=SHORT_GRACE)  # type: ignore[operator]
    calls = asyncio.run(call_through_shutdown(served))
    output, _ = served.process.communicate(timeout=30)
    assert "still open" not in output, output  # every connection went before the grace ran short
    check_never_cancelled(calls, served, redis_url)


@pytest.mark.timeout(120)
def test_callers_that_never_stop_are_served_or_turned_away_with_one_worker(serve: object, redis_url: str) -> None:
    served: Served = serve(1, drain=SHORT_DRAIN, grace=SHORT_GRACE)  # type: ignore[operator]
    calls = asyncio.run(call_through_shutdown(served))
    output, _ = served.process.communicate(timeout=30)
    assert "still open" not in output, output
    check_never_cancelled(calls, served, redis_url)


async def test_a_stop_refuses_new_connections_at_once_and_serves_the_open_ones(
    start_server: StartServer, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"))
    running = await start_server(rules, shutdown_grace=8.0, max_connection_age=4.0)
    async with decision_stub(running.port) as stub:
        assert (await stub.Decide(decide_request(), timeout=5)).propositions
        stopping = asyncio.create_task(running.stop())

        def refused() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", running.port)) == errno.ECONNREFUSED

        await eventually(refused, "the listener closed", within=30)  # first thing (no drain in-process)
        assert not stopping.done()  # waiting for the open connection to reach its age
        assert open_connections(running.port) == 1
        assert (await stub.Decide(decide_request(), timeout=5)).propositions  # still served on it
        await asyncio.wait_for(stopping, 10)  # the connection was sent GOAWAY at its age, then the server stopped
    assert open_connections(running.port) == 0


def test_drain_grace_and_connection_age_come_from_options_or_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DECISION_DRAIN", "0")
    monkeypatch.setenv("DECISION_GRACE", "2.5")
    settings = cli_settings(build_parser().parse_args(["serve"]))
    assert (settings.shutdown_drain, settings.shutdown_grace, settings.max_connection_age) == (0.0, 2.5, None)
    assert cli_settings(build_parser().parse_args(["serve", "--drain", "7"])).shutdown_drain == 7.0
    monkeypatch.setenv("DECISION_MAX_CONNECTION_AGE", "1")
    assert cli_settings(build_parser().parse_args(["serve"])).max_connection_age == 1.0
    for bad in ("-1", "soon", "nan"):
        with pytest.raises(SystemExit) as refused:
            build_parser().parse_args(["serve", "--drain", bad])
        assert refused.value.code == 2
        assert "argument --drain" in capsys.readouterr().err


def test_a_connection_age_over_half_the_grace_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A stop could not wait for every connection to go: a usage error, one line, nothing started."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(version="v1"))
    status = main(["serve", "--rules", str(rules), "--grace", "4", "--max-connection-age", "3"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "decision serve: --max-connection-age 3 is more than half of --grace 4: "
        "a stop could not wait for every connection to go"
    )
