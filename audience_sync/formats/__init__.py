"""Input formats: each parser turns lines into membership changes and located errors (pure, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from audience_sync.formats import detection
from audience_sync.formats.csv_rows import CsvOptions, parse_csv
from audience_sync.formats.detection import elect, sample_lines
from audience_sync.formats.ndjson_rows import NdjsonOptions, parse_ndjson
from audience_sync.formats.parquet_rows import parse_parquet
from audience_sync.formats.xdm import XdmOptions, parse_xdm
from audience_sync.records import Change, LineError, ParseStats


class Format(enum.StrEnum):
    AUTO = "auto"
    CSV = "csv"
    NDJSON = "ndjson"
    XDM = "xdm"
    PARQUET = "parquet"  # flat or XDM columns (formats/parquet_rows.py); sources.py recognises it


@dataclass(frozen=True, slots=True)
class InputOptions:
    format: Format = Format.AUTO
    id_column: str = "profile_id"
    audience_column: str = "audience_id"
    # The audience of every record when the input names none (a file per audience).
    audience: str | None = None
    # XDM: the identityMap namespaces a profile is written under (empty: its primary identity).
    identity_namespaces: tuple[str, ...] = ()
    segment_namespace: str = "ups"


def detect(name: str, sample: bytes) -> Format:
    """The format of an input from its name (``.csv``, ``.json``...; ``.gz`` ignored) and its first lines.

    ``sample`` is the start of the (decompressed) input; its first non-blank lines vote (formats.detection).
    """
    base = name.lower().removesuffix(".gz")
    if base.endswith((".csv", ".txt")):
        return Format.CSV
    lines = sample_lines(sample)
    if base.endswith((".json", ".ndjson", ".jsonl")):
        return Format(elect(lines, (detection.XDM, detection.NDJSON)) or Format.NDJSON)
    return Format(elect(lines) or Format.CSV)


def parse(
    lines: Iterable[bytes],
    source: str,
    fmt: Format,
    options: InputOptions,
    stats: ParseStats,
    *,
    start: int = 1,
    header: list[str] | None = None,
) -> Iterator[Change | LineError]:
    """Parse ``lines`` of one input (``fmt`` already detected, never AUTO); ``start`` is the number of the
    first line (a block of a file), ``header`` a CSV file's header row when ``lines`` come after it."""
    if fmt is Format.CSV:
        csv_options = CsvOptions(options.id_column, options.audience_column, options.audience)
        return parse_csv(lines, source, csv_options, stats, start=start, header=header)
    if fmt is Format.NDJSON:
        records = NdjsonOptions(options.id_column, options.audience_column, options.audience)
        return parse_ndjson(lines, source, records, stats, start)
    if fmt is Format.XDM:
        xdm = XdmOptions(options.identity_namespaces, options.segment_namespace)
        return parse_xdm(lines, source, xdm, stats, start)
    if fmt is Format.PARQUET:
        xdm = XdmOptions(options.identity_namespaces, options.segment_namespace)
        records = NdjsonOptions(options.id_column, options.audience_column, options.audience)
        return parse_parquet(lines, source, xdm, records, stats, start)
    raise ValueError(f"no parser for format {fmt}")


__all__ = ["Change", "Format", "InputOptions", "LineError", "ParseStats", "detect", "parse"]
