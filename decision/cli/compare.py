"""``decision simulate --compare OLD NEW`` in words (the comparison itself: decision.core.comparison)."""

from __future__ import annotations

from decision.core.comparison import Comparison, winners_text


def format_comparison(result: Comparison) -> str:
    lines = [
        f"ruleset {result.old_version} -> {result.new_version}: {result.profiles} profiles"
        + (f" ({len(result.skipped)} skipped: context rejected)" if result.skipped else ""),
        "",
        f"{'placement':<24} {'decisions':>9} {'changed':>8} {'share':>7}",
    ]
    for p in result.placements.values():
        lines.append(f"{p.placement_id:<24} {p.decisions:>9} {p.changed:>8} {100 * p.share:>6.1f}%")
        for (old, new), count in p.moves.most_common():
            examples = ", ".join(p.examples[(old, new)])
            lines.append(f"    {winners_text(old)} -> {winners_text(new)}: {count} (e.g. {examples})")
    lines.append("")
    lines.append(f"changed: {result.changed} of {result.decisions} decisions ({100 * result.share:.1f}%)")
    if result.only_old:
        lines.append(f"placements removed: {', '.join(result.only_old)}")
    if result.only_new:
        lines.append(f"placements added: {', '.join(result.only_new)}")
    return "\n".join(lines)
