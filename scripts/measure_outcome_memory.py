"""Memory of the outcome counters on a real redis-server: bytes per offer-day and per counted event.

Writes through the service's own calls (``ProfileStore.add_outcomes`` for proposals,
``ProfileStore.record_events`` with outcome counts for events) into an embedded
redis-server and reads ``used_memory`` (INFO memory) before and after.

Usage: ``python scripts/measure_outcome_memory.py [--offer-days 2000] [--events 200000]``.
"""

from __future__ import annotations

import argparse
import asyncio

from decision.core.outcomes import event_digest, outcome_field
from decision.store.connect import connect
from decision.store.embedded import EmbeddedRedis
from decision.store.profiles import OutcomeEvents, ProfileStore

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
                (event_digest(f"profile-{n}", f"evt-{n}-0123456789"), name) for n in range(start, start + per_batch)
            ]
            offer = f"offer-{(start // per_batch) % 100:05d}"
            await store.record_events([], [OutcomeEvents(offer, "2026-11-30", 90 * DAY_MS, 2 * DAY_MS, pairs)])
        after_events = await used(store)
        print(f"event dedupe digests: {(after_events - after_counters) / events:.1f} bytes per counted event "
              f"({events} events over 100 offer-days; kept for the dedupe window past the day's end)")  # fmt: skip
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offer-days", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    asyncio.run(main(args.offer_days, args.events))
