"""Reading the outcome counters (``KeySpace.outcomes``): for reports (redis-py, SCAN) and ranking (fast path)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from decision.core.outcomes import OutcomeRow, rows_of
from decision.store.connect import AnyRedis
from decision.store.fastpath import Commands
from inbound_common.keys import KeySpace


async def scan_outcomes(client: AnyRedis, keys: KeySpace, days: Collection[str], batch: int = 500) -> list[OutcomeRow]:
    """Every counter of the given days, found by SCAN (never KEYS; every node of a Cluster), read pipelined."""
    found: dict[str, tuple[str, str]] = {}
    async for key in client.scan_iter(match=keys.outcomes_pattern(), count=1000):
        parsed = keys.outcome_key_of(key)
        if parsed is not None and parsed[1] in days:
            found[key.decode() if isinstance(key, bytes) else key] = parsed
    names = sorted(found)
    rows: list[OutcomeRow] = []
    for start in range(0, len(names), batch):
        chunk = names[start : start + batch]
        async with client.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.hgetall(name)
            hashes = await pipe.execute()
        for name, raw in zip(chunk, hashes, strict=True):
            offer_id, day = found[name]
            rows.extend(rows_of(offer_id, day, raw))
    return rows


async def read_outcomes(fast: Commands, keys: KeySpace, wanted: Sequence[tuple[str, str]]) -> list[OutcomeRow]:
    """The counters of the given (offer id, day) pairs: HGETALLs in one pipeline (per node on a Cluster)."""
    replies: list[Any] = await fast.pipeline([("HGETALL", keys.outcomes(offer, day)) for offer, day in wanted])
    rows: list[OutcomeRow] = []
    for (offer_id, day), flat in zip(wanted, replies, strict=True):
        rows.extend(rows_of(offer_id, day, dict(zip(flat[::2], flat[1::2], strict=True))))
    return rows
