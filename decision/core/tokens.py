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
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

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
_BLOCK = 64  # SHA-256's block size: HMAC pads (or first hashes) the key to it


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


def _text(text: str) -> bytes:
    """A varint length and the UTF-8 bytes."""
    raw = text.encode()
    size = len(raw)
    if size < 0x80:
        return bytes((size,)) + raw
    out = bytearray()
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + raw


# The fields (see the module docstring) are written here only, in three parts: the decision's (flags
# but the experiment bit, time, id), the item's (placement, offer), the decision's again (ruleset version,
# channel: ``tail``), then the experiment's.
def _decision_part(decision_id: str, decided_at_ms: int) -> tuple[int, bytes]:
    """The flags the decision id sets, and the decision's time and id as written."""
    compact = _HEX_ID.fullmatch(decision_id) is not None
    decided = decided_at_ms.to_bytes(_TIME_BYTES, "big")
    return (_FLAG_HEX_ID, decided + bytes.fromhex(decision_id)) if compact else (0, decided + _text(decision_id))


def _fields(
    head: tuple[int, bytes], placement_id: str, offer_id: str, tail: bytes, experiment_id: str, variant: str
) -> bytes:
    flags, decision = head
    if experiment_id or variant:
        return (
            bytes((flags | _FLAG_EXPERIMENT,)) + decision + _text(placement_id) + _text(offer_id) + tail
            + _text(experiment_id) + _text(variant)
        )  # fmt: skip
    return bytes((flags,)) + decision + _text(placement_id) + _text(offer_id) + tail


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
        head = _decision_part(self.decision_id, self.decided_at_ms)
        tail = _text(self.ruleset_version) + _text(self.channel)
        return _fields(head, self.placement_id, self.offer_id, tail, self.experiment_id, self.variant)

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
    # What a signed token starts with (format, key id), and the signing key's HMAC-SHA256 states after the
    # padded key: made once (``TokenWriter`` signs with them; ``open`` checks with ``hmac``: the two agree).
    _head: bytes = field(init=False, repr=False, compare=False)
    _inner: Any = field(init=False, repr=False, compare=False)
    _outer: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise TokenKeyError("no token signing key")
        if self.signing_format not in FORMATS:
            raise TokenKeyError(f"token format {self.signing_format}: expected one of {', '.join(map(str, FORMATS))}")
        by_id = {k.key_id: k for k in self.keys}
        if len(by_id) != len(self.keys):
            raise TokenKeyError("two token signing keys share a key id")
        object.__setattr__(self, "_by_id", by_id)
        kid = self.signing.key_id.encode()
        object.__setattr__(self, "_head", bytes((self.signing_format, len(kid))) + kid)
        secret = self.signing.secret
        if len(secret) > _BLOCK:  # RFC 2104: a key longer than a block is hashed first
            secret = hashlib.sha256(secret).digest()
        padded = secret.ljust(_BLOCK, b"\0")
        object.__setattr__(self, "_inner", hashlib.sha256(bytes(b ^ 0x36 for b in padded)))
        object.__setattr__(self, "_outer", hashlib.sha256(bytes(b ^ 0x5C for b in padded)))

    def __reduce__(self) -> tuple[type[TokenKeys], tuple[tuple[TokenKey, ...], bool, int]]:
        # Sent to worker processes: the hash states are made again there (they do not pickle).
        return TokenKeys, (self.keys, self.ephemeral, self.signing_format)

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

    def signer(self, profile_id: str) -> tuple[bytes, Any]:
        """What a token made for ``profile_id`` starts with, and the HMAC's inner state after what precedes
        its fields (the profile id when bound, then that start): ``TokenWriter`` adds the fields."""
        inner = self._inner.copy()
        if self.signing_format == TOKEN_FORMAT:
            inner.update(_text(profile_id))
        inner.update(self._head)
        return self._head, inner

    def mac(self, inner: Any) -> bytes:
        """The MAC from the inner state after every signed byte."""
        outer = self._outer.copy()
        outer.update(inner.digest())
        return bytes(outer.digest()[:MAC_BYTES])

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
    return hmac.digest(secret, _text(profile_id) + body, "sha256")[:MAC_BYTES]


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


class TokenWriter:
    """The tokens of one decision's items, signed for its profile when given keys (else unsigned, as
    ``TrackingToken.encode()``): what the items share is written, and hashed, once."""

    __slots__ = ("_head", "_inner", "_keys", "_start", "_tail")

    def __init__(
        self,
        keys: TokenKeys | None,
        profile_id: str,
        decision_id: str,
        decided_at_ms: int,
        ruleset_version: str,
        channel: str,
    ) -> None:
        self._keys = keys
        self._head = _decision_part(decision_id, decided_at_ms)
        self._tail = _text(ruleset_version) + _text(channel)
        self._start: bytes = b""
        self._inner: Any = None
        if keys is not None:
            self._start, self._inner = keys.signer(profile_id)

    def token(self, placement_id: str, offer_id: str, experiment_id: str, variant: str) -> str:
        fields = _fields(self._head, placement_id, offer_id, self._tail, experiment_id, variant)
        if self._keys is None:
            return _b64(fields)
        inner = self._inner.copy()
        inner.update(fields)
        return _b64(self._start + fields + self._keys.mac(inner))
