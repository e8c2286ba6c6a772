"""The console's tests' world: the retail example published to a real Redis, its audiences loaded with
audience_sync's writer, a real decision server serving it, decisions and events recorded (outcome counters), and
profiles built for the tests: one that misses the VIP banner by one condition, one whose attributes hold scripts."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decision.api.server import RunningServer
from decision.core.experiments import assign
from decision.rules.loader import load_file
from decision.service.rulesets import publish
from decision.store.connect import connect
from decision.store.control import ControlStore
from decision.v1 import decision_pb2
from inbound_common.keys import KeySpace
from inbound_common.secret_files import BearerToken
from tests.conftest import StartServer, decision_stub
from tests.decision.delivery import event, record
from tests.decision.helpers import add_attributes, add_memberships, decide_request
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[3]
RETAIL = ROOT / "examples" / "retail"
RULES = RETAIL / "rules.yaml"
CONSOLE_TOKEN = "console-token-0123456789"
DECIDE_TOKEN = "decide-only-token-0123456789"
TOKENS = (BearerToken(CONSOLE_TOKEN, frozenset({"console"})), BearerToken(DECIDE_TOKEN, frozenset({"decide"})))


def _not_held_out(prefix: str) -> str:
    """A profile id that the VIP banner's experiment does not hold out (the holdout closes every other way)."""
    experiment = load_file(RULES).offers["vip_early_access"].experiment
    assert experiment is not None
    return next(f"{prefix}{n}" for n in range(100) if assign(experiment, f"{prefix}{n}") is not None)


# A VIP who unsubscribed from email: vip_early_access misses by one condition (the excluded audience).
ONE_MISS = _not_held_out("p-one-miss-")
# Attributes holding script: shown as text, never run.
SCRIPTED = "p-scripted"
SCRIPT_ATTRIBUTES = {
    "nickname": ("string", "<script>window.__pwned = 1</script>"),
    "bio": ("string", '<img src=x onerror="window.__pwned = 2">'),
}
SCRIPT_ID = 'p-"><script>window.__pwned=3</script>'
VIPS = 120  # synthetic VIP profiles: the experiment of vip_early_access gets exposures in each group
V1, V2 = "retail-2026.11", "retail-2026.12"
CART = {"cart_value": 120, "cart_categories": ["sneakers"], "page_path": "/cart"}


def second_version() -> str:
    """The example's next version: another headline, and the cart upsell ranked by Thompson draws."""
    text = RULES.read_text(encoding="utf-8").replace(f"version: {V1}", f"version: {V2}")
    text = text.replace("New season, new arrivals", "Winter is here")
    placement = "    fallback: free_returns\n"
    assert placement in text
    return text.replace(placement, placement + "    ranking: {strategy: thompson, min_exposure: 5}\n")


def candidate() -> str:
    """A change to try on the Changes page: the VIP banner for loyalty-gold members only."""
    text = second_version().replace(f"version: {V2}", "version: retail-2027.01")
    vip = "audiences: {any: [vip-customers, loyalty-gold], none: [email-unsubscribed]}"
    assert vip in text
    return text.replace(vip, "audiences: {any: [loyalty-gold], none: [email-unsubscribed]}")


@dataclass
class World:
    redis_url: str
    server: RunningServer
    shown: dict[str, int]  # offer -> impressions recorded
    clicked: dict[str, int]  # offer -> clicks recorded

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"


async def publish_text(redis_url: str, text: str, source: str, author: str) -> None:
    store = ControlStore(connect(redis_url, timeout=5.0, max_connections=2), KeySpace())
    try:
        await publish(store, text.encode(), source, author=author)
    finally:
        await store.close()


async def retail_world(start_server: StartServer, redis_url: str) -> World:
    with (RETAIL / "audiences.csv").open(newline="") as handle:
        rows = [(row["profile_id"], row["audience_id"]) for row in csv.DictReader(handle)]
    rows += [(ONE_MISS, "vip-customers"), (ONE_MISS, "email-unsubscribed"), (SCRIPTED, "loyalty-gold")]
    rows += [(SCRIPT_ID, "loyalty-gold")]
    rows += [(f"v-{n:03d}", "vip-customers") for n in range(VIPS)]
    await add_memberships(redis_url, rows)
    await add_attributes(redis_url, SCRIPTED, dict(SCRIPT_ATTRIBUTES))
    await add_attributes(redis_url, "p-1001", {"tier": ("string", "gold"), "lifetime_value": ("number", 1234.5)})
    await publish_text(redis_url, RULES.read_text(encoding="utf-8"), "examples/retail/rules.yaml", "marketing-ops")
    server = await start_server(None, metrics_port=0)  # serves the published ruleset, follows the next ones
    world = World(redis_url, server, {}, {})
    async with decision_stub(server.port) as stub:
        for n in range(VIPS):
            await _visit(stub, world, f"v-{n:03d}", "home_banner", {"page_path": "/"}, n)
        await publish_text(redis_url, second_version(), "rules.yaml", "campaign-manager")
        await eventually(lambda: server.service.active.current.version == V2, f"the server on {V2}")
        for n in range(VIPS):
            await _visit(stub, world, f"v-{n:03d}", "cart_upsell", CART, n)
    await server.service.proposals.flush()
    return world


async def _visit(stub: Any, world: World, profile: str, placement: str, context: dict[str, Any], n: int) -> None:
    """A page view: a decision, an impression of every item, a click on some."""
    response = await stub.Decide(decide_request(profile, (placement,), context=context), timeout=10)
    batch = []
    for item in response.propositions[0].items:
        batch.append(event(item, f"i-{placement}-{profile}-{item.offer_id}", at=time.time(), profile=profile))
        world.shown[item.offer_id] = world.shown.get(item.offer_id, 0) + 1
        if n % 3 == 0 or (item.variant == "countdown" and n % 2 == 0) or (item.offer_id == "sneaker_socks" and n % 2):
            kind = decision_pb2.EVENT_TYPE_CLICK
            batch.append(event(item, f"c-{placement}-{profile}-{item.offer_id}", kind, at=time.time(), profile=profile))
            world.clicked[item.offer_id] = world.clicked.get(item.offer_id, 0) + 1
    await record(stub, *batch)
