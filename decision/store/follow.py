"""Following a pub/sub channel with a polling safety net: the audience registry and the published rulesets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from decision.store.connect import AnyRedis, StoreError

log = logging.getLogger(__name__)


async def follow(
    client: AnyRedis,
    channel: str,
    on_wake: Callable[[], Awaitable[object]],
    interval: float,
    closing: Callable[[], bool],
    failure: str,
) -> None:
    """Call ``on_wake`` on every message on ``channel``, and every ``interval`` s (a missed message),
    until ``closing()``; on a Redis failure, log, wait an interval, subscribe again.

    ``closing`` besides cancellation: redis-py's ``get_message(timeout=...)`` can swallow a
    cancellation that lands as its own timeout expires.
    """
    pubsub = None
    try:
        while not closing():
            try:
                if pubsub is None:  # on a Cluster, PUBLISH reaches every node: any one will do
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(channel)
                await on_wake()
                await pubsub.get_message(timeout=interval)
            except StoreError as exc:
                log.warning("%s: %s", failure, exc)
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
                    pubsub = None
                await asyncio.sleep(interval)
    finally:  # returned, or cancelled
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2
