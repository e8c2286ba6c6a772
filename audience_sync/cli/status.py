"""``audience-sync status``: the audience registry as a table (or JSON)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from audience_sync.cli.options import add_json, emit, store
from audience_sync.status import rows, table
from inbound_common.cli import Exit


def run(args: argparse.Namespace) -> int:
    state = store(args).registry_state()
    now = time.time()
    if args.json:
        emit({"command": "status", "ok": True, "version": state.version,
              "audiences": rows(state, now, args.stale_after)})  # fmt: skip
    else:
        print(table(state, now, args.stale_after))
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("status", parents=[common], help="the audience registry as a table")
    add_json(parser, "the registry")
    parser.set_defaults(func=run)
