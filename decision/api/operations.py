"""What a server runs besides decisions: published-ruleset following, metrics, tracing.

Kept out of decision/server.py so that the server only calls in: it asks for
the metrics and tracing of its methods, the ruleset to start with, and hands over its store and
active ruleset once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from decision.observe.metrics import Metrics, MetricsHttp
from decision.observe.tracing import decide_tracing
from decision.rules.engine import CompiledRuleset
from decision.service.active import ActiveRuleset
from decision.service.breaker import BreakerBoard
from decision.service.rulesets import RulesetFollower, load_active
from decision.settings import Settings
from decision.store.connect import connect
from decision.store.control import ControlStore
from decision.store.profiles import ProfileStore
from inbound_common.keys import KeySpace

log = logging.getLogger(__name__)

# A published ruleset may be megabytes: its reads get more time than a decision's.
CONTROL_TIMEOUT = 5.0


class ServerOps:
    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.metrics: Any = None  # decision.observe.metrics.Metrics, imported only when asked for
        self.metrics_port: int | None = None
        self._http: Any = None
        self.control: ControlStore | None = None
        self.follower: RulesetFollower | None = None
        self._watch: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._store: ProfileStore | None = None
        self._breakers: BreakerBoard | None = None
        self._refused: Mapping[str, int] | None = None
        # Method -> the wrapper of its handler that traces it (--otel; decision.api.guards applies them).
        self.traced: dict[str, Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]] = {}
        if settings.metrics_port is not None:
            self.metrics = Metrics()
        if settings.otel:
            tracing = decide_tracing()
            if tracing is not None:
                self.traced = tracing.wrappers()

    async def load_published(self) -> CompiledRuleset:
        """The active published ruleset (no --rules). Raises NoPublishedRuleset, RulesetInvalid, StoreError."""
        self.control = ControlStore(
            connect(self.redis_url, timeout=CONTROL_TIMEOUT, max_connections=4), KeySpace(self.settings.key_prefix)
        )
        try:
            return await load_active(self.control)
        except BaseException:
            await self.control.close()
            self.control = None
            raise

    def attach(
        self,
        store: ProfileStore,
        active: ActiveRuleset,
        breakers: BreakerBoard | None = None,
        refused: Mapping[str, int] | None = None,
    ) -> None:
        """The server is up: export its metrics, follow published rulesets.

        ``breakers`` and ``refused`` (authentication's refusal counts) are sampled with the event loop.
        """
        self._store, self._breakers, self._refused = store, breakers, refused
        if self.metrics is not None:
            store.metrics = self.metrics
            self.metrics.directory_refreshed(store.directory)
            self.metrics.ruleset_active(active.current.version)
            self._sampler = asyncio.create_task(self._sample_event_loop())
            if self.settings.workers <= 1:  # else the parent exports every worker's (multiprocess mode)
                port = self.settings.metrics_port or 0
                self._http = MetricsHttp(self.settings.host, port, self.metrics.registry)
                self.metrics_port = self._http.port
                log.info("metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)
        if self.control is not None:
            self.follower = RulesetFollower(self.control, active, self.metrics)
            self._watch = asyncio.create_task(self.follower.watch(self.settings.rules_poll_interval))

    async def _sample_event_loop(self) -> None:
        while True:
            self.metrics.loop_tasks.set(len(asyncio.all_tasks()))
            self.metrics.security_sampled(
                self._refused or {},
                {} if self._breakers is None else self._breakers.by_shard(),
                self._store.registry_lost_total if self._store is not None else 0,
            )
            await asyncio.sleep(1.0)

    def resync(self) -> None:
        """SIGHUP without a rules file: re-read the active published ruleset now."""
        if self.follower is not None:
            task = asyncio.get_running_loop().create_task(self.follower.sync())
            task.add_done_callback(_log_failure)

    def file_reloaded(self, version: str | None) -> None:
        """A SIGHUP file reload's outcome (None: refused)."""
        if self.metrics is None:
            return
        if version is None:
            self.metrics.ruleset_refused("file")
        else:
            self.metrics.ruleset_active(version)

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.control is not None:
            self.control.stop_watching()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._watch), self.settings.rules_poll_interval + 1.0)
        if self.control is not None:
            await self.control.close()
        if self._http is not None:
            self._http.stop()


def _log_failure(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("re-reading the published ruleset failed: %s", task.exception())
