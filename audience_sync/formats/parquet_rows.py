"""Parquet inputs: AEP dataset and audience exports (pyarrow).

The same two shapes as the JSON inputs: flat columns (``profile_id``, ``audience_id``, ``status``,
``valid_until``, ``event_time``, as in CSV/NDJSON) or the XDM structure (nested ``identityMap`` and
``segmentMembership``, maps or structs, ``xdm:`` prefixes allowed). A file is Parquet when it starts
with the ``PAR1`` magic or its name ends in ``.parquet``. Rows are read in batches, each row handed
to the NDJSON or XDM reader as one JSON object; a bad row is reported as ``file:row N: reason``
(N from 1). Timestamp columns become ISO 8601 date-times (without a zone: UTC).

**Null means absent.** Parquet cannot tell an absent field from a null one, and Spark writes
JSON-inferred data as struct columns with a null for every member a row lacks: a profile's
``segmentMembership.ups.<audience>`` for each audience it is not in, ``identityMap.<namespace>``
for each namespace it has no id of. The readers take each such null as absent (a map-typed column
simply lacks the key); attributes read from Parquet drop nulls first (``without_nulls``), so a null
never removes an attribute there.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator
from typing import IO, Any, Final

import orjson
import pyarrow

from audience_sync.formats.ndjson_rows import NdjsonOptions, json_object, record_change
from audience_sync.formats.xdm import XdmOptions, is_profile, read_profile
from audience_sync.records import Change, InvalidField, LineError, ParseStats

MAGIC: Final = b"PAR1"
SUFFIX: Final = ".parquet"
BATCH_ROWS: Final = 10_000


def is_parquet(name: str, head: bytes) -> bool:
    return head[:4] == MAGIC or name.lower().endswith(SUFFIX)


def jsonable(value: Any) -> Any:
    """What orjson cannot write itself, from pyarrow's Python values."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):  # a binary column: ids are text
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not representable in JSON")


def row_lines(source: str | IO[bytes], row_groups: list[int] | None = None) -> Iterator[bytes]:
    """Each row (of ``row_groups``, or all) as one JSON object line. OSError when the file is not readable
    Parquet."""
    # lazy, start-up (loadtest.startup): pyarrow.parquet ~30 ms that the loads of other formats do not pay
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(source)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise OSError(f"not a readable Parquet file: {exc}") from None
    for batch in rows.iter_batches(batch_size=BATCH_ROWS, row_groups=row_groups):
        for row in batch.to_pylist(maps_as_pydicts="lossy"):
            # Date-times without a zone are written without an offset: read as UTC, as in the other formats.
            yield orjson.dumps(row, default=jsonable)


def without_nulls(value: Any) -> Any:
    """``value`` with every null member of its objects left out, at any depth (null means absent)."""
    if value.__class__ is dict:
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if value.__class__ is list:
        return [without_nulls(v) for v in value]
    return value


def parse_parquet(
    lines: Iterable[bytes],
    source: str,
    xdm: XdmOptions,
    records: NdjsonOptions,
    stats: ParseStats,
    start: int = 1,
) -> Iterator[Change | LineError]:
    """The rows of ``row_lines``: XDM profiles or flat records, told apart as the receiver does (``is_profile``)."""
    known_audiences: set[str] = set()
    for row, raw in enumerate(lines, start):
        stats.lines += 1
        try:
            body = json_object(raw)
            if is_profile(body):
                profile = read_profile(body, xdm, row, known_audiences)
                stats.profiles += 1
                stats.identities += len(profile.identities)
                yield from profile.changes
            else:
                yield record_change(body, records, row)
        except InvalidField as exc:
            stats.bad += 1
            yield LineError(source, f"row {row}", str(exc), raw)
