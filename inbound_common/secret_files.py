"""Reading the server's secret files (bearer tokens, token signing keys): one entry per line, ``#`` comments."""

from __future__ import annotations

from pathlib import Path


def entry_lines(path: str, what: str, error: type[ValueError]) -> list[tuple[str, str]]:
    """``(path:line, text)`` of each entry; ``error`` (naming the file, never an entry) when unreadable or empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} file: {exc}") from None
    entries = [
        (f"{path}:{number}", line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not entries:
        raise error(f"{path}: the {what} file holds no entry")
    return entries
