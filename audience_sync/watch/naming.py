"""When an export was made, and which series it belongs to, from its path (pure).

AEP names its batch exports after the time they were made (UTC), in one of these forms:

* ``<destination>_segment<audience id>_<YYYYMMDDHHMMSS>.csv`` — the audience exports' default name;
* ``..._<YYYYMMDD_HHMMSS>...`` — the API's ``%DATETIME(YYYYMMdd_HHmmss)%`` template (and its manifests' names);
* ``..._<MMDDYYYY_HHMMSS>...`` — the UI's "Date and time" option and the ``%DATETIME%`` folder macro;
* a Unix timestamp of 10 digits (``%TIMESTAMP%``, the UI's other option), or of 13 (milliseconds);
* ``exportTime=<YYYYMMDDHHMM>`` — the folder of each dataset export (its files have random names).

The time is looked for in the file's name first, then in its folders from the nearest; in a name, the last
one that is a valid date counts (an audience id holds no run of 10 digits or more between non-digits). A
split export (``name.csv``, ``name_2.csv``, ...) is one export: its parts share the time. The *series* of a
file is its path with the time replaced by ``*`` (and a part number dropped): the exports of one audience
(or one dataset) over time. A file without a time in its path has no series of its own (its path) and
is ordered by its modification time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

# Tried in this order at each position; digits on either side disqualify a match.
_FORMS: Final = (
    ("%Y%m%d%H%M%S", re.compile(r"(?<![0-9])([0-9]{14})(?![0-9])")),
    ("%Y%m%d_%H%M%S", re.compile(r"(?<![0-9])([0-9]{8}_[0-9]{6})(?![0-9])")),
    ("%m%d%Y_%H%M%S", re.compile(r"(?<![0-9])([0-9]{8}_[0-9]{6})(?![0-9])")),
    ("ms", re.compile(r"(?<![0-9])([0-9]{13})(?![0-9])")),
    ("%Y%m%d%H%M", re.compile(r"(?<![0-9])([0-9]{12})(?![0-9])")),
    ("s", re.compile(r"(?<![0-9])([0-9]{10})(?![0-9])")),
)
_PART: Final = re.compile(r"^(.*\*[^/]*?)_([0-9]{1,4})((?:\.[A-Za-z0-9]+)*)$")
EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST: Final = datetime(2200, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class ExportName:
    """What a file's path says: its export time (None: not in the path), series and part number."""

    time: float | None
    series: str
    part: int = 1


def _parse(form: str, text: str) -> float | None:
    if form in ("s", "ms"):
        value = int(text) / (1000 if form == "ms" else 1)
    else:
        try:
            value = datetime.strptime(text, form).replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
    return value if EARLIEST <= value < LATEST else None


def time_in(component: str) -> tuple[float, int, int] | None:
    """The last export time written in one path component: (epoch seconds, start, end of its text)."""
    found: tuple[float, int, int] | None = None
    for form, pattern in _FORMS:
        for match in pattern.finditer(component):
            if found is not None and match.start() <= found[1]:
                continue  # an earlier form already read a time here or further right
            value = _parse(form, match.group(1))
            if value is not None:
                found = (value, match.start(), match.end())
    return found


def export_name(relative: str) -> ExportName:
    """The export time, series and part of a file, from its path relative to the watched prefix."""
    components = relative.split("/")
    for index in range(len(components) - 1, -1, -1):
        found = time_in(components[index])
        if found is None:
            continue
        value, start, end = found
        component = components[index]
        if index == len(components) - 1:  # in the file's name: parts share it
            name = component[:start] + "*" + component[end:]
            part = 1
            split = _PART.match(name)
            if split:
                name, part = split.group(1) + split.group(3), int(split.group(2))
            return ExportName(value, "/".join([*components[:-1], name]), part)
        folder = component[:start] + "*" + component[end:]  # a folder per export: its files are the parts
        return ExportName(value, "/".join([*components[:index], folder, ""]), 1)
    return ExportName(None, relative, 1)
