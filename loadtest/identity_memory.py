"""Redis memory of writing each profile under several identities (``--identity-namespace`` repeated).

    python -m loadtest.identity_memory --profiles 200000 --audiences 10

Loads the same XDM export (ECID of 38 characters, CRMID ``c-<n>``) into an embedded redis-server
twice — under ECID only, then under ECID and CRMID — and reports ``used_memory`` per profile of each,
and the difference: what one more identity costs. Deltas (``apply``, ``receive``) add, per identity,
a small hash of event times (``ib:t:{<id>}``), measured here too by applying the export's changes.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from audience_sync.deltas import DeltaApplier
from audience_sync.formats import Format, InputOptions, parse
from audience_sync.records import Change, ParseStats
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.sources import open_input
from audience_sync.store import SyncStore
from decision.store.embedded import EmbeddedRedis
from loadtest.snapshot_load import audience_ids, write_xdm


def used(store: SyncStore) -> int:
    return int(store.info("memory")["used_memory"])


def snapshot_bytes(store: SyncStore, export: Path, namespaces: tuple[str, ...]) -> int:
    store.client.flushall()
    before = used(store)
    options = LoadOptions(input=InputOptions(identity_namespaces=namespaces), source="identity_memory")
    SnapshotLoad(store, options, ErrorReport(show=5)).run([str(export)])
    return used(store) - before


def delta_bytes(store: SyncStore, export: Path, namespaces: tuple[str, ...]) -> int:
    """The memory of applying the export as deltas (each change carries an event time) on an empty Redis."""
    store.client.flushall()
    before = used(store)
    applier = DeltaApplier(store, source="identity_memory")
    options = InputOptions(identity_namespaces=namespaces)
    with open_input(str(export)) as opened:
        batch: list[Change] = []
        for item in parse(opened.lines, str(export), Format.XDM, options, ParseStats()):
            if isinstance(item, Change):
                batch.append(item)
                if len(batch) >= 5000:
                    applier.apply(batch)
                    batch = []
        if batch:
            applier.apply(batch)
    return used(store) - before


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.identity_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--audiences", type=int, default=10)
    args = parser.parse_args(argv)
    n = args.profiles
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis_server:
        export = Path(tmp) / "export.json"
        write_xdm(export, n, audience_ids(args.audiences), compress=False)
        store = SyncStore.from_url(redis_server.url)
        version = store.info("server")["redis_version"]
        one = snapshot_bytes(store, export, ("ECID",))
        two = snapshot_bytes(store, export, ("ECID", "CRMID"))
        one_delta = delta_bytes(store, export, ("ECID",))
        two_delta = delta_bytes(store, export, ("ECID", "CRMID"))
        store.close()
    print(f"Redis {version}, {n:,} profiles x {args.audiences} memberships (snapshot, no expiry)")
    print(f"snapshot  ECID only        {one / n:7.1f} B/profile")
    print(f"snapshot  ECID + CRMID     {two / n:7.1f} B/profile  (+{(two - one) / n:.1f} B for the second identity)")
    print(f"deltas    ECID only        {one_delta / n:7.1f} B/profile (memberships + event times)")
    print(f"deltas    ECID + CRMID     {two_delta / n:7.1f} B/profile  (+{(two_delta - one_delta) / n:.1f} B)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
