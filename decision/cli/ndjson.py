"""Reading NDJSON input files (simulation samples, feedback events): one JSON value a line, located errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson


def values(path: str | Path, error: Callable[[str], Exception]) -> Iterator[tuple[str, Any]]:
    """``(file:line, value)`` for each non-blank line; a line that is not JSON raises ``error(reason)``."""
    with Path(path).open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                yield where, orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise error(f"{where}: invalid JSON: {exc}") from exc
