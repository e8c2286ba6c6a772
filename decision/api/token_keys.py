"""Where the tracking-token signing keys come from: a file and/or ``$DECISION_TOKEN_KEYS``.

File: one key per line, ``<key id> <secret>`` (``#`` comments); environment: ``<key id>:<secret>``
entries separated by commas or whitespace, after the file's. The last key signs, all verify
(decision.core.tokens). Secrets are at least 32 bytes (e.g. ``openssl rand -base64 48``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from decision.core.tokens import TokenKeyError, TokenKeys, keys_from

ENV_KEYS = "DECISION_TOKEN_KEYS"
_SEPARATORS = re.compile(r"[\s,]+")


def load_token_keys(path: str | None = None, environ: Mapping[str, str] | None = None) -> TokenKeys | None:
    """The configured keys, or None when there are none. Errors name the file and line, never a secret."""
    entries: list[tuple[str, str, str]] = []
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenKeyError(f"{path}: cannot read the token keys file: {exc}") from None
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                key_id, _, secret = line.partition(" ")
                entries.append((f"{path}:{number}", key_id, secret.strip()))
        if not entries:
            raise TokenKeyError(f"{path}: the token keys file holds no key")
    raw = (environ or {}).get(ENV_KEYS, "")
    for index, entry in enumerate(e for e in _SEPARATORS.split(raw) if e):
        key_id, _, secret = entry.partition(":")
        entries.append((f"${ENV_KEYS} entry {index + 1}", key_id, secret))
    return keys_from(entries) if entries else None
