"""Memory of the outcome counters on a real redis-server: bytes per offer-day and per counted event; and of what
a decision's tokens counted (``ib:tok:``), per decision that got events.

Writes through the service's own calls (``ProfileStore.add_outcomes`` for proposals,
``ProfileStore.record_events`` with outcome counts for events) into an embedded
redis-server and reads ``used_memory`` (INFO memory) before and after. The ``ib:tok:`` hashes are
written as record_events.lua writes them (``HSETNX`` of a field per token and type, ``PEXPIRE``).

Usage: ``python -m loadtest.outcome_memory [--offer-days 2000] [--events 200000]``.
"""

from __future__ import annotations

import argparse
import asyncio

from decision.core.counters import token_event_field
from decision.core.outcomes import event_digest, outcome_field, token_digest
from decision.store.connect import connect
from decision.store.embedded import EmbeddedRedis
from decision.store.profiles import OutcomeEvent, OutcomeEvents, ProfileStore

DAY_MS = 86_400_000
# A typical offer-day: one ruleset version, 2 placements, 3 variants (holdout included), 4 things counted.
PLACEMENTS, VARIANTS, COUNTED = ("home_banner", "cart_side"), ("control", "treatment", "holdout"), (
    "decision", "impression", "click", "dismiss")  # fmt: skip


async def used(store: ProfileStore) -> int:
    info = await store.client.info("memory")
    return int(info["used_memory"])


async def main(offer_days: int, events: int) -> None:
    with EmbeddedRedis() as redis_server:
        store = ProfileStore(connect(redis_server.url))
        before = await used(store)
        fields = {
            outcome_field("2026-11-v3", p, "exp-1", v, c): 123_456
            for p in PLACEMENTS
            for v in VARIANTS
            for c in COUNTED
        }
        for start in range(0, offer_days, 200):
            changes = [
                (f"offer-{n:05d}", "2026-11-29", 90 * DAY_MS, fields)
                for n in range(start, min(start + 200, offer_days))
            ]
            await store.add_outcomes(changes)
        after_counters = await used(store)
        per_day = (after_counters - before) / offer_days
        print(f"outcome counters: {len(fields)} fields per offer-day: {per_day:.0f} bytes per offer-day "
              f"({offer_days} offer-days)")  # fmt: skip
        name = outcome_field("2026-11-v3", "home_banner", "exp-1", "control", "impression")
        per_batch = 500
        for start in range(0, events, per_batch):
            pairs = [
                OutcomeEvent(event_digest(f"profile-{n}", f"evt-{n}-0123456789"),
                             token_digest(f"profile-{n}", f"{n:032x}", "home_banner", "impression"), name)
                for n in range(start, start + per_batch)
            ]  # fmt: skip
            offer = f"offer-{(start // per_batch) % 100:05d}"
            await store.record_events([], [OutcomeEvents(offer, "2026-11-30", 90 * DAY_MS, 2 * DAY_MS, pairs)])
        after_events = await used(store)
        print(f"event dedupe digests (event id and token type): {(after_events - after_counters) / events:.1f} bytes "
              f"per counted event ({events} events over 100 offer-days; kept for the token lifetime past the day's "
              "end)")  # fmt: skip
        counted = [token_event_field("home_banner", "spring_sale_20", kind) for kind in ("impression", "click")]
        for start in range(0, events, per_batch):
            commands = []
            for n in range(start, start + per_batch):
                key = store.keys.token_events(f"58bd1ad0-7ae1-4c2f-9f21-{n:012d}", f"{n:032x}")
                commands += [("HSETNX", key, field, "1") for field in counted] + [("PEXPIRE", key, DAY_MS)]
            await store.fast.pipeline(commands)
        after_tokens = await used(store)
        print(f"what tokens counted: {(after_tokens - after_events) / events:.1f} bytes per decision with an "
              f"impression and a click ({events} decisions, ECID-sized profile ids; kept for the token "
              "lifetime)")  # fmt: skip
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offer-days", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main(args.offer_days, args.events))
