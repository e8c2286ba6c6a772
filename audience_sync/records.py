"""What the parsers produce: membership changes and located errors; the field checks they share.

Pure: no I/O. A ``Change`` says "profile P is (or is not) in audience A", with
the membership's expiry (AEP ``validUntil``) and the event's time when the
input has one. Snapshot loading and delta application decide what a change
means for Redis; the parsers only read and check.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, NamedTuple

MAX_ID_BYTES: Final = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Statuses the inputs may carry, and whether each means "member".
MEMBER_STATUSES: Final[dict[str, bool]] = {
    "realized": True,
    "existing": True,
    "exited": False,
    "add": True,
    "remove": False,
}


class Change(NamedTuple):
    """One membership statement read from an input (a plain tuple: millions are made per load)."""

    profile_id: str
    audience_id: str
    member: bool
    # Epoch seconds after which the membership no longer counts; None: no end.
    expires_at: int | None
    # Epoch seconds of the event (AEP lastQualificationTime, a stream event's time); None: unknown.
    event_time: float | None
    line: int | str  # where it was read: a line number or a stream entry id


@dataclass(frozen=True, slots=True)
class LineError:
    """A rejected input line: printed as ``source:line: reason``."""

    source: str
    line: int | str  # a line number, or a stream entry id
    reason: str
    text: bytes = b""

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ParseStats:
    """Counters a parser updates as it goes (the threshold compares ``bad`` to ``lines``)."""

    lines: int = 0  # data lines seen (headers and blank lines excluded), good or bad
    bad: int = 0
    # XDM profiles read (good lines), and the identities they are written under (each id of each chosen
    # namespace, summed over the profiles); flat records (CSV, NDJSON) count in neither.
    profiles: int = 0
    identities: int = 0

    def add(self, other: ParseStats) -> None:
        self.lines += other.lines
        self.bad += other.bad
        self.profiles += other.profiles
        self.identities += other.identities


class InvalidField(ValueError):
    """A field's value is unusable; the message names the field."""


def check_id(value: object, field: str) -> str:
    """A profile or audience id: a non-empty string of at most 256 bytes without control characters."""
    if not isinstance(value, str):
        if value is None:
            raise InvalidField(f"{field}: missing")
        raise InvalidField(f"{field}: expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidField(f"{field}: empty")
    if len(value) > MAX_ID_BYTES // 4 and len(value.encode()) > MAX_ID_BYTES:
        raise InvalidField(f"{field}: longer than {MAX_ID_BYTES} bytes")
    if _CONTROL.search(value):
        raise InvalidField(f"{field}: contains a control character")
    return value


def check_profile_id(value: object, field: str) -> str:
    """A profile id, which also names the profile's Redis keys: ``{<id>}`` must be a hash tag."""
    profile_id = check_id(value, field)
    if profile_id[0] == "}":
        # "{}...": an empty tag, so Redis Cluster would place the profile's keys by their whole name, apart.
        raise InvalidField(f"{field}: may not start with '}}'")
    return profile_id


def check_status(value: object, field: str) -> bool:
    """True for a status meaning member (realized, existing, add), False for exited/remove."""
    if value is None:
        raise InvalidField(f"{field}: missing")
    if isinstance(value, str):
        member = MEMBER_STATUSES.get(value) if value.islower() else MEMBER_STATUSES.get(value.lower())
        if member is not None:
            return member
    raise InvalidField(f"{field}: unknown status {value!r} (expected one of {', '.join(MEMBER_STATUSES)})")


@functools.lru_cache(maxsize=65_536)
def seconds(value: str | int | float) -> float:
    """Epoch seconds of a timestamp; ValueError with the reason. Cached: exports repeat the same few timestamps."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(f"bad timestamp {value!r} (expected ISO 8601 or epoch seconds)") from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or not 0 <= seconds < 1e11:
        raise ValueError(f"timestamp {value!r} out of range")
    return seconds


def parse_time(value: object, field: str) -> float:
    """Epoch seconds from an ISO 8601 date-time (no offset: UTC) or a number of epoch seconds."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidField(f"{field}: expected a timestamp, got {type(value).__name__}")
    try:
        return seconds(value)
    except ValueError as exc:
        raise InvalidField(f"{field}: {exc}") from None


def expiry(value: object, field: str) -> int | None:
    """A ``validUntil``: None when absent, else whole epoch seconds (the layout stores integers)."""
    if value is None or value == "":
        return None
    return int(parse_time(value, field))
