"""Tracking tokens: what a feedback event sends back to say which proposition it is about.

A token carries what an event needs to be attributed without a lookup, and a
MAC so that only this service can make one: an event about a decision that
never happened (a hand-made token) is rejected instead of counted against caps.
The MAC also covers the profile the decision was made for, without carrying it:
a token sent back with another ``profile_id`` does not verify.

Layout (format 4), URL-safe base64 without padding of::

    0x04 | key id length (1 byte) | key id | fields | MAC (16 bytes)

``fields`` (what ``TrackingToken.encode`` returns, base64url, before signing):
a flags byte (bit 0: the decision id is 32 lowercase hex digits, stored as its
16 bytes), the decision time in ms (6 bytes big-endian), the decision id, then
placement, offer, ruleset version and channel, each a varint length + UTF-8,
then (flags bit 1) the experiment id and variant that decided the item, so an
event is counted against its variant (decision.service.outcomes).
The MAC is HMAC-SHA256 truncated to 128 bits, keyed by the key the id names,
over the profile id (varint length + UTF-8) followed by everything before the
MAC (the key id included): the profile costs no byte of the token.

Format 3 (the previous release's) is the same layout with ``0x03`` and a MAC
over the bytes before it only: it is not bound to a profile. It is still
verified (a rolling deploy: tokens of servers of the previous release), and
signed when ``TokenKeys.signing_format`` says so (the first step of that deploy,
so that servers of the previous release verify the tokens of this one);
SECURITY.md. Pure: keys are given.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from decision.core.types import Decision

# Signed by default: bound to the profile. PREVIOUS_FORMAT: the previous release's, not bound (verified, and
# signed only when asked to, while servers of the previous release still verify events).
TOKEN_FORMAT: Final = 4
PREVIOUS_FORMAT: Final = 3
FORMATS: Final = (PREVIOUS_FORMAT, TOKEN_FORMAT)
MAC_BYTES = 16
MIN_SECRET_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_HEX_ID = re.compile(r"[0-9a-f]{32}")
_FLAG_HEX_ID = 1
_FLAG_EXPERIMENT = 2
_TIME_BYTES = 6


class InvalidToken(ValueError):
    pass


class ProfileMismatch(InvalidToken):
    """A profile-bound token whose MAC does not verify for the profile id given: a token made for another
    profile, or altered, or forged (the MAC cannot tell which)."""


class TokenKeyError(ValueError):
    """A signing key that cannot be used (the message names where it came from, never the secret)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidToken("not a tracking token") from exc


def _put(out: bytearray, text: str) -> None:
    raw = text.encode()
    size = len(raw)
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    out += raw


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.raw):
            raise InvalidToken("malformed tracking token")
        chunk = self.raw[self.at : self.at + size]
        self.at += size
        return chunk

    def text(self) -> str:
        size = shift = 0
        while True:
            byte = self.take(1)[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
            if shift > 28:
                raise InvalidToken("malformed tracking token")
        try:
            return self.take(size).decode()
        except UnicodeDecodeError as exc:
            raise InvalidToken("malformed tracking token") from exc


@dataclass(frozen=True, slots=True)
class TrackingToken:
    decision_id: str
    placement_id: str
    offer_id: str
    ruleset_version: str
    decided_at_ms: int
    # The channel the decision was made for (contact policies per channel count events by it).
    channel: str = ""
    # The experiment that decided the item and the variant served ("holdout": its control group).
    experiment_id: str = ""
    variant: str = ""

    def fields(self) -> bytes:
        out = bytearray()
        compact = _HEX_ID.fullmatch(self.decision_id) is not None
        experiment = bool(self.experiment_id or self.variant)
        out.append((_FLAG_HEX_ID if compact else 0) | (_FLAG_EXPERIMENT if experiment else 0))
        out += self.decided_at_ms.to_bytes(_TIME_BYTES, "big")
        if compact:
            out += bytes.fromhex(self.decision_id)
        else:
            _put(out, self.decision_id)
        for text in (self.placement_id, self.offer_id, self.ruleset_version, self.channel):
            _put(out, text)
        if experiment:
            _put(out, self.experiment_id)
            _put(out, self.variant)
        return bytes(out)

    def encode(self) -> str:
        """The unsigned fields, base64url: ``TokenKeys.sign`` makes the token a caller gets."""
        return _b64(self.fields())

    @classmethod
    def from_fields(cls, raw: bytes) -> TrackingToken:
        reader = _Reader(raw)
        flags = reader.take(1)[0]
        decided_at_ms = int.from_bytes(reader.take(_TIME_BYTES), "big")
        decision_id = reader.take(16).hex() if flags & _FLAG_HEX_ID else reader.text()
        placement_id, offer_id, version, channel = (reader.text() for _ in range(4))
        experiment_id, variant = (reader.text(), reader.text()) if flags & _FLAG_EXPERIMENT else ("", "")
        if reader.at != len(raw) or flags & ~(_FLAG_HEX_ID | _FLAG_EXPERIMENT):
            raise InvalidToken("malformed tracking token")
        return cls(decision_id, placement_id, offer_id, version, decided_at_ms, channel, experiment_id, variant)


@dataclass(frozen=True, slots=True)
class TokenKey:
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise TokenKeyError(f"key id {self.key_id!r}: 1 to 16 of A-Z a-z 0-9 _ -")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise TokenKeyError(f"key {self.key_id}: the secret must be at least {MIN_SECRET_BYTES} bytes")


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """The keys tokens are signed and verified with: the last one signs, all of them verify (rotation).

    ``ephemeral``: made up at start because none were configured (tokens verify only in this server's processes).
    ``signing_format``: the format tokens are signed in (``TOKEN_FORMAT``; ``PREVIOUS_FORMAT`` while servers of the
    previous release still verify events); both are verified.
    """

    keys: tuple[TokenKey, ...]
    ephemeral: bool = False
    signing_format: int = TOKEN_FORMAT
    _by_id: dict[str, TokenKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise TokenKeyError("no token signing key")
        if self.signing_format not in FORMATS:
            raise TokenKeyError(f"token format {self.signing_format}: expected one of {', '.join(map(str, FORMATS))}")
        by_id = {k.key_id: k for k in self.keys}
        if len(by_id) != len(self.keys):
            raise TokenKeyError("two token signing keys share a key id")
        object.__setattr__(self, "_by_id", by_id)

    @classmethod
    def generate(cls) -> TokenKeys:
        """A random key, for a server given none."""
        return cls((TokenKey("auto", secrets.token_bytes(MIN_SECRET_BYTES)),), ephemeral=True)

    @property
    def signing(self) -> TokenKey:
        return self.keys[-1]

    def sign(self, unsigned: str, profile_id: str) -> str:
        """The token for ``TrackingToken.encode()``'s fields made for ``profile_id``, signed with the signing key."""
        key = self.signing
        kid = key.key_id.encode()
        body = bytes((self.signing_format, len(kid))) + kid + _unb64(unsigned)
        return _b64(body + _mac(key.secret, body, profile_id if self.signing_format == TOKEN_FORMAT else None))

    def open(self, token: str, profile_id: str) -> TrackingToken:
        """The token's content if this service made it for ``profile_id`` (a previous-format token: for any
        profile), or InvalidToken saying why not (forged, altered, old key; ProfileMismatch: another profile)."""
        raw = _unb64(token)
        if raw[:1] == b"[":  # format 1 and 2: JSON, unsigned
            raise InvalidToken("unsigned tracking token (format of an earlier version): not accepted")
        if len(raw) < 2 + MAC_BYTES or raw[0] not in FORMATS:
            raise InvalidToken("not a tracking token")
        kid_end = 2 + raw[1]
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if kid_end > len(body):
            raise InvalidToken("malformed tracking token")
        key_id = raw[2:kid_end].decode("ascii", "replace")
        key = self._by_id.get(key_id)
        if key is None:
            raise InvalidToken(f"signed with key {key_id!r}, which this server does not hold (rotated out?)")
        bound = raw[0] == TOKEN_FORMAT
        if not hmac.compare_digest(mac, _mac(key.secret, body, profile_id if bound else None)):
            if bound:
                raise ProfileMismatch(
                    "signature does not match the profile id: made for another profile, altered or forged"
                )
            raise InvalidToken("signature does not match: altered or forged")
        return TrackingToken.from_fields(body[kid_end:])


def _mac(secret: bytes, body: bytes, profile_id: str | None) -> bytes:
    """The MAC of a token's bytes, over the profile id first when the token is bound to one (``hmac.digest``: the
    one-shot C path)."""
    if profile_id is None:
        return hmac.digest(secret, body, "sha256")[:MAC_BYTES]
    bound = bytearray()
    _put(bound, profile_id)
    bound += body
    return hmac.digest(secret, bound, "sha256")[:MAC_BYTES]


def keys_from(entries: list[tuple[str, str, str]]) -> TokenKeys:
    """Keys from ``(where, key_id, secret)`` entries, in order (the last signs). Errors name ``where``."""
    keys = []
    for where, key_id, secret in entries:
        try:
            keys.append(TokenKey(key_id, secret.encode()))
        except TokenKeyError as exc:
            raise TokenKeyError(f"{where}: {exc}") from None
    try:
        return TokenKeys(tuple(keys))
    except TokenKeyError as exc:
        raise TokenKeyError(f"{entries[-1][0] if entries else 'token keys'}: {exc}") from None


def sign_tokens(decision: Decision, keys: TokenKeys, profile_id: str) -> Decision:
    """The decision for ``profile_id`` with each item's token signed (planning leaves them unsigned: it holds no
    key)."""
    propositions = tuple(
        dataclasses.replace(
            p,
            items=tuple(
                dataclasses.replace(i, tracking_token=keys.sign(i.tracking_token, profile_id)) for i in p.items
            ),
        )
        for p in decision.propositions
    )
    return dataclasses.replace(decision, propositions=propositions)
