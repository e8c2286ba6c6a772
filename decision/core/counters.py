"""Names of a profile's delivery counters: the fields of its counters hash (docs/redis-keys.md).

The delivery controls (caps, suppression, contact policies) choose which
counters a decision reads and records, so the names are built here, in core;
the store writes them as fields of ``KeySpace.counters`` without knowing them.
"""

from __future__ import annotations


def offer_counter_field(offer_id: str, counted: str) -> str:
    """Times the offer was proposed (``decision``) or got an event of that type."""
    return f"o|{offer_id}|{counted}"


def policy_counter_field(policy_id: str) -> str:
    """Times a message counted against a contact policy."""
    return f"p|{policy_id}"
