"""Observability: the /metrics endpoint scraped during a test, JSON logs, OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from decision.observe.logs import JsonFormatter
from decision.service import stages
from decision.service.stages import ORDER
from decision.store import fastpath
from inbound_common.codecs import AudienceEntry
from tests.conftest import StartServer, decision_stub
from tests.decision.helpers import add_membership, decide_request
from tests.waiting import eventually

RULES = """
version: {version}
placements:
  - {{id: banner, channels: [web], max_items: 1, fallback: fb}}
  - {{id: side, channels: [web], max_items: 2, fallback: fb_side}}
offers:
  - {{id: fb, placements: [banner], eligibility: {{audiences: {{all: [nobody]}}}}}}
  - {{id: fb_side, placements: [side], eligibility: {{audiences: {{all: [nobody]}}}}}}
  - {{id: vip, placements: [banner, side], priority: 5, eligibility: {{audiences: {{all: [vip]}}}}}}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> Samples:
    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    text = await asyncio.to_thread(fetch)
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


DECIDE = "/decision.v1.DecisionService/Decide"


async def test_metrics_endpoint_counts_calls_decisions_redis_rulesets_and_syncs(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    rules = write_rules(RULES.format(version="m1"))
    server = await start_server(rules, metrics_port=0)
    assert server.metrics_port
    await add_membership(server, "p-vip", "vip")
    async with decision_stub(server.port) as stub:
        for _ in range(3):
            await stub.Decide(decide_request("p-vip", placements=("banner", "side")), timeout=5)
        await stub.Decide(decide_request("p-nobody", placements=("banner",)), timeout=5)
        for _ in range(2):  # dry runs: labelled apart, never in the real decisions' figures
            await stub.Decide(decide_request("p-vip", placements=("banner", "side"), dry_run=True), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Decide(decide_request("p-vip", placements=("nope",)), timeout=5)
    starved = await start_server(rules, metrics_port=0, redis_timeout=0.0)  # no time for Redis: degraded
    async with decision_stub(starved.port) as stub:
        assert (await stub.Decide(decide_request("p-vip"), timeout=5)).degraded

    samples = await scrape(server.metrics_port)
    assert value(samples, "decision_rpc_calls_total", method=DECIDE, code="OK") == 6  # calls: dry runs too
    assert value(samples, "decision_rpc_calls_total", method=DECIDE, code="INVALID_ARGUMENT") == 1
    assert value(samples, "decision_rpc_duration_seconds_count", method=DECIDE, code="OK") == 6
    assert value(samples, "decision_rpc_duration_seconds_bucket", method=DECIDE, code="OK", le="+Inf") == 6
    real, dry = {"dry_run": "false"}, {"dry_run": "true"}
    assert (
        value(samples, "decision_propositions_total", placement="banner", offer="vip", outcome="selected", **real) == 3
    )
    assert (
        value(samples, "decision_propositions_total", placement="banner", offer="vip", outcome="selected", **dry) == 2
    )
    # No duplicates across placements: vip took the banner, the side placement falls back.
    side_fallback = {"placement": "side", "offer": "fb_side", "outcome": "fallback"}
    assert value(samples, "decision_propositions_total", **side_fallback, **real) == 3
    assert value(samples, "decision_propositions_total", **side_fallback, **dry) == 2
    assert (
        value(samples, "decision_propositions_total", placement="banner", offer="fb", outcome="fallback", **real) == 1
    )
    assert (
        value(samples, "decision_propositions_total", placement="banner", offer="fb", outcome="fallback", **dry) is None
    )
    assert value(samples, "decision_fallbacks_total", placement="banner", **real) == 1
    assert value(samples, "decision_fallbacks_total", placement="side", **real) == 3
    assert value(samples, "decision_fallbacks_total", placement="side", **dry) == 2
    assert value(samples, "decision_degraded_total", reason="no_time") == 0  # every reason exported from the start
    reads = value(samples, "decision_redis_duration_seconds_count", operation="membership")
    assert reads is not None and reads >= 4
    assert value(samples, "decision_ruleset_active", version="m1") == 1
    raw = await server.store.client.hget(server.store.keys.audiences, "vip")
    synced_at = AudienceEntry.decode("vip", raw).synced_at
    assert value(samples, "decision_audience_last_sync_timestamp_seconds", audience="vip") == synced_at

    starved_samples = await scrape(starved.metrics_port or 0)
    assert value(starved_samples, "decision_degraded_total", reason="no_time") == 1  # no time given for Redis
    assert (
        value(
            starved_samples,
            "decision_propositions_total",
            placement="banner",
            offer="fb",
            outcome="degraded",
            dry_run="false",
        )
        == 1
    )

    # A refused reload is counted; a good one moves the version gauge.
    rules.write_text("offers: [")
    assert not server.reload()
    rules.write_text(RULES.format(version="m2"))
    assert server.reload()
    samples = await scrape(server.metrics_port)
    assert value(samples, "decision_ruleset_reload_failures_total", source="file") == 1
    assert value(samples, "decision_ruleset_active", version="m2") == 1
    assert value(samples, "decision_ruleset_active", version="m1") is None


async def test_stage_timing_exports_each_stage_of_decide_when_asked(
    start_server: StartServer, write_rules: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(stages.ENV, "1")
    rules = write_rules(RULES.format(version="s1"))
    server = await start_server(rules, metrics_port=0)
    assert server.metrics_port
    try:
        await add_membership(server, "p-vip", "vip")
        async with decision_stub(server.port) as stub:
            for _ in range(3):
                await stub.Decide(decide_request("p-vip", placements=("banner", "side")), timeout=5)
        samples = await scrape(server.metrics_port)
    finally:
        stages.attach(None)  # the sink is per process: later servers of this test process start without it
    # Every stage a call without caps goes through (all of ORDER but the reservations), each call's own.
    for stage in ORDER:
        if stage == "reservations":
            assert value(samples, "decision_stage_calls_total", stage=stage) is None
            continue
        assert (value(samples, "decision_stage_calls_total", stage=stage) or 0) >= 3, stage
        assert (value(samples, "decision_stage_seconds_total", stage=stage) or 0) > 0, stage
    # The read is put aside while the call waits for Redis, and taken up again when the reply has come.
    assert value(samples, "decision_stage_calls_total", stage="redis_read") == 6
    assert fastpath.waiting is None  # detached: the hooks do nothing


async def test_stage_timing_is_off_by_default(
    start_server: StartServer, write_rules: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(stages.ENV, raising=False)
    server = await start_server(write_rules(RULES.format(version="s2")), metrics_port=0)
    assert server.metrics_port
    async with decision_stub(server.port) as stub:
        await stub.Decide(decide_request("p-vip", placements=("banner",)), timeout=5)
    samples = await scrape(server.metrics_port)
    assert not any(name.startswith("decision_stage_") for name, _ in samples)


async def test_without_metrics_or_otel_nothing_is_intercepted(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    server = await start_server(write_rules(RULES.format(version="n1")))
    assert server.ops is not None and server.ops.traced == {} and server.metrics_port is None
    assert server.store.metrics is None


async def test_otel_spans_for_decide_join_the_callers_trace(
    start_server: StartServer, write_rules: Callable[[str], Path]
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = await start_server(write_rules(RULES.format(version="t1")), otel=True)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),)
    async with decision_stub(server.port) as stub:
        await stub.Decide(decide_request("p1", placements=("banner", "side")), timeout=5, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Decide(decide_request("p1", placements=("nope",)), timeout=5)

    def decide_spans() -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == "decision.v1.DecisionService/Decide"]

    # A refused call's span ends just after its status is sent: the client may see the status first.
    await eventually(lambda: len(decide_spans()) == 2, "two Decide spans ended")
    spans = decide_spans()
    ok, invalid = spans
    assert f"{ok.context.trace_id:032x}" == trace_id
    assert ok.attributes is not None and invalid.attributes is not None
    assert ok.attributes["decision.ruleset_version"] == "t1"
    assert ok.attributes["decision.fallbacks"] == 2
    assert tuple(ok.attributes["decision.placements"]) == ("banner", "side")
    assert ok.attributes["rpc.grpc.status_code"] == 0
    assert invalid.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_json_log_lines_carry_extra_fields_and_exceptions() -> None:
    formatter = JsonFormatter()
    record = logging.makeLogRecord(
        {"name": "decision.x", "levelname": "ERROR", "msg": "refused %s", "args": ("v2",), "ruleset_version": "v2"}
    )
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line: dict[str, Any] = orjson.loads(formatter.format(record))
    assert line["msg"] == "refused v2" and line["level"] == "error" and line["logger"] == "decision.x"
    assert line["ruleset_version"] == "v2"
    assert "ValueError: boom" in line["exc"]
    assert line["ts"].endswith("+00:00")
