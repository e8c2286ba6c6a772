"""``decision schema``: the rule language's JSON Schema, for editors (docs/rules.schema.json is its output)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson


def schema_text() -> str:
    """The schema as committed under docs/: indented JSON and a final newline."""
    # lazy, start-up (loadtest.startup): the JSON schema ~40 ms
    from decision.rules.schema import rules_schema

    return orjson.dumps(rules_schema(), option=orjson.OPT_INDENT_2).decode() + "\n"


def cmd_schema(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return 0


def add_schema_command(commands: Any) -> None:
    schema = commands.add_parser(
        "schema", help="print the JSON Schema of ruleset files (for editors; docs/rules.schema.json)"
    )
    schema.set_defaults(func=cmd_schema)
