"""``--json``: what a run did, as one JSON object for scripts (pure: no I/O).

Every object has ``command`` and ``ok``; a run that applied nothing says why in
``refused`` (bad input, a conflict) or ``failed`` (Redis, an interruption).
A load that was not applied says what it removed of what it wrote in ``cleaned``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from audience_sync.cleanup import Cleanup
from audience_sync.deltas import DeltaTally
from audience_sync.records import ParseStats
from audience_sync.snapshot import AudienceTally


def _input(stats: ParseStats, errors: Iterable[str]) -> dict[str, Any]:
    """What was read: lines, bad lines, and the XDM profiles and the identities they go under."""
    return {
        "lines": stats.lines,
        "bad_lines": stats.bad,
        "errors": list(errors),
        **identity_counts(stats),
    }


def identity_counts(stats: ParseStats) -> dict[str, int]:
    """``profiles``: XDM profiles read; ``identities``: the profile ids they are written under (every id of
    each chosen namespace, summed over the profiles: an id two profiles list counts for each — writes, not
    distinct ids, which a streamed load could count only by remembering every id; docs/audience-sync.md).
    Both 0 for flat records, whose rows are memberships."""
    return {"profiles": stats.profiles, "identities": stats.identities}


def load_summary(
    *,
    tallies: Iterable[AudienceTally],
    stats: ParseStats,
    errors: Iterable[str],
    dry_run: bool,
    skipped: int,
    version: int = 0,
    seconds: float = 0.0,
    refused: str = "",
    failed: str = "",
    cleanup: Cleanup | None = None,
    attributes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    audiences = [
        {
            "audience": t.audience_id,
            "code": t.code,
            "generation": t.generation,
            "members": t.members,
            "added": t.added,
            "removed": t.removed,
            "unchanged": t.unchanged,
            "expired": t.expired,
            "exited": t.exited,
        }
        for t in tallies
    ]
    return {
        "command": "load",
        "ok": not (refused or failed),
        "applied": bool(version),
        "dry_run": dry_run,
        "version": version,
        "refused": refused or None,
        "failed": failed or None,
        **_input(stats, errors),
        "skipped": skipped,
        "memberships": sum(a["members"] for a in audiences),
        "seconds": round(seconds, 3),
        "audiences": audiences,
        "cleaned": cleanup.as_json() if cleanup is not None else None,
        "attributes": dict(attributes) if attributes is not None else None,
    }


def apply_summary(
    *,
    tallies: Mapping[str, DeltaTally],
    stats: ParseStats,
    errors: Iterable[str],
    dry_run: bool,
    changes: int,
    seconds: float = 0.0,
    refused: str = "",
    attributes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "command": "apply",
        "ok": not refused,
        "dry_run": dry_run,
        "refused": refused or None,
        **_input(stats, errors),
        "changes": changes,
        "seconds": round(seconds, 3),
        "audiences": [
            {
                "audience": audience,
                "added": t.added,
                "removed": t.removed,
                "unchanged": t.unchanged,
                "stale": t.stale,
                "expired": t.expired,
            }
            for audience, t in sorted(tallies.items())
        ],
        "attributes": dict(attributes) if attributes is not None else None,
    }


def attributes_summary(
    *,
    command: str,
    values: int,
    dry_run: bool,
    errors: Iterable[str] = (),
    tally: Mapping[str, int] | None = None,
    refused: str = "",
    stats: ParseStats | None = None,
) -> dict[str, Any]:
    """``audience-sync attributes``, or the ``--attribute`` input of a load or apply that refused it.

    ``values``: attribute values, one per identity a profile's value is written under; ``tally``: written,
    unchanged, stale (``AttributeTally.as_json``); none: nothing was written."""
    return {
        "command": command,
        "ok": not refused,
        "dry_run": dry_run,
        "refused": refused or None,
        "errors": list(errors),
        **identity_counts(stats or ParseStats()),
        "values": values,
        **(tally or {"written": 0, "unchanged": 0, "stale": 0}),
    }
