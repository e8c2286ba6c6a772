"""The ``--attribute``, ``--attribute-map`` and ``--attribute-time-field`` options (load, apply, attributes,
receive), and the mapping file.

``--attribute-map FILE`` is the same mapping as repeated ``--attribute`` options, kept in a file:
YAML or JSON, one ``source: name[:type]`` per entry (``source`` a CSV column, a JSON member or an
XDM path)::

    person.name.firstName: first_name
    loyalty.tier: tier
    ltv: lifetime_value:number

Both may be given: the options' sources come first. Errors name the file and the entry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from audience_sync.attribute_mapping import AttributeSource
from inbound_common.cli import option


def add_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    option(parser, "--attribute", action="append", metavar="SOURCE[:TYPE][=NAME]",
           help=f"{what} -> profile attribute (repeatable; docs/personalization.md)")  # fmt: skip
    option(parser, "--attribute-map", metavar="FILE",
           help="the --attribute mapping in a YAML or JSON file: {source: name[:type]}")  # fmt: skip


def time_field_argument(parser: argparse.ArgumentParser, *, fallback: str, aliases: tuple[str, ...] = ()) -> None:
    """``--attribute-time-field`` (``args.time_column``): where a line or pushed object holds the event time of its
    attributes; ``fallback`` says what counts where it names nothing (docs/audience-sync.md, event times)."""
    what = "--attribute: the event time of a line's or object's attributes: a CSV column, JSON member or dotted path"
    option(parser, "--attribute-time-field", *aliases, dest="time_column", metavar="FIELD",
           help=f"{what} (ISO 8601 or epoch seconds); where absent or empty: {fallback}")  # fmt: skip


def read_map(path: str) -> list[AttributeSource]:
    """The sources of a mapping file; ValueError naming the file and the bad entry."""
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # YAML reads JSON too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the attribute map: {exc}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"{path}: expected a mapping of source: name[:type]")
    sources = []
    for source, target in mapping.items():
        if not isinstance(source, str) or not isinstance(target, str):
            raise ValueError(f"{path}: {source!r}: expected 'source: name[:type]' (text on both sides)")
        name, _, type_name = target.partition(":")
        try:
            sources.append(AttributeSource.of(source, type_name or "string", name, spec=f"{source}: {target}"))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return sources


def sources_of(args: argparse.Namespace) -> list[AttributeSource]:
    """The sources of ``--attribute`` and ``--attribute-map``; ValueError saying which is wrong."""
    sources = [AttributeSource.parse(spec) for spec in args.attribute or ()]
    if args.attribute_map:
        sources += read_map(args.attribute_map)
    names = [s.name for s in sources]
    if duplicated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"attribute {duplicated[0]!r} is mapped from more than one source")
    return sources
