"""The console's reading of the replicas' ``/metrics``: a replica answering what is not Prometheus's exposition is
that replica's error on the Live page; the console starts, the other replicas are read, and the scrapes go on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import generate_latest

from decision.console.backend import Backend, ConsoleConfig
from decision.observe.metrics import DECIDE_METHOD, Metrics
from tests.waiting import eventually

MALFORMED = f'decision_rpc_duration_seconds_bucket{{method="{DECIDE_METHOD}",le="fast"}} 3\n'


def exposition(decisions: int) -> str:
    metrics = Metrics()
    for _ in range(decisions):
        metrics.rpc(DECIDE_METHOD, "OK", 0.001)
    metrics.ruleset_active("v7")
    return generate_latest(metrics.registry).decode()


class Replica:
    """A /metrics on loopback whose text the test changes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(text=self.text, content_type="text/plain")


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[Replica, Replica]]:
    made = (Replica(MALFORMED), Replica(exposition(3)))
    app = web.Application()
    for n, replica in enumerate(made):
        app.router.add_get(f"/{n}/metrics", replica.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    for n, replica in enumerate(made):
        replica.url = f"http://127.0.0.1:{port}/{n}/metrics"
    yield made
    await runner.cleanup()


async def test_a_malformed_exposition_is_its_replicas_error_and_the_scrapes_go_on(
    replicas: tuple[Replica, Replica], redis_url: str
) -> None:
    bad, good = replicas
    backend = Backend(ConsoleConfig(redis_url, metrics_urls=(bad.url, good.url), scrape_interval=0.05))
    await backend.start()  # scrapes every replica once before serving: a malformed one must not stop it
    try:
        scrapes = {s.url: s for s in backend.readings()}
        assert scrapes[bad.url].latest is None and "'le' label is not a number: 'fast'" in scrapes[bad.url].error
        first = scrapes[good.url].latest
        assert scrapes[good.url].error == "" and first is not None and first.decisions == 3
        bad.text = exposition(5)  # the replica answers well again: a later scrape reads it
        await eventually(lambda: scrapes[bad.url].latest is not None, "the scrapes going on after the failure")
        latest = scrapes[bad.url].latest
        assert latest is not None and latest.decisions == 5 and scrapes[bad.url].error == ""
    finally:
        await backend.stop()
