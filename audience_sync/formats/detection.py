"""Which format an input is in, from the first lines it parses as (pure, no I/O).

One line decides nothing: an export whose first line is blank, truncated or
corrupt would otherwise be read whole in the wrong format and refused. Each
of the first non-blank lines of a sample votes for the format it parses as —
a JSON object with ``identityMap`` or ``segmentMembership`` (``xdm:`` prefixed
or not) for XDM, another JSON object for NDJSON, anything else for CSV — and
the most voted format wins. CSV is the catch-all vote (a corrupt JSON line
votes for it too), so on a tie the structured formats win: XDM, then NDJSON.
The lines that do not fit are then bad lines of the chosen format, each
reported where it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Final

import orjson

XDM: Final = "xdm"
NDJSON: Final = "ndjson"
CSV: Final = "csv"
# Ties go to the first: a CSV vote is only "not a JSON object".
PREFERENCE: Final = (XDM, NDJSON, CSV)
SAMPLE_LINES: Final = 20
_XDM_KEYS: Final = ("identityMap", "segmentMembership", "xdm:identityMap", "xdm:segmentMembership")


def vote(line: bytes) -> str:
    """The format one line parses as."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return CSV
    if not isinstance(value, dict):
        return CSV  # a number, a string...: a one-column CSV row parses as JSON too
    return XDM if any(key in value for key in _XDM_KEYS) else NDJSON


def sample_lines(sample: bytes, limit: int = SAMPLE_LINES) -> list[bytes]:
    """The first ``limit`` non-blank lines of the start of an input.

    The last piece of ``sample`` may be a line cut short by the sample's end: it is left out
    unless it is all there is.
    """
    pieces = sample.split(b"\n")
    if len(pieces) > 1:
        pieces.pop()  # after the last newline: cut short, or empty
    lines = [piece for piece in pieces if piece.strip()]
    return lines[:limit]


def elect(lines: Sequence[bytes], candidates: Sequence[str] = PREFERENCE) -> str | None:
    """The candidate most ``lines`` vote for (ties: the earlier in PREFERENCE); None when none votes for one."""
    votes = Counter(vote(line) for line in lines)
    best = max(candidates, key=lambda fmt: (votes[fmt], -PREFERENCE.index(fmt)))
    return best if votes[best] else None
