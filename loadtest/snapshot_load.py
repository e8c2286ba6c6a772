"""Benchmark: snapshot loads end to end against the best a plain writer does on the same Redis.

    python -m loadtest.snapshot_load --profiles 1000000

Generates N profiles x 10 audiences, starts an embedded redis-server, and
measures, in one run:

* the ceiling: pipelined ``HSET`` of the very profile hashes a load writes —
  same keys, same ``<code>:<generation>`` fields and values, same memberships
  per pipeline — packed by hiredis and written on one connection, replies read
  by a hiredis reader: no parsing, no reads, no bookkeeping. Measured in the
  shape of each load: 10 fields per ``HSET`` into empty hashes (the XDM
  export), the same into hashes already holding them (the export again), one
  field per ``HSET`` an audience at a time (the CSV files);
* ``load`` of an AEP XDM export (one profile per line, its 10 audiences on it),
  of the same export again, and of 10 CSV files (one per audience), each as
  one snapshot: parse + write + cutover, through the same code as ``audience-sync load``;
* Redis ``used_memory`` per membership after the XDM load;
* a Decide on a real decision server: the Redis commands it costs (INFO commandstats).

Figures are ratios to the ceiling measured in the same run, never absolute goals.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import hiredis
import orjson
from hiredis import pack_command

from audience_sync.formats import InputOptions
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.store import SyncStore, connect
from decision.api.server import start as start_server
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2, decision_pb2_grpc
from inbound_common.codecs import membership_field
from inbound_common.keys import KeySpace

AUDIENCES = 10
QUALIFIED = "2026-11-01T06:00:00Z"


def audience_ids(count: int = AUDIENCES) -> list[str]:
    return [str(uuid.UUID(int=0xA0D1E2CE << 96 | i)) for i in range(count)]


def write_xdm(path: Path, profiles: int, audiences: Sequence[str], compress: bool) -> None:
    segments = {a: {"status": "realized", "lastQualificationTime": QUALIFIED} for a in audiences}
    opener: Any = gzip.open if compress else open
    with opener(path, "wb") as out:
        chunk = []
        for i in range(profiles):
            line = {
                "identityMap": {"ECID": [{"id": f"{i:038d}", "primary": True}], "CRMID": [{"id": f"c-{i}"}]},
                "segmentMembership": {"ups": segments},
            }
            chunk.append(orjson.dumps(line))
            if len(chunk) == 10_000:
                out.write(b"\n".join(chunk) + b"\n")
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")


def write_csv(path: Path, profiles: int) -> None:
    with open(path, "wb") as out:
        out.write(b"profile_id\n")
        for start in range(0, profiles, 100_000):
            out.write(b"".join(b"c-%d\n" % i for i in range(start, min(start + 100_000, profiles))))


def hset_rate(url: str, keys: Sequence[bytes], rows: Sequence[Sequence[bytes]], batch: int) -> float:
    """Memberships/s of ``HSET key *row`` for every key and row, ``batch`` memberships per pipeline.

    The plain writer a load is measured against: hiredis packs, one socket, a hiredis reader counts the
    replies; a pipeline is sent whole, then its replies read (as the load's pipelines are).
    """
    where = urlsplit(url)
    sock = socket.create_connection((where.hostname or "127.0.0.1", where.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = hiredis.Reader()
    memberships = 0
    started = time.perf_counter()
    for row in rows:
        per = max(1, batch // (len(row) // 2))
        for start in range(0, len(keys), per):
            chunk = keys[start : start + per]
            sock.sendall(b"".join([pack_command((b"HSET", key, *row)) for key in chunk]))  # type: ignore[arg-type]
            expected = len(chunk)
            while expected:
                reply = reader.gets()
                if reply is False:
                    reader.feed(sock.recv(1 << 20))
                elif isinstance(reply, hiredis.ReplyError):
                    raise RuntimeError(f"HSET failed: {reply}")
                else:
                    expected -= 1
            memberships += len(chunk) * (len(row) // 2)
    seconds = time.perf_counter() - started
    sock.close()
    return memberships / seconds


class PlainWriter:
    """The ceiling: the profile hashes the loads write (``<code>:<gen>`` fields, value "": no expiry)."""

    def __init__(self, url: str, profiles: int, audiences: int, batch: int) -> None:
        self.url, self.batch, self.codes = url, batch, range(1, audiences + 1)
        membership = KeySpace().membership
        self.keys = [membership(f"c-{i}").encode() for i in range(profiles)]

    def _fields(self, generation: int) -> list[bytes]:
        return [part for code in self.codes for part in (membership_field(code, generation).encode(), b"")]

    def export(self) -> tuple[float, float]:
        """Each profile's 10 fields in one HSET: into empty hashes, then again into the filled hashes."""
        return hset_rate(self.url, self.keys, [self._fields(1)], self.batch), hset_rate(
            self.url, self.keys, [self._fields(2)], self.batch
        )

    def per_audience(self) -> float:
        """One field per HSET, an audience after the other (as 10 CSV files are loaded)."""
        rows = [[membership_field(code, 1).encode(), b""] for code in self.codes]
        return hset_rate(self.url, self.keys, rows, self.batch)


@dataclass(slots=True)
class Round:
    """One round: each load right after its ceiling, so that both see the same neighbours on the machine."""

    export_ceiling: float = 0.0
    export: float = 0.0
    again_ceiling: float = 0.0
    again: float = 0.0
    csv_ceiling: float = 0.0
    csv: float = 0.0


def load(url: str, paths: Sequence[str], options: LoadOptions) -> tuple[float, int]:
    store = SyncStore.from_url(url)
    started = time.perf_counter()
    outcome = SnapshotLoad(store, options, ErrorReport(show=5)).run(paths)
    seconds = time.perf_counter() - started
    store.close()
    return outcome.memberships / seconds, outcome.memberships


def rules_for(audiences: Sequence[str]) -> str:
    offers = "\n".join(
        f"  - {{id: o{i}, placements: [banner], eligibility: {{audiences: {{all: ['{a}']}}}}}}"
        for i, a in enumerate(audiences)
    )
    return (
        "placements: [{id: banner, channels: [web], max_items: 3, fallback: fb}]\noffers:\n"
        "  - {id: fb, placements: [banner], priority: -1, eligibility: {audiences: {all: [nobody]}}}\n" + offers
    )


async def decide_cost(url: str, rules: Path, profile_id: str) -> dict[str, int]:
    """Redis commands spent by one Decide on a real server (after one warm-up call)."""
    server = await start_server(Settings(rules_path=str(rules), host="127.0.0.1", port=0), url)
    client = connect(url)
    try:
        request = decision_pb2.DecideRequest(
            profile_id=profile_id, channel="web", placements=[decision_pb2.PlacementRequest(placement_id="banner")]
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = decision_pb2_grpc.DecisionServiceStub(channel)
            await stub.Decide(request, timeout=5)
            client.config_resetstat()
            response = await stub.Decide(request, timeout=5)
            stats = client.info("commandstats")
        spent = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        spent["info"] = spent.get("info", 1) - 1  # our own INFO
        spent.pop("config", None)  # our CONFIG RESETSTAT
        spent = {k: v for k, v in spent.items() if v}
        offers_seen = [item.offer_id for p in response.propositions for item in p.items]
        spent["offers proposed"] = len(offers_seen)
        return spent
    finally:
        client.close()
        await server.stop(grace=0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.snapshot_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=10_000, help="memberships per pipeline in load")
    parser.add_argument("--gzip", action="store_true", help="gzip the XDM export (parse cost includes inflating)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of ceiling + loads (medians are shown)")
    parser.add_argument("--skip-csv", action="store_true", help="only the XDM export")
    parser.add_argument("--dir", help="where to write the generated inputs (default: a temporary directory)")
    args = parser.parse_args(argv)
    profiles, audiences = args.profiles, audience_ids()
    memberships = profiles * len(audiences)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        xdm = Path(tmp) / ("export.json.gz" if args.gzip else "export.json")
        started = time.perf_counter()
        write_xdm(xdm, profiles, audiences, args.gzip)
        csvs = []
        if not args.skip_csv:
            for audience in audiences:
                path = Path(tmp) / f"{audience}.csv"
                write_csv(path, profiles)
                csvs.append(path)
        size = xdm.stat().st_size
        print(f"inputs: {profiles:,} profiles x {len(audiences)} audiences = {memberships:,} memberships "
              f"(XDM export {size / 1e6:,.0f} MB), generated in {time.perf_counter() - started:.0f}s")  # fmt: skip
        with EmbeddedRedis() as redis_server:
            url = redis_server.url
            client = connect(url)
            writer = PlainWriter(url, profiles, len(audiences), args.batch_size)
            xdm_options = LoadOptions(
                input=InputOptions(identity_namespaces=("CRMID",)), batch_size=args.batch_size, source="bench"
            )
            rounds = []
            used, encoding = 0, b""
            for _ in range(args.rounds):
                now = Round()
                client.flushall()
                now.export_ceiling, now.again_ceiling = writer.export()
                client.flushall()
                baseline = int(client.info("memory")["used_memory"])
                now.export, loaded = load(url, [str(xdm)], xdm_options)
                assert loaded == memberships, (loaded, memberships)
                used = int(client.info("memory")["used_memory"]) - baseline
                encoding = client.object("encoding", KeySpace().membership("c-0")) or b"?"
                # A second snapshot of the same export: every member is written again beside the serving one.
                now.again, _ = load(url, [str(xdm)], xdm_options)
                if csvs:
                    client.flushall()
                    now.csv_ceiling = writer.per_audience()
                    client.flushall()
                    started = time.perf_counter()
                    for path, audience in zip(csvs, audiences, strict=True):
                        one = LoadOptions(input=InputOptions(audience=audience), audiences=frozenset([audience]),
                                          batch_size=args.batch_size, source="bench")  # fmt: skip
                        load(url, [str(path)], one)
                    now.csv = memberships / (time.perf_counter() - started)
                rounds.append(now)
            rules = Path(tmp) / "rules.yaml"
            rules.write_text(rules_for(audiences), encoding="utf-8")
            spent = asyncio.run(decide_cost(url, rules, "c-0"))
            client.close()

    def median(name: str) -> float:
        return float(statistics.median(getattr(r, name) for r in rounds))

    def ratio(load: str, ceiling: str) -> tuple[float, str]:
        """The median of the rounds' ratios, and their range."""
        ratios = [getattr(r, load) / getattr(r, ceiling) for r in rounds]
        return float(statistics.median(ratios)), f"{min(ratios):.2f}–{max(ratios):.2f}"  # noqa: RUF001

    batch = f"{args.batch_size:,} memberships per pipeline"
    top = (1.0, "")
    rows = [
        (f"ceiling: pipelined `HSET` of each profile's 10 fields, {batch}, hiredis, one connection",
         median("export_ceiling"), top),
        ("`load` AEP XDM export (10 audiences per line), parse + write + cutover",
         median("export"), ratio("export", "export_ceiling")),
        ("ceiling: the same `HSET`s into hashes holding the previous generation", median("again_ceiling"), top),
        ("the same export again (every member unchanged)", median("again"), ratio("again", "again_ceiling")),
    ]  # fmt: skip
    if csvs:
        rows += [
            (f"ceiling: pipelined `HSET` of 1 field, an audience at a time, {batch}", median("csv_ceiling"), top),
            ("`load` 10 CSV files, one snapshot per audience", median("csv"), ratio("csv", "csv_ceiling")),
        ]
    print(f"\nmedians of {len(rounds)} round(s); each load measured right after its ceiling; a ratio is the "
          "median of the rounds' ratios (their range beside it)")  # fmt: skip
    print("| | memberships/s | × ceiling | rounds |\n|---|---:|---:|---:|")  # noqa: RUF001 - the README's table
    for label, value, (share, spread) in rows:
        print(f"| {label} | {value:,.0f} | {share:.2f} | {spread} |")
    for i, r in enumerate(rounds, 1):
        csv = f", CSV {r.csv:,.0f} / {r.csv_ceiling:,.0f}" if r.csv else ""
        print(f"round {i} (load / its ceiling, memberships/s): XDM {r.export:,.0f} / {r.export_ceiling:,.0f}, "
              f"again {r.again:,.0f} / {r.again_ceiling:,.0f}{csv}")  # fmt: skip
    print(f"memory   used_memory per membership after the XDM load: {used / memberships:.1f} bytes "
          f"({used / 1e6:,.0f} MB; a profile's hash is a {encoding.decode()})")  # fmt: skip
    print(f"decide   Redis commands for one Decide: {spent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
