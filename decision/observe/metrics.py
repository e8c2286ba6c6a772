"""Prometheus metrics: RPCs (timed by ``decision.api.guards``), decisions, Redis, rulesets, audience syncs.

Only built when the server is given ``--metrics-port``; without it nothing
here runs on a request. With one worker the server exposes its own registry
on that port. With ``--workers N`` the parent process exposes them all:
workers write their values to files in a directory named by
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen
when prometheus_client is imported, so the parent sets it before the workers
start) and the parent merges them on every scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from decision.core.types import Decision
from decision.service import stages
from decision.service.degraded import REASONS
from inbound_common.codecs import AudienceDirectory

log = logging.getLogger(__name__)

# The one spelling of Decide's gRPC method name (metrics labels, tracing, the scopes of decision.api.auth).
DECIDE_METHOD = "/decision.v1.DecisionService/Decide"
# The names the console's Live page reads back (decision.observe.readings).
RPC_CALLS = "decision_rpc_calls"
RPC_SECONDS = "decision_rpc_duration_seconds"
DEGRADED = "decision_degraded"
RULESET_ACTIVE = "decision_ruleset_active"
BREAKER_OPEN = "decision_redis_breaker_open"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Decisions take about a millisecond; the tail matters up to the usual deadlines.
RPC_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def multiprocess_mode() -> bool:
    return MULTIPROC_ENV in os.environ or MULTIPROC_ENV.lower() in os.environ


class Metrics:
    """Every metric of a server, in its own registry (several servers may share a test process)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_mode()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpc_calls = Counter(RPC_CALLS, "gRPC calls, by method and status code", ["method", "code"], registry=r)
        self.rpc_seconds = Histogram(
            RPC_SECONDS,
            "gRPC call latency in the server, by method and status code",
            ["method", "code"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.propositions = Counter(
            "decision_propositions",
            "offers proposed, by placement, offer, outcome (selected, fallback, degraded) and dry_run (true: the "
            "answer of a dry run, counted nowhere else)",
            ["placement", "offer", "outcome", "dry_run"],
            registry=r,
        )
        # Proposals by placement: decision_propositions summed over offer (one source of truth).
        self.events = Counter(
            "decision_events_recorded",
            "feedback events recorded (duplicates left out), by placement and type (impression, click, dismiss, "
            "custom: custom types are not labelled, their number is not bounded)",
            ["placement", "type"],
            registry=r,
        )
        self.fallbacks = Counter(
            "decision_fallbacks",
            "placements answered with their fallback, by placement and dry_run (true: a dry run's answer)",
            ["placement", "dry_run"],
            registry=r,
        )
        self.degraded_answers = Counter(
            DEGRADED,
            "decisions answered with fallbacks, without the profile, by reason (decision.service.degraded.REASONS)",
            ["reason"],
            registry=r,
        )
        self._degraded_children = {reason: self.degraded_answers.labels(reason) for reason in REASONS}
        self.redis_seconds = Histogram(
            "decision_redis_duration_seconds",
            "Redis reads of the decision path, by operation",
            ["operation"],
            buckets=REDIS_BUCKETS,
            registry=r,
        )
        self.ruleset_active_gauge = Gauge(
            RULESET_ACTIVE,
            "1 for the ruleset version this server decides with",
            ["version"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.ruleset_loaded_at = Gauge(
            "decision_ruleset_loaded_timestamp_seconds",
            "when the active ruleset was swapped in",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.reload_failures = Counter(
            "decision_ruleset_reload_failures",
            "rulesets refused by this server (file: SIGHUP reload, redis: a published one)",
            ["source"],
            registry=r,
        )
        self.audience_synced_at = Gauge(
            "decision_audience_last_sync_timestamp_seconds",
            "last successful sync of each audience, from the audience registry",
            ["audience"],
            registry=r,
            multiprocess_mode="max",
        )
        self.loop_tasks = Gauge(
            "decision_event_loop_tasks",
            "asyncio tasks alive in the worker's event loop, sampled every second (a leak shows as growth)",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.refused_calls = Counter(
            "decision_refused_calls",
            "calls refused by authentication, by reason (unauthenticated, permission_denied)",
            ["reason"],
            registry=r,
        )
        self.breaker_open = Gauge(
            BREAKER_OPEN,
            "1 while the circuit breaker of a Redis node is open (its profiles get fallbacks), by node",
            ["node"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.breaker_opened = Counter(
            "decision_redis_breaker_opened", "times the circuit breaker of a Redis node opened", ["node"], registry=r
        )
        self.registry_lost = Counter(
            "decision_audience_registry_lost",
            "times the audience registry was found missing in Redis (fallbacks until it is back)",
            registry=r,
        )
        self._sampled: dict[tuple[str, str], int] = {}
        if not self.multiprocess:
            ProcessCollector(registry=r)
        if stages.requested():
            self._stage_seconds = Counter(
                "decision_stage_seconds", "time spent in each stage of Decide (DECISION_STAGE_TIMING=1)", ["stage"],
                registry=r,
            )  # fmt: skip
            self._stage_calls = Counter("decision_stage_calls", "stage timings recorded", ["stage"], registry=r)
            self._stage_children: dict[str, tuple[Any, Any]] = {}
            stages.attach(self.stage)
        self._version: str | None = None
        self._audiences: set[str] = set()
        # labels() takes a lock and hashes its arguments: cache the children on the request path.
        self._proposition_children: dict[tuple[str, str, str, str], Any] = {}
        self._fallback_children: dict[tuple[str, str], Any] = {}
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._redis_children: dict[str, Any] = {}
        self._event_children: dict[tuple[str, str], Any] = {}

    # -- requests ----------------------------------------------------------
    def stage(self, stage: str, seconds: float) -> None:
        children = self._stage_children.get(stage)
        if children is None:
            children = self._stage_children[stage] = (
                self._stage_seconds.labels(stage),
                self._stage_calls.labels(stage),
            )
        children[0].inc(seconds)
        children[1].inc()

    def rpc(self, method: str, code: str, seconds: float) -> None:
        children = self._rpc_children.get((method, code))
        if children is None:
            children = self.rpc_calls.labels(method, code), self.rpc_seconds.labels(method, code)
            self._rpc_children[(method, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def decision(self, decision: Decision) -> None:
        """Count a decision's propositions (the servicer tells every decision), a dry run's apart."""
        degraded = decision.degraded  # counted by reason where it is decided (degraded below)
        dry_run = "true" if decision.dry_run else "false"
        for proposition in decision.propositions:
            placement = proposition.placement_id
            if proposition.fallback:
                fallback = self._fallback_children.get((placement, dry_run))
                if fallback is None:
                    fallback = self._fallback_children[(placement, dry_run)] = self.fallbacks.labels(placement, dry_run)
                fallback.inc()
            for item in proposition.items:
                outcome = "degraded" if degraded else "fallback" if item.fallback else "selected"
                key = (placement, item.offer_id, outcome, dry_run)
                child = self._proposition_children.get(key)
                if child is None:
                    child = self._proposition_children[key] = self.propositions.labels(*key)
                child.inc()

    def degraded(self, reason: str) -> None:
        """A decision answered with fallbacks (decision.service.degraded.DegradedMetrics)."""
        child = self._degraded_children.get(reason)
        if child is None:
            child = self._degraded_children[reason] = self.degraded_answers.labels(reason)
        child.inc()

    def event_recorded(self, placement_id: str, counted: str) -> None:
        """A feedback event recorded (decision.service.events.EventMetrics)."""
        kind = "custom" if counted.startswith("custom:") else counted
        key = (placement_id, kind)
        child = self._event_children.get(key)
        if child is None:
            child = self._event_children[key] = self.events.labels(*key)
        child.inc()

    # -- the store's metrics (decision.store.profiles.StoreMetrics) ------------------------
    def redis_read(self, operation: str, seconds: float) -> None:
        child = self._redis_children.get(operation)
        if child is None:
            child = self._redis_children[operation] = self.redis_seconds.labels(operation)
        child.observe(seconds)

    def directory_refreshed(self, directory: AudienceDirectory) -> None:
        current = set()
        for audience_id, entry in directory.entries.items():
            if entry.synced_at is not None:
                self.audience_synced_at.labels(audience_id).set(float(entry.synced_at))
                current.add(audience_id)
        for gone in self._audiences - current:
            self._drop(self.audience_synced_at, gone)
        self._audiences = current

    # -- ruleset events (decision.service.rulesets.RulesetEvents) -----------------
    def ruleset_active(self, version: str) -> None:
        if self._version is not None and self._version != version:
            self._drop(self.ruleset_active_gauge, self._version)
        self.ruleset_active_gauge.labels(version).set(1)
        self.ruleset_loaded_at.set(time.time())
        self._version = version

    def ruleset_refused(self, source: str) -> None:
        self.reload_failures.labels(source).inc()

    # -- sampled from the server's own counters (api.operations, every second) -----------
    def security_sampled(
        self, refused: Mapping[str, int], breakers: Mapping[str, tuple[bool, int]], registry_lost: int
    ) -> None:
        """Refused calls by reason, ``breakers``: node -> (open, times opened), registry losses: running totals."""
        for reason, total in refused.items():
            self._advance(self.refused_calls.labels(reason), ("refused", reason), total)
        for shard, (is_open, opened) in breakers.items():
            node = shard or "single"
            self.breaker_open.labels(node).set(1 if is_open else 0)
            self._advance(self.breaker_opened.labels(node), ("opened", node), opened)
        self._advance(self.registry_lost, ("registry_lost", ""), registry_lost)

    def _advance(self, counter: Any, key: tuple[str, str], total: int) -> None:
        # Counters only go up: add what the running total gained since the last sample.
        gained = total - self._sampled.get(key, 0)
        if gained > 0:
            counter.inc(gained)
            self._sampled[key] = total

    def _drop(self, gauge: Gauge, label: str) -> None:
        # Multiprocess values live in files that removing a child does not clear: zero it instead.
        if self.multiprocess:
            gauge.labels(label).set(0)
        else:
            with contextlib.suppress(KeyError):
                gauge.remove(label)


class MetricsHttp:
    """The /metrics endpoint of one process (a daemon thread)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, host, registry)
        self.port = int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class MultiprocessExporter:
    """For ``--workers N``: the parent's /metrics, merging the files the workers write."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.directory = ""
        self._http: MetricsHttp | None = None
        self._previous_env: str | None = None

    def __enter__(self) -> MultiprocessExporter:
        self.directory = tempfile.mkdtemp(prefix="decision-metrics-")
        self._previous_env = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = self.directory  # inherited by the workers started after this
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]
        self._http = MetricsHttp(self.host, self.port, registry)
        self.port = self._http.port
        return self

    def worker_exited(self, pid: int) -> None:
        prometheus_multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._http is not None:
            self._http.stop()
        if self._previous_env is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = self._previous_env
        shutil.rmtree(self.directory, ignore_errors=True)
