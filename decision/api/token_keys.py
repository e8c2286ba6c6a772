"""Where the tracking-token signing keys come from: a file and/or ``$DECISION_TOKEN_KEYS``.

File: one key per line, ``<key id> <secret>`` (``#`` comments); environment: ``<key id>:<secret>``
entries separated by commas or whitespace, after the file's. The last key signs, all verify
(decision.core.tokens). Secrets are at least 32 bytes (e.g. ``openssl rand -base64 48``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from decision.core.tokens import TokenKeyError, TokenKeys, keys_from
from inbound_common.secret_files import entry_lines

ENV_KEYS = "DECISION_TOKEN_KEYS"
_SEPARATORS = re.compile(r"[\s,]+")


def load_token_keys(path: str | None = None, environ: Mapping[str, str] | None = None) -> TokenKeys | None:
    """The configured keys, or None when there are none. Errors name the file and line, never a secret."""
    entries: list[tuple[str, str, str]] = []
    for where, line in [] if path is None else entry_lines(path, "token keys", TokenKeyError):
        key_id, _, secret = line.partition(" ")
        entries.append((where, key_id, secret.strip()))
    raw = (environ or {}).get(ENV_KEYS, "")
    for index, entry in enumerate(e for e in _SEPARATORS.split(raw) if e):
        key_id, _, secret = entry.partition(":")
        entries.append((f"${ENV_KEYS} entry {index + 1}", key_id, secret))
    return keys_from(entries) if entries else None
