"""``status``: the audience registry as a table (pure formatting)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from audience_sync.registry import DEFAULT_STALE_AFTER, PendingSnapshot, RegistryState
from audience_sync.report import duration


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def gc_removes(p: PendingSnapshot) -> str:
    """What ``gc`` does with the record of a dead load (killed, or its Redis gone before it could clean up)."""
    return f"every membership field {p.field} (about {p.written:,} written), then this pending record"


def _loading(p: PendingSnapshot, now: float, stale_after: float) -> dict[str, Any]:
    alive = p.alive(now, stale_after)
    return {
        "generation": p.generation,
        "field": p.field,
        "written": p.written,
        "alive": alive,
        "owner": p.owner,
        "heartbeat_age": round(now - p.heartbeat, 1),
        "gc_removes": None if alive else gc_removes(p),
    }


def rows(state: RegistryState, now: float, stale_after: float = DEFAULT_STALE_AFTER) -> list[dict[str, Any]]:
    """One row per audience, and one per new audience whose first snapshot is loading."""
    out = []
    loading: dict[str, list[dict[str, Any]]] = {}
    for p in state.pending:
        loading.setdefault(p.audience_id, []).append(_loading(p, now, stale_after))
    for audience_id in sorted(set(state.entries) | set(loading)):
        entry = state.entries.get(audience_id)
        out.append(
            {
                "audience": audience_id,
                "name": entry.name if entry else "",
                "code": entry.code if entry else next(p.code for p in state.pending if p.audience_id == audience_id),
                "generation": entry.generation if entry else 0,
                "members": entry.members if entry else None,
                "synced_at": entry.synced_at if entry else None,
                "source": entry.source if entry else "",
                "loading": loading.get(audience_id, []),
            }
        )
    return out


def table(state: RegistryState, now: float, stale_after: float = DEFAULT_STALE_AFTER) -> str:
    header = ("AUDIENCE", "CODE", "GEN", "MEMBERS", "SYNCED (UTC)", "AGE", "SOURCE", "LOADING")
    lines: list[tuple[str, ...]] = [header]
    for row in rows(state, now, stale_after):
        loading = ", ".join(
            f"gen {p['generation']}: {p['written']} written"
            + ("" if p["alive"] else f", dead ({p['owner']}): gc removes {p['field']} fields and the record")
            for p in row["loading"]
        )
        synced = row["synced_at"]
        lines.append(
            (
                row["audience"],
                str(row["code"]),
                str(row["generation"]) if row["generation"] else "-",
                "-" if row["members"] is None else f"{row['members']:,}",
                _when(synced),
                "-" if synced is None else duration(now - synced),
                row["source"] or "-",
                loading or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {1, 2, 3}
    text = []
    for line in lines:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
    text.append(f"registry version {state.version}, {len(state.entries)} audience(s)")
    return "\n".join(text)
