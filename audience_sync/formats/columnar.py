"""The columnar reader (stub)."""

from __future__ import annotations

from audience_sync.formats import Format, InputOptions
from audience_sync.memberships import MembershipBlock


def parse_block(
    data: bytes, fmt: Format, options: InputOptions, now: float, *, first: bool, header: tuple[str, ...] | None
) -> MembershipBlock | None:
    return None
