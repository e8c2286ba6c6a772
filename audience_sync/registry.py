"""The audience registry as audience_sync sees it: entries, generations handed out, snapshots loading.

Pure: decodes what ``audience_sync.store`` reads (docs/redis-keys.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from inbound_common.codecs import AudienceEntry, membership_field

# A pending snapshot whose loader has not refreshed its heartbeat for this long is considered dead.
DEFAULT_STALE_AFTER = 300.0
HEARTBEAT_EVERY = 5.0
# After a cutover the previous generation is kept this long, for readers that have not yet re-read
# the registry (servers re-read it on the published change, and poll every second).
PREVIOUS_GENERATION_GRACE = 60.0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """A generation being loaded: a field of ``ib:{registry}:pending``."""

    audience_id: str
    code: int
    generation: int
    started_at: float
    heartbeat: float
    source: str = ""
    owner: str = ""
    written: int = 0
    raw: bytes = b""

    @property
    def field(self) -> str:
        return membership_field(self.code, self.generation)

    def alive(self, now: float, stale_after: float = DEFAULT_STALE_AFTER) -> bool:
        return now - self.heartbeat < stale_after

    @classmethod
    def decode(cls, raw: bytes | str) -> PendingSnapshot:
        body = orjson.loads(raw)
        return cls(
            audience_id=str(body["audience"]),
            code=int(body["code"]),
            generation=int(body["gen"]),
            started_at=float(body["started_at"]),
            heartbeat=float(body["heartbeat"]),
            source=str(body.get("source", "")),
            owner=str(body.get("owner", "")),
            written=int(body.get("written", 0)),
            raw=raw if isinstance(raw, bytes) else raw.encode(),
        )


def retired_generation(entry: AudienceEntry, now: float, grace: float = PREVIOUS_GENERATION_GRACE) -> int | None:
    """The generation an audience's last cutover replaced, once no reader can still be using it."""
    previous, cutover_at = entry.extra.get("previous_gen"), entry.extra.get("cutover_at")
    if not isinstance(previous, int | float) or not isinstance(cutover_at, int | float):
        return None
    if int(previous) == entry.generation or now < float(cutover_at) + grace:
        return None
    return int(previous)


def kept_previous_generation(entry: AudienceEntry, now: float, grace: float = PREVIOUS_GENERATION_GRACE) -> int | None:
    """The generation an audience's last cutover replaced, while readers may still be using it."""
    previous, cutover_at = entry.extra.get("previous_gen"), entry.extra.get("cutover_at")
    if not isinstance(previous, int | float) or not isinstance(cutover_at, int | float):
        return None
    return int(previous) if now < float(cutover_at) + grace else None


@dataclass(frozen=True, slots=True)
class RegistryState:
    """One consistent read of the registry keys."""

    version: int
    next_code: int
    entries: Mapping[str, AudienceEntry]
    # audience id -> the last generation handed out to a snapshot
    last_generation: Mapping[str, int] = field(default_factory=dict)
    pending: Sequence[PendingSnapshot] = ()

    @classmethod
    def decode(cls, reply: Sequence[Any]) -> RegistryState:
        audiences, version, next_code, generations, pending = reply
        entries = {
            _text(audiences[i]): AudienceEntry.decode(audiences[i], audiences[i + 1])
            for i in range(0, len(audiences), 2)
        }
        last = {_text(generations[i]): int(generations[i + 1]) for i in range(0, len(generations), 2)}
        snapshots = [PendingSnapshot.decode(pending[i + 1]) for i in range(0, len(pending), 2)]
        return cls(int(version), int(next_code), entries, last, snapshots)

    def loading(self, audience_id: str, now: float, stale_after: float = DEFAULT_STALE_AFTER) -> list[PendingSnapshot]:
        """Live snapshots of an audience (deltas are written to their generations too)."""
        return [p for p in self.pending if p.audience_id == audience_id and p.alive(now, stale_after)]
