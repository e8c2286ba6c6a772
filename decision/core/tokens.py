"""Tracking tokens: what a feedback event sends back to say which proposition it is about.

A token is URL-safe base64 of a small JSON array; it is opaque to callers
and carries what an event needs to be attributed without a lookup.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

# Format 2 added the channel; format 1 tokens (no channel) are still read.
TOKEN_FORMAT = 2


class InvalidToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TrackingToken:
    decision_id: str
    placement_id: str
    offer_id: str
    ruleset_version: str
    decided_at_ms: int
    # The channel the decision was made for (contact policies per channel count events by it).
    channel: str = ""

    def encode(self) -> str:
        body = orjson.dumps(
            [
                TOKEN_FORMAT,
                self.decision_id,
                self.placement_id,
                self.offer_id,
                self.ruleset_version,
                self.decided_at_ms,
                self.channel,
            ]
        )
        return base64.urlsafe_b64encode(body).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> TrackingToken:
        try:
            body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
            raise InvalidToken("not a tracking token") from exc
        if not isinstance(body, list) or (body[:1], len(body)) not in (([1], 6), ([TOKEN_FORMAT], 7)):
            raise InvalidToken("not a tracking token of this service")
        decision_id, placement_id, offer_id, version, decided_at_ms = body[1:6]
        channel = body[6] if len(body) == 7 else ""
        if (
            not all(isinstance(v, str) for v in (decision_id, placement_id, offer_id, version, channel))
            or not isinstance(decided_at_ms, int)
            or isinstance(decided_at_ms, bool)
        ):
            raise InvalidToken("malformed tracking token")
        return cls(decision_id, placement_id, offer_id, version, decided_at_ms, channel)
