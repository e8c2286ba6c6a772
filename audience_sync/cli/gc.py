"""``audience-sync gc``: delete the membership fields of generations no longer served."""

from __future__ import annotations

import argparse
from typing import Any

from audience_sync.cli.options import add_batch_size, add_dry_run, progress_factory, store
from audience_sync.gc import GcOutcome, collect
from inbound_common.cli import Exit, option, seconds


def run(args: argparse.Namespace) -> int:
    progress = progress_factory(args)("gc", None, lambda: 0)

    def on_batch(outcome: GcOutcome) -> None:
        progress.update(outcome.keys_scanned)

    outcome = collect(
        store(args),
        batch_size=args.batch_size,
        grace=args.grace,
        stale_after=args.stale_after,
        dry_run=args.dry_run,
        on_batch=on_batch,
    )
    progress.finish()
    verb, dropped = ("would delete", "would drop") if args.dry_run else ("deleted", "dropped")
    dead = f": {', '.join(outcome.dead_loads)}" if outcome.dead_loads else ""
    print(
        f"gc: scanned {outcome.keys_scanned:,} profiles, {verb} {outcome.fields_deleted:,} stale fields in "
        f"{outcome.keys_touched:,} of them; {dropped} {outcome.pending_dropped} dead snapshot record(s){dead}"
    )
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("gc", parents=[common], help="delete membership fields of generations no longer "
                                 "served")  # fmt: skip
    add_batch_size(parser, 500, "profiles per SCAN step")
    option(parser, "--grace", type=seconds, default=60.0, metavar="SECONDS",
           help="seconds the replaced generation is kept after a cutover")  # fmt: skip
    add_dry_run(parser, "count")
    parser.set_defaults(func=run)
