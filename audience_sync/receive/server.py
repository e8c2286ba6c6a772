"""Running the receiver: Redis, the writer, the HTTP(S) listener, and a graceful stop.

On SIGTERM/SIGINT the listener closes (no new connection), requests whose body is still arriving are cut
at once (nothing of them was written), the others are answered — their changes written — within
``shutdown_timeout``, then the writer and Redis are closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from audience_sync.deltas import DeltaApplier
from audience_sync.receive.app import BODY_READS, AppOptions, Metrics, build_app
from audience_sync.receive.auth import Access, Authenticator
from audience_sync.receive.writer import BatchWriter
from audience_sync.store import SyncStore, connect
from inbound_common.keys import KeySpace

log = logging.getLogger("audience_sync.receive")


class _OneLineForBadRequests(logging.Filter):
    """aiohttp logs each malformed request it answers 400 (a header over its 8190-byte limit...) with a
    traceback: one line instead, naming the error but not the request's content (it may hold credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, HttpProcessingError):
            what = type(failure).__name__
            if isinstance(failure, LineTooLong) and len(failure.args) > 1:
                what += f": a header or the request line over {failure.args[1]} bytes"
            record.args = (record.getMessage(), failure.code, what)
            record.msg = "%s: answered %s (%s; the request is not logged)"
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# aiohttp's server log (handed to the runner), with malformed requests on one line.
http_log = logging.getLogger("audience_sync.receive.http")
http_log.addFilter(_OneLineForBadRequests())


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    redis_url: str
    access: Access
    app: AppOptions = field(default_factory=AppOptions)
    key_prefix: str = "ib"
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port (tests, the benchmark)
    tls_cert: str | None = None
    tls_key: str | None = None
    max_batch: int = 5000  # changes applied together (from concurrent requests)
    shutdown_timeout: float = 30.0
    source: str = "receive"


def ssl_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class RunningReceiver:
    def __init__(self, runner: web.AppRunner, writer: BatchWriter, store: SyncStore, port: int, scheme: str) -> None:
        self.runner = runner
        self.writer = writer
        self.store = store
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening, cut the half-received pushes, answer the others, then close the writer and Redis."""
        for site in list(self.runner.sites):
            await site.stop()
        app = self.runner.app
        cut = app[BODY_READS].cut()
        if cut:
            log.info("stopping: cut %d requests whose body was still arriving (nothing of them written)", cut)
        await self.runner.cleanup()
        await self.writer.close()
        self.store.close()


async def start_receiver(config: ReceiverConfig) -> RunningReceiver:
    context = ssl_context(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    store = SyncStore(connect(config.redis_url, timeout=config.app.redis_timeout), KeySpace(config.key_prefix))
    writer = BatchWriter(DeltaApplier(store, source=config.source), max_changes=config.max_batch)
    writer.start()
    app = build_app(store, writer, Authenticator(config.access), config.app, Metrics())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.shutdown_timeout, logger=http_log)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, ssl_context=context)
    await site.start()
    port = int(runner.addresses[0][1])  # the port bound (port 0: a free one)
    return RunningReceiver(runner, writer, store, port, "https" if context else "http")


async def serve(config: ReceiverConfig, announce: bool = True) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    running = await start_receiver(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if announce:
        scheme = running.url.split(":", 1)[0]
        print(f"audience-sync receive: listening on {scheme}://{config.host}:{running.port}", flush=True)
    try:
        await stop.wait()
    finally:
        await running.stop()
