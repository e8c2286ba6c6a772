"""``decision demo``: an embedded Redis, sample audiences, the server, and example decisions."""

from __future__ import annotations

import asyncio
import csv
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import json_format

from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.api.server import start
from decision.cli.display import format_decision, format_explanations
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2, decision_pb2_grpc


def load_audiences(redis_url: str, path: Path) -> int:
    """Load ``profile_id,audience_id`` rows with audience_sync's writer; returns how many memberships were written."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [(row["profile_id"], row["audience_id"], True, None) for row in csv.DictReader(handle)]
    store = SyncStore.from_url(redis_url)
    try:
        write_memberships(store, rows, source="demo")
    finally:
        store.close()
    return len(rows)


def demo_requests(path: Path) -> list[tuple[str, decision_pb2.DecideRequest]]:
    requests = []
    for entry in yaml.safe_load(path.read_text(encoding="utf-8")):
        request = decision_pb2.DecideRequest(
            profile_id=entry["profile_id"],
            channel=entry["channel"],
            placements=[decision_pb2.PlacementRequest(placement_id=p) for p in entry["placements"]],
            explain=bool(entry.get("explain", False)),
        )
        context: dict[str, Any] = entry.get("context", {})
        for key, value in context.items():
            json_format.ParseDict(value, request.context[key])
        requests.append((str(entry.get("note", "")), request))
    return requests


async def run_demo(example: Path, *, port: int = 50051, once: bool = False) -> int:
    rules = example / "rules.yaml"
    with EmbeddedRedis() as redis_server:
        print(f"1. embedded redis-server started at {redis_server.url}")
        settings = Settings(rules_path=str(rules), host="127.0.0.1", port=port)
        running = await start(settings, redis_server.url)
        try:
            loaded = await asyncio.to_thread(load_audiences, redis_server.url, example / "audiences.csv")
            await running.store.refresh_directory()
            print(f"2. loaded {loaded} sample audience memberships from {example / 'audiences.csv'}")
            print(
                f"3. decision service listening on 127.0.0.1:{running.port} "
                f"(ruleset {running.service.active.current.version})\n"
            )
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                stub = decision_pb2_grpc.DecisionServiceStub(channel)
                for note, request in demo_requests(example / "requests.yaml"):
                    response = await stub.Decide(request, timeout=2.0)
                    print(f"# {note}")
                    print(format_decision(request, response), end="\n\n")
                    if response.explanations:
                        print(format_explanations(response), end="\n\n")
            if once:
                return 0
            print(
                "The server keeps running; from another terminal try:\n"
                f"  decision decide --target 127.0.0.1:{running.port} --profile p-1002 --channel mobile "
                "--placement home_banner --placement app_inbox --context device=ios --context app_version=5.3.1\n"
                f"  grpcurl -plaintext 127.0.0.1:{running.port} list\n"
                "Stop with Ctrl-C.",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await stop.wait()
            print("stopping", file=sys.stderr)
            return 0
        finally:
            await running.stop(grace=2.0)
