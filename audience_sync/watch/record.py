"""One file's record in a watcher's ledger (docs/redis-keys.md): what was done with which version of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

import orjson

# Outcomes after which a version of a file is done: not applied again until the file changes.
FINAL: Final = frozenset({"applied", "refused", "superseded"})


@dataclass(frozen=True, slots=True)
class Record:
    """What the ledger says of one file."""

    version: str  # ETag|size of the content the outcome is about
    kind: str  # snapshot or deltas
    outcome: str  # applying, applied, refused, superseded, interrupted, failed
    export_time: float
    series: str
    attempts: int = 1
    reason: str = ""
    owner: str = ""  # the process applying it (host:pid, as a snapshot's pending record names it)
    token: int = 0  # the lease token it was written under
    at: float = 0.0
    registry_version: int = 0  # a snapshot: the registry version its cutover made

    @property
    def final(self) -> bool:
        return self.outcome in FINAL

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Record:
        body = orjson.loads(raw)
        return cls(
            version=str(body["version"]),
            kind=str(body["kind"]),
            outcome=str(body["outcome"]),
            export_time=float(body.get("export_time", 0.0)),
            series=str(body.get("series", "")),
            attempts=int(body.get("attempts", 1)),
            reason=str(body.get("reason", "")),
            owner=str(body.get("owner", "")),
            token=int(body.get("token", 0)),
            at=float(body.get("at", 0.0)),
            registry_version=int(body.get("registry_version", 0)),
        )
