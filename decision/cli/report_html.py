"""The simulation's chart: one self-contained HTML page, inline SVG bars, no script, no external file."""

from __future__ import annotations

from html import escape

from decision.core.simulation import PlacementStats, Simulation
from decision.present.outcomes_html import STYLE
from decision.rules.types import utc_iso

BAR_HEIGHT = 22
LABEL_WIDTH = 220
BAR_WIDTH = 460
COUNT_WIDTH = 120
WIN_COLOR = "#3b6ea8"
FALLBACK_COLOR = "#b0b0b0"


def _bars(placement: PlacementStats) -> str:
    rows = [(offer, count, WIN_COLOR) for offer, count in placement.winners.most_common()]
    if placement.fallbacks:
        rows.append((f"{placement.fallback_offer} (fallback)", placement.fallbacks, FALLBACK_COLOR))
    total = placement.decisions or 1
    height = BAR_HEIGHT * max(len(rows), 1) + 4
    width = LABEL_WIDTH + BAR_WIDTH + COUNT_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="winners of {escape(placement.placement_id)}">'
    ]
    for index, (label, count, color) in enumerate(rows):
        y = index * BAR_HEIGHT + 2
        length = max(1.0, BAR_WIDTH * count / total)
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{BAR_HEIGHT - 6}" fill="{color}">'
            f"<title>{escape(label)}: {count} of {placement.decisions}</title></rect>"
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 15}">{count} ({100 * count / total:.1f}%)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render(simulation: Simulation) -> str:
    at = utc_iso(simulation.now, "seconds")
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Simulation of ruleset {escape(simulation.ruleset_version)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Winners per placement — ruleset {escape(simulation.ruleset_version)}</h1>",
        f"<p>{simulation.profiles} profiles, decided at {escape(at)}"
        + (f", {len(simulation.skipped)} skipped (context rejected)" if simulation.skipped else "")
        + ". Each placement is decided on its own; caps and contact policies are not applied.</p>",
    ]
    for placement in simulation.placements.values():
        out.append(
            f"<h2>{escape(placement.placement_id)} — fallback {100 * placement.fallback_share:.1f}% "
            f"({placement.fallbacks} of {placement.decisions})</h2>"
        )
        out.append(_bars(placement))
    out.append("<h2>Offers</h2><table><tr><th>offer</th><th>priority</th><th>eligible</th><th>wins</th>")
    out.append("<th>as fallback</th></tr>")
    never = {n.offer_id: n for n in simulation.never_win()}
    for offer in simulation.offers.values():
        css = ' class="never"' if offer.offer_id in never else ""
        out.append(
            f"<tr{css}><td>{escape(offer.offer_id)}</td><td>{offer.priority}</td><td>{offer.eligible}</td>"
            f"<td>{offer.total_wins}</td><td>{offer.served_as_fallback}</td></tr>"
        )
    out.append("</table>")
    if never:
        out.append("<h2>Offers that never win</h2><ul>")
        out.extend(f'<li class="never">{escape(n.describe())}</li>' for n in never.values())
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)
