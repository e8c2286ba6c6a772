"""Keep secrets out of logs and printed messages."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: ``redis://user:***@host:6379/0``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable: show nothing of it rather than risk a secret
        return f"<unparsable URL, {len(url)} characters>"
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
