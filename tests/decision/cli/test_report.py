"""``decision report``: from real decisions and events (gRPC, Redis) to the table, JSON and HTML."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from decision.cli.outcomes_text import format_report
from decision.core.allocation import current
from decision.core.outcomes import OutcomeRow
from decision.core.report import build, days_between
from decision.present.outcomes_html import render
from decision.rules.types import Experiment, HoldoutServes, Location, Variant
from decision.store.outcomes import scan_outcomes
from decision.v1 import decision_pb2
from inbound_common.keys import KeySpace
from tests.conftest import StartServer, decision_stub
from tests.decision.cli.test_main import decision_command
from tests.decision.delivery import PATIENT, Clock, decide, event, first, record, ruleset, with_clock

RULES = """
version: report-v1
placements:
  - id: banner
    channels: [web]
    max_items: 1
    fallback: fb
    experiment:
      id: banner-order
      variants: [{id: control, weight: 1}, {id: treatment, weight: 1, score: "offer.boost"}]
      holdout: {weight: 1, serves: fallback}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: first, placements: [banner], attributes: {boost: 0}}
  - {id: second, placements: [banner], attributes: {boost: 1}}
"""
# Who clicks: everybody shown "second", every other profile shown "first", nobody shown the fallback.
CLICKS = {"second": lambda n: True, "first": lambda n: n % 2 == 0, "fb": lambda n: False}


def row(offer: str, variant: str, counted: str, count: int, day: str = "2026-06-01") -> OutcomeRow:
    return OutcomeRow(day, offer, "v1", "banner", "exp" if variant else "", variant, counted, count)


EXPERIMENT = Experiment("exp", (Variant("a", 1), Variant("b", 1)), 0, HoldoutServes.FALLBACK, Location("t.yaml", 1))


def test_rates_lifts_and_a_sample_ratio_mismatch() -> None:
    rows = [
        row("x", "a", "decision", 10_000), row("x", "a", "impression", 10_000), row("x", "a", "click", 500),
        row("x", "b", "decision", 11_000), row("x", "b", "impression", 11_000), row("x", "b", "click", 660),
        row("x", "b", "dismiss", 110), row("x", "b", "click", 7, day="2026-06-09"),  # outside the range
    ]  # fmt: skip
    report = build(rows, days_between("2026-06-01", "2026-06-02"), experiments={"exp": EXPERIMENT})
    [line] = report.offers
    assert (line.proposals, line.impressions, line.clicks, line.dismisses) == (21_000, 21_000, 1_160, 110)
    assert line.ctr.interval is not None and line.ctr.interval[0] < 1160 / 21000 < line.ctr.interval[1]
    [experiment] = report.experiments
    control, treatment = experiment.variants
    assert control.against_control is None and treatment.against_control is not None
    assert abs(treatment.against_control.lift - 0.2) < 1e-9  # type: ignore[operator]
    assert treatment.against_control.p_value < 0.01
    assert experiment.mismatch  # 10,000 vs 11,000 for weights 1:1
    text = format_report(report)
    assert "SAMPLE RATIO MISMATCH" in text and "two-proportion z-test" in text and "+20.0%" in text


def scrape(port: int | None) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_dates_are_checked() -> None:
    assert days_between("2026-02-27", "2026-03-01") == ("2026-02-27", "2026-02-28", "2026-03-01")
    for begin, end, message in [("2026-13-01", "2026-13-01", "--from"), ("2026-01-02", "2026-01-01", "--to")]:
        try:
            days_between(begin, end)
        except ValueError as exc:
            assert str(exc).startswith(message)
        else:
            raise AssertionError("accepted")


async def test_report_of_real_decisions_and_events(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str, tmp_path: Path
) -> None:
    clock = Clock("2026-06-01T10:00:00+00:00")
    rules = write_rules(RULES)
    server = with_clock(await start_server(rules, metrics_port=0, **PATIENT), clock)
    shown: dict[tuple[str, str], list[int]] = {}
    async with decision_stub(server.port) as stub:
        for n in range(90):
            profile = f"u{n}"
            item = (await decide(stub, profile)).propositions[0].items[0]
            counts = shown.setdefault((item.variant, item.offer_id), [0, 0])
            counts[0] += 1
            batch = [event(item, f"i{n}", at=clock(), profile=profile)]
            if CLICKS[item.offer_id](n):
                counts[1] += 1
                batch.append(event(item, f"c{n}", decision_pb2.EVENT_TYPE_CLICK, at=clock(), profile=profile))
            await record(stub, *batch)
    await server.service.proposals.flush()
    assert {v for v, _ in shown} == {"control", "treatment", "holdout"}
    html = tmp_path / "report.html"
    command = decision_command(
        "report", "--from", "2026-06-01", "--redis-url", redis_url, "--rules", str(rules), "--json", "--html", str(html)
    )
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    by_offer = {o["offer"]: o for o in report["offers"]}
    for offer in ("first", "second", "fb"):
        expected = [sum(c[i] for (_, o), c in shown.items() if o == offer) for i in (0, 1)]
        assert [by_offer[offer]["proposals"], by_offer[offer]["clicks"]] == expected
        assert by_offer[offer]["impressions"] == expected[0]
    [experiment] = report["experiments"]
    assert [v["variant"] for v in experiment["variants"]] == ["control", "treatment", "holdout"]
    for variant in experiment["variants"]:
        mine = [c for (v, _), c in shown.items() if v == variant["variant"]]
        assert [variant["exposures"], variant["conversions"]] == [sum(c[0] for c in mine), sum(c[1] for c in mine)]
    assert experiment["sample_ratio"]["groups"] == ["control", "treatment", "holdout"]
    page = html.read_text()
    assert page.count("<svg") == 2 and "banner-order" in page and "Wilson" in page
    # Prometheus: events by placement and type.
    text = await asyncio.to_thread(scrape, server.metrics_port)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.labels["placement"], s.labels["type"]): s.value
               for s in families["decision_events_recorded"].samples if s.name.endswith("_total")}  # fmt: skip
    assert samples == {("banner", "impression"): 90, ("banner", "click"): sum(c[1] for c in shown.values())}


async def test_weights_come_from_the_published_rulesets(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str
) -> None:
    rules = write_rules(RULES)
    publish = await asyncio.to_thread(
        subprocess.run, decision_command("rules", "publish", str(rules), "--redis-url", redis_url),
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert publish.returncode == 0, publish.stderr
    clock = Clock("2026-06-01T10:00:00+00:00")
    server = with_clock(await start_server(None, **PATIENT), clock)  # serves the published ruleset
    async with decision_stub(server.port) as stub:
        for n in range(30):
            await decide(stub, f"u{n}")
    await server.service.proposals.flush()
    command = decision_command(
        "report", "--from", "2026-06-01", "--redis-url", redis_url, "--ruleset-version", "report-v1"
    )
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sample ratio (control, treatment, holdout against their weights)" in done.stdout
    assert "outcomes 2026-06-01, ruleset report-v1" in done.stdout
    missing = await asyncio.to_thread(
        subprocess.run, decision_command("report", "--from", "2026-06-31", "--redis-url", redis_url),
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and "--from: '2026-06-31' is not a date" in missing.stderr


async def report_json(redis_url: str, day: str) -> dict[str, Any]:
    """``decision report --json`` of one day: offer -> its line."""
    command = decision_command("report", "--from", day, "--redis-url", redis_url, "--json")
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return {line["offer"]: line for line in json.loads(done.stdout)["offers"]}


async def test_replayed_clicks_never_outnumber_impressions(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str
) -> None:
    # Found from the outside: five clicks with one token were all recorded, and the report showed 5 clicks on
    # 3 impressions (CTR 100 %).
    clock = Clock("2026-06-01T10:00:00+00:00")
    server = with_clock(
        await start_server(write_rules(ruleset("  - {id: promo, placements: [banner]}\n")), **PATIENT), clock
    )
    click = decision_pb2.EVENT_TYPE_CLICK
    async with decision_stub(server.port) as stub:
        shown = [first(await decide(stub)) for _ in range(3)]
        await record(stub, *(event(item, f"i{n}", at=clock()) for n, item in enumerate(shown)))
        await record(stub, *(event(shown[0], f"c{n}", click, at=clock()) for n in range(5)))
        clicked_unseen = first(await decide(stub))  # a click whose impression was never sent implies it
        await record(stub, event(clicked_unseen, "c-unseen", click, at=clock()))
    line = (await report_json(redis_url, "2026-06-01"))["promo"]
    assert (line["impressions"], line["clicks"]) == (4, 2)
    assert line["ctr"]["rate"] == 0.5


REPLAY_RULES = ruleset(
    """
  - {id: a, placements: [side], priority: 3}
  - {id: b, placements: [side], priority: 2}
  - {id: c, placements: [side], priority: 1}
"""
)
KINDS = {"impression": decision_pb2.EVENT_TYPE_IMPRESSION, "click": decision_pb2.EVENT_TYPE_CLICK,
         "dismiss": decision_pb2.EVENT_TYPE_DISMISS}  # fmt: skip
# One day per example: its report holds that example's events only.
DAYS = itertools.count()
replays = st.lists(
    st.tuples(
        st.integers(0, 8),  # the token: item (0-2) of decision (0-2)
        st.sampled_from(sorted(KINDS)),
        st.one_of(st.none(), st.integers(0, 20)),  # a fresh event id, or an id that may have been used
        st.integers(0, 2),  # the profile the event names: its token's (the decision's), or another's
        st.integers(0, 2),  # the batch it is sent in
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(decided_for=st.lists(st.integers(0, 2), min_size=3, max_size=3), events=replays)
async def test_any_replays_count_each_token_once_and_clicks_never_outnumber_impressions(
    start_server: StartServer,
    write_rules: Callable[[str], Path],
    redis_client: aioredis.Redis,
    decided_for: list[int],
    events: list[tuple[int, str, int | None, int, int]],
) -> None:
    # Whatever is sent (replayed tokens, repeated and fresh event ids, tokens of other profiles, in any batches):
    # each token counts each type at most once, for the profile it was made for, and the report of the day never
    # shows more clicks or dismissals than impressions for an offer.
    day = datetime(2026, 6, 1, 10, tzinfo=UTC) + timedelta(days=next(DAYS))
    clock = Clock(day.timestamp())
    server = with_clock(await start_server(write_rules(REPLAY_RULES), **PATIENT), clock)
    profiles = [f"{day:%Y%m%d}-p{n}" for n in range(3)]
    async with decision_stub(server.port) as stub:
        items = []  # (profile, item): 3 per decision
        for p in decided_for:
            items += [(profiles[p], item) for item in (await decide(stub, profiles[p], ["side"])).propositions[0].items]
        batches: list[list[tuple[int, str, decision_pb2.Event]]] = [[], [], []]
        for n, (token, kind, reused, profile, call) in enumerate(events):
            name = f"fresh-{n}" if reused is None else f"e{reused}"
            batches[call].append(
                (token, kind, event(items[token][1], name, KINDS[kind], at=clock(), profile=profiles[profile]))
            )
        recorded: Counter[tuple[int, str]] = Counter()
        for batch in filter(None, batches):
            results = await record(stub, *(e for _, _, e in batch))
            for at, ((token, kind, sent), (outcome, reason)) in enumerate(zip(batch, results, strict=True)):
                if sent.profile_id != items[token][0]:  # a token of another profile
                    assert (outcome, reason.split(":")[0]) == ("rejected", f"events[{at}].tracking_token")
                elif outcome == "recorded":
                    recorded[(token, kind)] += 1
    await server.stop(grace=0.1)  # one server per example (each its own day)
    assert set(recorded.values()) <= {1}
    day_text = f"{day:%Y-%m-%d}"
    report = build(await scan_outcomes(redis_client, KeySpace(), {day_text}), (day_text,))
    tokens = Counter(item.offer_id for _, item in items)
    for line in report.offers:
        assert line.clicks <= line.impressions and line.dismisses <= line.impressions
        assert max(line.impressions, line.clicks, line.dismisses) <= tokens[line.offer_id]


LEARNED = """
version: learned-v1
placements:
  - id: banner
    channels: [web]
    max_items: 1
    fallback: fb
    ranking: {strategy: thompson, metric: click, per: impression, min_exposure: 5}
offers:
  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}
  - {id: good, placements: [banner]}
  - {id: poor, placements: [banner]}
"""


async def test_the_allocation_is_the_servers_own_draws_and_the_stop_verdict_is_stated(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str
) -> None:
    """The report's allocation is what decision.core.allocation makes of the counts the server itself learns
    from (its LearnedRates after a refresh), read back from Redis by the command."""
    clock = Clock(time.time())  # the command reads "the last days" from the wall clock, as the servers do
    rules = write_rules(LEARNED)
    server = with_clock(await start_server(rules, learning_refresh_interval=3600.0, **PATIENT), clock)
    async with decision_stub(server.port) as stub:
        for n in range(40):
            profile = f"l{n}"
            item = (await decide(stub, profile)).propositions[0].items[0]
            batch = [event(item, f"i-{profile}", at=clock(), profile=profile)]
            if item.offer_id == "good" and n % 2 == 0:
                batch.append(event(item, f"c-{profile}", decision_pb2.EVENT_TYPE_CLICK, at=clock(), profile=profile))
            await record(stub, *batch)
    await server.service.proposals.flush()
    ruleset = server.service.active.current.ruleset
    await server.service.learning.refresh(ruleset)
    expected = current(ruleset, server.service.learning.learner.rates)
    today = datetime.fromtimestamp(clock(), UTC).date().isoformat()
    command = decision_command("report", "--from", today, "--redis-url", redis_url, "--rules", str(rules))
    done = await asyncio.to_thread(subprocess.run, [*command, "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [allocation] = json.loads(done.stdout)["allocations"]
    assert allocation == expected[0].to_json()
    assert {arm["arm"] for arm in allocation["arms"]} == {"good", "poor"}
    assert sum(arm["trials"] for arm in allocation["arms"]) == 40
    text = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert "Thompson allocation now (Monte Carlo of the server's Thompson draws" in text.stdout


def test_the_text_names_the_method_and_answers_can_we_stop() -> None:
    rows = [
        row("x", "a", "decision", 10_000), row("x", "a", "click", 1_047),
        row("x", "b", "decision", 10_000), row("x", "b", "click", 1_184),
    ]  # fmt: skip
    report = build(rows, ("2026-06-01",), experiments={"exp": EXPERIMENT})
    text = format_report(report)
    assert "+13.1% [-1.1%, +27.2%]" in text  # the always-valid lift beside the fixed-horizon one
    assert "can we stop? not yet (b: undecided: its lift +13.1% [-1.1%, +27.2%] straddles 0 or ±5%)" in text
    assert "always-valid: always-valid 95 % confidence sequence (asymptotic, normal mixture; Waudby-Smith" in text
    assert "stop rule: stop when, for every variant against the control, the always-valid interval" in text
    as_json = report.to_json()
    assert as_json["experiments"][0]["stop"] == "continue" and "Waudby-Smith" in as_json["sequential"]
    assert as_json["experiments"][0]["variants"][1]["sequential"]["lift"]["interval"][0] < 0
    page = render(report)
    assert "can we stop? not yet" in page and "always-valid lift" in page
