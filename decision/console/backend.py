"""What the console reads, and from where: Redis (the same store and service code as the commands), the decision
service (a Decide with explanations, as ``decision explain``), and the replicas' ``/metrics``.

The console never writes to Redis. "Decide as this profile" is a real Decide of the running service: it is
counted like any other (proposals, and the caps and contact policies that count decisions), as ``decision
explain`` is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc

from decision.console.errors import PageError
from decision.observe.readings import Reading, UnreadableMetrics, read_exposition
from decision.rules.engine import CompiledRuleset, compile_and_load
from decision.rules.types import Ruleset
from decision.service.rulesets import NoPublishedRuleset, active_entry, parse_published
from decision.store.connect import connect
from decision.store.control import ControlStore
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.codecs import PublishedRuleset
from inbound_common.keys import KeySpace

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecideTarget:
    """The decision service "decide as this profile" asks (``--target`` and the client options of ``decide``)."""

    target: str
    credentials: grpc.ChannelCredentials | None = None  # None: plaintext
    auth_token: str | None = None
    deadline: float = 2.0  # seconds


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    redis_url: str
    key_prefix: str = "ib"
    decide: DecideTarget | None = None
    metrics_urls: tuple[str, ...] = ()
    scrape_interval: float = 5.0  # seconds between two scrapes of each /metrics
    sample_size: int = 500  # profiles compared by default
    redis_timeout: float = 5.0


@dataclass
class Scrapes:
    """The last two readings of one replica's /metrics, and why the last scrape failed (if it did)."""

    url: str
    latest: Reading | None = None
    before: Reading | None = None
    error: str = ""
    at: float = 0.0  # when it was last scraped


class Backend:
    """The console's connections, opened in the event loop that serves it (``start``) and closed by ``stop``."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.keys = KeySpace(config.key_prefix)
        self.control = ControlStore(
            connect(config.redis_url, timeout=config.redis_timeout, max_connections=8), self.keys
        )
        self.scrapes = {url: Scrapes(url) for url in config.metrics_urls}
        self._channel: Any = None
        self._stub: Any = None
        self._http: aiohttp.ClientSession | None = None
        self._scraper: asyncio.Task[None] | None = None
        self._parsed: dict[tuple[str, str], Ruleset] = {}  # (version, sha256) -> parsed
        self._compiled: dict[tuple[str, str], CompiledRuleset] = {}
        self._compiling = asyncio.Lock()

    async def start(self) -> None:
        decide = self.config.decide
        if decide is not None:
            if decide.credentials is None:
                self._channel = grpc.aio.insecure_channel(decide.target)
            else:
                self._channel = grpc.aio.secure_channel(decide.target, decide.credentials)
            self._stub = decision_pb2_grpc.DecisionServiceStub(self._channel)
        if self.scrapes:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=max(1.0, self.config.scrape_interval))
            )
            await self.scrape_all()
            self._scraper = asyncio.create_task(self._scrape_forever())

    async def stop(self) -> None:
        if self._scraper is not None:
            self._scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scraper
        if self._http is not None:
            await self._http.close()
        if self._channel is not None:
            await self._channel.close()
        await self.control.close()

    # -- rulesets --------------------------------------------------------------------------------
    async def active(self) -> PublishedRuleset | None:
        """The active published ruleset as stored; None when nothing is published."""
        try:
            return await active_entry(self.control)
        except NoPublishedRuleset:
            return None

    def parsed(self, entry: PublishedRuleset) -> Ruleset:
        """A published version, parsed and checked (cached: a version name stands for one content)."""
        key = (entry.version, entry.sha256)
        ruleset = self._parsed.get(key)
        if ruleset is None:
            ruleset = self._parsed[key] = parse_published(entry)
        return ruleset

    async def active_ruleset(self) -> Ruleset | None:
        entry = await self.active()
        return None if entry is None else self.parsed(entry)

    async def compiled(self, entry: PublishedRuleset) -> CompiledRuleset:
        """A published version, compiled off the event loop (cached: the latest only)."""
        key = (entry.version, entry.sha256)
        async with self._compiling:
            compiled = self._compiled.get(key)
            if compiled is None:
                ruleset = self.parsed(entry)
                compiled = await asyncio.to_thread(compile_and_load, ruleset)
                self._compiled = {key: compiled}
            return compiled

    async def version(self, name: str) -> PublishedRuleset:
        entry = await self.control.version(name)
        if entry is None:
            raise PageError(404, "Unknown version", f"no ruleset {name!r} was published to this Redis")
        return entry

    # -- the decision service ---------------------------------------------------------------------
    @property
    def can_decide(self) -> bool:
        return self._stub is not None

    async def decide(self, request: decision_pb2.DecideRequest) -> decision_pb2.DecideResponse:
        """A Decide of the running service; its failures as pages (the service's own words)."""
        decide = self.config.decide
        if self._stub is None or decide is None:
            raise PageError(503, "No decision service", "the console was started without --target")
        metadata = (("authorization", f"Bearer {decide.auth_token}"),) if decide.auth_token else None
        try:
            response: decision_pb2.DecideResponse = await self._stub.Decide(
                request, timeout=decide.deadline, metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise _rpc_page(exc, decide.target) from None
        return response

    # -- the replicas' metrics -----------------------------------------------------------------
    async def scrape_all(self) -> None:
        await asyncio.gather(*(self._scrape(s) for s in self.scrapes.values()))

    async def _scrape_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.scrape_interval)
            await self.scrape_all()

    async def _scrape(self, scrapes: Scrapes) -> None:
        assert self._http is not None
        try:
            async with self._http.get(scrapes.url) as response:
                if response.status != 200:
                    raise UnreadableMetrics(f"HTTP {response.status}")
                text = await response.text()
            reading = read_exposition(text, time.time())
        except (aiohttp.ClientError, TimeoutError, UnreadableMetrics, UnicodeDecodeError) as exc:
            scrapes.error = str(exc) or type(exc).__name__
            scrapes.at = time.time()
            return
        scrapes.before, scrapes.latest, scrapes.error, scrapes.at = scrapes.latest, reading, "", reading.at

    def readings(self) -> Sequence[Scrapes]:
        return list(self.scrapes.values())


def _rpc_page(exc: grpc.aio.AioRpcError, target: str) -> PageError:
    code = exc.code()
    details = exc.details() or code.name
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return PageError(502, "Decision service unavailable", f"the decision service at {target} did not answer "
                         f"({code.name}: {details})")  # fmt: skip
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return PageError(400, "Request refused", f"the decision service refused the request: {details}")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return PageError(502, "Decision service refused the console", f"the decision service at {target} refused "
                         f"the console's token (--auth-token, scope decide): {details}")  # fmt: skip
    return PageError(
        502, "Decision service failed", f"the decision service at {target} answered {code.name}: {details}"
    )
