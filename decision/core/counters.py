"""Names of a profile's delivery counters and sticky variants: the fields of its counters hash (docs/redis-keys.md);
and of what a decision's tracking tokens counted: the fields of ``KeySpace.token_events``.

The delivery controls (caps, suppression, contact policies) choose which
counters a decision reads and records, so the names are built here, in core;
the store writes them as fields of ``KeySpace.counters`` without knowing them.
"""

from __future__ import annotations

from typing import Final

# Field of the counters hash holding the variant of an ``allocation: auto`` experiment the profile saw.
STICKY_PREFIX: Final = "x|"


def offer_counter_field(offer_id: str, counted: str) -> str:
    """Times the offer was proposed (``decision``) or got an event of that type."""
    return f"o|{offer_id}|{counted}"


def policy_counter_field(policy_id: str) -> str:
    """Times a message counted against a contact policy."""
    return f"p|{policy_id}"


def sticky_variant_field(experiment_id: str) -> str:
    """The variant of an ``allocation: auto`` experiment the profile saw (set once, by record_events.lua)."""
    return f"{STICKY_PREFIX}{experiment_id}"


def token_event_field(placement_id: str, offer_id: str, counted: str) -> str:
    """One tracking token's count of one event type (``impression``, ``click``, ``dismiss``, ``custom:<type>``), in
    its decision's ``KeySpace.token_events`` hash: set once, so a token counts each type at most once."""
    return f"{placement_id}|{offer_id}|{counted}"
