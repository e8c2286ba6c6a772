"""Run the gRPC server: one asyncio worker, or N worker processes sharing a port.

A worker serves DecisionService, gRPC health checking and server reflection;
SIGHUP reloads the ruleset file (a bad file is refused and the old ruleset
keeps serving). SIGTERM/SIGINT stop it without losing a call
(decision/api/shutdown.py says why grpcio's own stop is not enough):

1. health turns NOT_SERVING and calls are still served for ``shutdown_drain``
   seconds (``--drain``), while load balancers and endpoints stop sending here;
   a second SIGTERM/SIGINT ends the drain early;
2. the listener closes (new connections are refused: clients go elsewhere);
   calls on open connections are still served until each connection reaches
   ``max_connection_age`` and is sent a GOAWAY (``--max-connection-age``, at
   most half of ``--grace``);
3. once no connection is left, the server stops: nothing is cancelled.
   ``shutdown_grace`` (``--grace``, counted from the end of the drain) bounds
   steps 2 and 3.

With ``workers > 1`` the parent process starts the workers (SO_REUSEPORT on
one port), forwards SIGTERM/SIGINT/SIGHUP to them, and exits when they have
all stopped: none is left listening behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from decision.api import security
from decision.api.guards import Guards, Registry
from decision.api.operations import ServerOps
from decision.api.servicer import DecisionServicer, add_to_server
from decision.api.shutdown import (
    CONNECTIONS_SHARE,
    close_listeners,
    connection_options,
    default_connection_age,
    wait_connections_gone,
)
from decision.observe.logs import configure_json_logging
from decision.observe.metrics import MultiprocessExporter
from decision.rules.errors import RulesetInvalid
from decision.service.active import ActiveRuleset, load_compiled
from decision.service.decider import DecisionService
from decision.settings import Settings
from decision.store.connect import connect
from decision.store.profiles import ProfileStore, StoreError
from decision.v1 import decision_pb2
from inbound_common.keys import KeySpace

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SERVICE_NAME = decision_pb2.DESCRIPTOR.services_by_name["DecisionService"].full_name


@dataclass
class RunningServer:
    """A started worker, for callers that run it in-process (tests, the demo)."""

    server: grpc.aio.Server
    port: int
    service: DecisionService
    health: health.aio.HealthServicer
    store: ProfileStore
    settings: Settings
    _watch: asyncio.Task[None]
    # Published-ruleset following, metrics, tracing (decision/operations.py).
    ops: ServerOps | None = None

    @property
    def metrics_port(self) -> int | None:
        return self.ops.metrics_port if self.ops is not None else None

    def reload(self) -> bool:
        """Reload the ruleset file; keep the current ruleset if the new one is invalid.

        Without a file (published rulesets), re-read the active one from Redis.
        """
        path = self.settings.rules_path
        if path is None:
            if self.ops is not None:
                self.ops.resync()
            return False
        try:
            compiled = load_compiled(path)
        except RulesetInvalid as exc:
            log.error("ruleset reload refused, keeping %s:\n%s", self.service.active.current.version, exc)
            if self.ops is not None:
                self.ops.file_reloaded(None)
            return False
        self.service.active.replace(compiled)
        if self.ops is not None:
            self.ops.file_reloaded(compiled.version)
        return True

    async def stop(self, grace: float | None = None, drain: float = 0.0, hurry: asyncio.Event | None = None) -> None:
        """Drain, close the listener, let the connections go, stop (see the module docstring).

        ``grace`` None: ``settings.shutdown_grace``. ``drain`` is 0 for in-process callers; the worker
        passes ``settings.shutdown_drain``. ``hurry``, once set, ends the drain early.
        """
        grace = self.settings.shutdown_grace if grace is None else grace
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((hurry or asyncio.Event()).wait(), drain)
        closed_at = time.monotonic()
        deadline = closed_at + grace
        await asyncio.to_thread(close_listeners, self.port)
        left = await wait_connections_gone(self.port, closed_at + grace * CONNECTIONS_SHARE)
        if left:
            log.warning(
                "%d connections still open %.1f s after the listener closed: stopping anyway, calls grpc had "
                "queued on them are cancelled (a client ignoring GOAWAY, or --max-connection-age above half "
                "of --grace)",
                left,
                time.monotonic() - closed_at,
            )
        else:
            log.info("no connection left %.1f s after the listener closed", time.monotonic() - closed_at)
        await self.server.stop(max(deadline - time.monotonic(), 0.0))
        if self.ops is not None:
            await self.ops.stop()
        self.store.stop_watching()
        self._watch.cancel()
        # The watcher returns by itself within one poll interval even if the cancellation is lost.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._watch), self.settings.registry_poll_interval + 1.0)
        await self.service.learning.stop()
        await self.service.proposals.stop()  # the last proposal counts (service/outcomes.py)
        self.service.degraded.stop()  # the degraded answers not logged yet
        await self.store.close()


def _freeze_startup_objects() -> None:
    """Exempt what the process holds once a service is built (modules, the compiled ruleset, gRPC) from
    the cyclic GC: a full collection walking all of it paused a decision for 100+ ms, past its Redis
    budget (a degraded answer that says nothing about Redis). Once per process: later objects stay collectable.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


_frozen = False


async def start(settings: Settings, redis_url: str) -> RunningServer:
    """Start one worker on ``settings.host:settings.port`` (port 0: any free port)."""
    ops = ServerOps(settings, redis_url)
    # The rules file, or else the ruleset published to Redis (then followed as new ones are published).
    if settings.rules_path is not None:
        active = ActiveRuleset(load_compiled(settings.rules_path))
    else:
        active = ActiveRuleset(await ops.load_published())
    store = ProfileStore(connect(redis_url, timeout=max(settings.redis_timeout, 0.25)), KeySpace(settings.key_prefix))
    try:
        await store.refresh_directory()
    except StoreError as exc:  # serve fallbacks until Redis is back
        log.warning("Redis is not reachable at start (%s): answering with fallbacks until it is", exc)
    service = DecisionService(store, active, settings)
    _freeze_startup_objects()
    age = settings.max_connection_age
    options = [
        ("grpc.max_receive_message_length", settings.limits.max_message_bytes),
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        # Each connection is sent a GOAWAY at this age: a stop never has to cancel a call (api/shutdown.py).
        *connection_options(default_connection_age(settings.shutdown_grace) if age is None else age,
                            settings.shutdown_grace),
    ]  # fmt: skip
    # No server interceptor (grpc.aio would run it on every call): each method is registered behind its guards
    # (tracing, metrics -- calls refused by authentication counted too --, authentication, the request guard).
    auth = security.authentication(settings)
    server = grpc.aio.server(options=options)
    registry = Registry(server, Guards(auth, ops.metrics, ops.traced))
    on_decision = None if ops.metrics is None else ops.metrics.decision
    add_to_server(DecisionServicer(service, settings.limits, on_decision), registry)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registry)
    names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(names), registry)
    port = security.add_port(server, settings)  # TLS / mutual TLS when configured
    security.warn_if_exposed(settings)
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    watch = asyncio.create_task(store.watch_directory(settings.registry_poll_interval))
    ops.attach(store, active, service.breakers, None if auth is None else auth.refused)
    service.events.metrics = ops.metrics
    service.degraded.metrics = ops.metrics
    service.proposals.start()
    service.learning.start(active)
    return RunningServer(server, port, service, health_servicer, store, settings, watch, ops)


async def run_worker(settings: Settings, redis_url: str, on_ready: Callable[[int], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; reload on SIGHUP. Returns the exit status: 130 when SIGINT stopped it."""
    running = await start(settings, redis_url)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    hurry = asyncio.Event()  # a second SIGTERM/SIGINT: end the drain now
    stopped_by: list[int] = []

    def on_stop_signal(signum: int) -> None:
        stopped_by.append(signum)
        (hurry if stopping.is_set() else stopping).set()

    loop.add_signal_handler(signal.SIGTERM, on_stop_signal, signal.SIGTERM)
    loop.add_signal_handler(signal.SIGINT, on_stop_signal, signal.SIGINT)
    loop.add_signal_handler(signal.SIGHUP, running.reload)
    log.info(
        "worker %d serving %s on %s:%d, ruleset %s",
        os.getpid(),
        SERVICE_NAME,
        settings.host,
        running.port,
        running.service.active.current.version,
    )
    if on_ready is not None:
        on_ready(running.port)
    await stopping.wait()
    log.info(
        "worker %d stopping: NOT_SERVING, draining %.1f s, then no new connection; open ones go within %.1f s",
        os.getpid(),
        settings.shutdown_drain,
        settings.shutdown_grace,
    )
    await running.stop(drain=settings.shutdown_drain, hurry=hurry)
    log.info("worker %d stopped", os.getpid())
    return _stopped_status(stopped_by[0])


def _stopped_status(signum: int) -> int:
    """A server stopped by Ctrl-C ends as an interrupted command does (130, ``decision`` Exit.INTERRUPTED)."""
    return 128 + signal.SIGINT if signum == signal.SIGINT else 0


def run_event_loop(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """asyncio.run with uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def _worker_main(settings: Settings, redis_url: str) -> None:
    configure_logging(log_format=settings.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGINT as SIGTERM
    run_event_loop(lambda: run_worker(settings, redis_url))


def serve_workers(settings: Settings, redis_url: str, on_ready: Callable[[int], None] | None = None) -> int:
    """Run ``settings.workers`` worker processes on one port. Returns an exit status."""
    if settings.workers <= 1:
        return run_event_loop(lambda: run_worker(settings, redis_url, on_ready))
    if settings.port == 0:
        raise ValueError("several workers share one port: give --port")
    if settings.metrics_port is None:
        return _serve_workers(settings, redis_url, on_ready)

    # Set up before the workers start: they inherit its PROMETHEUS_MULTIPROC_DIR.
    with MultiprocessExporter(settings.host, settings.metrics_port) as exporter:
        log.info("metrics of all workers on http://%s:%d/metrics", settings.host, exporter.port)
        return _serve_workers(settings, redis_url, on_ready, exporter.worker_exited)


def _serve_workers(
    settings: Settings,
    redis_url: str,
    on_ready: Callable[[int], None] | None,
    on_exit: Callable[[int], None] | None = None,
) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_main, args=(settings, redis_url), name=f"decision-worker-{i}", daemon=False)
        for i in range(settings.workers)
    ]

    stopped_by: list[int] = []

    def forward(signum: int, _: object) -> None:
        if signum != signal.SIGHUP:
            stopped_by.append(signum)
        sent = signal.SIGTERM if signum == signal.SIGINT else signum
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, sent)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    for worker in workers:
        worker.start()
    if on_ready is not None:
        on_ready(settings.port)
    status = 0
    # Wait for all; if one dies on its own, stop the others: an orchestrator
    # restarts the whole unit rather than running it short of a worker.
    remaining = list(workers)
    while remaining:
        for worker in list(remaining):
            worker.join(timeout=0.2)
            if worker.exitcode is None:
                continue
            remaining.remove(worker)
            if on_exit is not None and worker.pid is not None:
                on_exit(worker.pid)
            # Killed by the SIGTERM we forwarded before it set its handlers (a Ctrl-C at start): asked to stop.
            if worker.exitcode != 0 and not (stopped_by and worker.exitcode == -signal.SIGTERM):
                status = 1
                log.error("worker %s exited with %s; stopping the others", worker.name, worker.exitcode)
                forward(signal.SIGTERM, None)
    return status or (_stopped_status(stopped_by[0]) if stopped_by else 0)


def configure_logging(level: int = logging.INFO, log_format: str = "text") -> None:
    """Log to stderr: readable lines, or one JSON object per line (``log_format="json"``)."""
    if log_format == "json":
        configure_json_logging(level)
        return
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
