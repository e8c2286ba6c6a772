"""Helpers for the audience_sync tests: inputs, and what a reader of Redis sees."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from audience_sync.cli.main import main
from audience_sync.store import SyncStore
from inbound_common.codecs import AudienceDirectory

ROOT = Path(__file__).resolve().parents[2]


def xdm_line(profile_id: str, segments: Mapping[str, str | Mapping[str, Any]], namespace: str = "CRMID") -> bytes:
    """One exported profile; a segment given as a string is its status."""
    states = {a: ({"status": s} if isinstance(s, str) else dict(s)) for a, s in segments.items()}
    body = {
        "identityMap": {"ECID": [{"id": f"ecid-{profile_id}", "primary": True}], namespace: [{"id": profile_id}]},
        "segmentMembership": {"ups": states},
    }
    return orjson.dumps(body)


def write_lines(path: Path, lines: Sequence[bytes | str]) -> Path:
    path.write_bytes(b"".join((line.encode() if isinstance(line, str) else line) + b"\n" for line in lines))
    return path


def seen_by_readers(store: SyncStore, now: float | None = None) -> dict[str, set[str]]:
    """profile -> audiences, decoded exactly as the decision service does (active generations, expiry)."""
    state = store.registry_state()
    directory = AudienceDirectory.build(state.version, state.entries)
    result: dict[str, set[str]] = {}
    for key in store.scan_membership_keys(count=1000):
        profile_id = key.decode()[len(store.keys.membership("")) - 1 : -1]
        audiences, _ = directory.audiences(store.client.hgetall(key), time.time() if now is None else now)
        if audiences:
            result[profile_id] = set(audiences)
    return result


def dump(store: SyncStore) -> dict[bytes, Any]:
    """Every key and its content: compared before and after to prove nothing was written."""
    client: Any = store.client
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"string":
            out[key] = client.get(key)
        elif kind == b"stream":
            out[key] = client.xrange(key)
        else:
            out[key] = kind
    return out


def dumped(store: SyncStore) -> dict[bytes, bytes]:
    """Every key and its ``DUMP`` (type, encoding and content, byte for byte): equal before and after proves
    that nothing in Redis changed, the registry's counters and hashes included."""
    client: Any = store.client
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run ``audience-sync`` in-process; (exit status, stdout, stderr)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def spawn(
    *args: str, stdin: int | None = None, stdout: int = subprocess.PIPE, redis_url: str
) -> subprocess.Popen[bytes]:
    """``audience-sync`` as a separate process (for the kill tests)."""
    env = {**os.environ, "AUDIENCE_SYNC_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "audience_sync.cli", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )


def latest_arrival(deliveries: Sequence[tuple[object, int]]) -> object:
    """The rule for one attribute, stated without replaying it: of the deliveries ``(value, event time ms)``
    in arrival order, the value of the latest event time, the later arrival winning a tie (None: removed)."""
    return max(enumerate(deliveries), key=lambda item: (item[1][1], item[0]))[1][0]


def results_of(deliveries: Sequence[tuple[object, int]]) -> list[str]:
    """What the writer answers per delivery, in arrival order: ``stale`` (older than the stored time),
    ``unchanged`` (the value already so: an identical resend, a removal of an absent value) or ``written``."""
    results: list[str] = []
    stored: tuple[object, int] | None = None
    for value, at in deliveries:
        if stored is not None and at < stored[1]:
            results.append("stale")
            continue
        results.append("unchanged" if (None if stored is None else stored[0]) == value else "written")
        stored = (value, at)
    return results
