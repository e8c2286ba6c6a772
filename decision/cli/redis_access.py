"""What the commands read from or write to a Redis: the published rulesets and the audience registry.

``serve`` (start from the published ruleset), ``validate`` (audiences the
registry does not know) and the ``rules`` and ``simulate`` commands share it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from decision.cli.options import fail
from decision.rules.errors import Problem
from decision.rules.lint import lint
from decision.rules.types import Ruleset
from inbound_common.cli import Exit
from inbound_common.keys import KeySpace

_T = TypeVar("_T")


def client(args: argparse.Namespace) -> Any:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.store.connect import connect

    return connect(args.redis_url, timeout=5.0, max_connections=4)


def run_control(args: argparse.Namespace, work: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``work(control_store)`` against ``--redis-url``."""
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.store.control import ControlStore

    async def main() -> _T:
        store = ControlStore(client(args), KeySpace(args.key_prefix))
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def redis_status(exc: BaseException) -> Exit:
    """Unreachable or too slow: UNAVAILABLE (retrying may help); any other Redis error: REDIS."""
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from redis.exceptions import ConnectionError, RedisClusterUnreachableError, TimeoutError

    if isinstance(exc, ConnectionError | TimeoutError | OSError | asyncio.TimeoutError | RedisClusterUnreachableError):
        return Exit.UNAVAILABLE
    return Exit.REDIS


def redis_failure(command: str, exc: Exception) -> int:
    return fail(command, f"Redis: {exc}", redis_status(exc))


def need_redis(args: argparse.Namespace, command: str) -> bool:
    if args.redis_url:
        return True
    fail(command, "--redis-url (or DECISION_REDIS_URL) is required", Exit.USAGE)
    return False


def check_published(redis_url: str | None, key_prefix: str) -> str:
    """The version a server without --rules would start on; raises PublishError, RulesetInvalid or a StoreError."""
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.rulesets import PublishError, load_active
    from decision.store.connect import connect
    from decision.store.control import ControlStore

    if not redis_url:
        raise PublishError("--rules is required unless --redis-url names a Redis that a ruleset was published to")

    async def main() -> str:
        store = ControlStore(connect(redis_url, timeout=5.0, max_connections=2), KeySpace(key_prefix))
        try:
            return (await load_active(store)).version
        finally:
            await store.close()

    return asyncio.run(main())


def known_audiences(redis_url: str, key_prefix: str) -> frozenset[str]:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.store.connect import connect
    from decision.store.profiles import ProfileStore

    async def main() -> frozenset[str]:
        store = ProfileStore(connect(redis_url, timeout=5.0, max_connections=2), KeySpace(key_prefix))
        try:
            return frozenset((await store.refresh_directory()).entries)
        finally:
            await store.close()

    return asyncio.run(main())


def lint_warnings(ruleset: Ruleset, redis_url: str | None, key_prefix: str) -> list[Problem]:
    """Lint warnings; the registry's audiences when a Redis is given (unreachable: said, not fatal)."""
    known = None
    if redis_url:
        from decision.store.connect import StoreError  # redis-py: ~120 ms that validate without a Redis does not pay

        try:
            known = known_audiences(redis_url, key_prefix)
        except StoreError as exc:
            print(f"decision: cannot read the audience registry, audiences not checked: {exc}", file=sys.stderr)
    return lint(ruleset, now=time.time(), known_audiences=known)
