"""``audience-sync stream``: membership events from a Redis Stream, as a member of a consumer group."""

from __future__ import annotations

import argparse
import signal
import socket
from types import FrameType
from typing import Any

from audience_sync.cli.options import (
    add_batch_size,
    add_id_column,
    add_rejects,
    add_show_errors,
    progress_factory,
    rejects,
    store,
)
from audience_sync.report import ErrorReport
from audience_sync.stream import StreamConsumer, StreamOptions, StreamOutcome
from inbound_common.cli import Exit, count, option, positive


def run(args: argparse.Namespace) -> int:
    sync = store(args)
    stream_key = args.stream or sync.keys.audience_events
    options = StreamOptions(
        stream=stream_key,
        group=args.group,
        consumer=args.consumer or socket.gethostname(),
        batch_size=args.batch_size,
        block_ms=args.block_ms,
        claim_idle_ms=args.claim_idle_ms,
        start_id=args.start_id,
        drain=args.drain,
        id_field=args.id_column,
    )
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    progress = progress_factory(args)(f"stream {stream_key}", None, lambda: 0)

    def on_batch(outcome: StreamOutcome) -> None:
        progress.update(outcome.entries)

    with rejects(args.rejects) as rejected:
        report = ErrorReport(show=args.show_errors, rejects=rejected)
        consumer = StreamConsumer(sync, options, report, on_batch=on_batch)
        outcome = consumer.run(lambda: stopping)
    progress.finish()
    t = outcome.tally
    print(
        f"stream {stream_key} group {options.group} consumer {options.consumer}: {outcome.entries:,} entries, "
        f"{outcome.bad:,} bad; added {t.added:,}, removed {t.removed:,}, unchanged {t.unchanged:,}, "
        f"stale {t.stale:,}, expired {t.expired:,}; attribute values written {outcome.attributes.written:,}, "
        f"unchanged {outcome.attributes.unchanged:,}, stale {outcome.attributes.stale:,}"
    )
    return Exit.OK


def add_command(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("stream", parents=[common],
                                 help="consume membership events from a Redis Stream (consumer group)")  # fmt: skip
    option(parser, "--stream", help="stream key (none: <prefix>:audience-events)")
    option(parser, "--group", default="audience-sync", help="consumer group")
    option(parser, "--consumer", help="consumer name (none: the host name, so a restart resumes its entries)")
    add_batch_size(parser, 1000, "entries per read")
    option(parser, "--block-ms", type=positive, default=2000, help="how long one read waits for entries")
    option(parser, "--claim-idle-ms", type=count, default=60_000, help="claim others' entries idle this long")
    option(parser, "--start-id", default="0", help="where a new group starts: 0 (all) or $ (new entries)")
    option(parser, "--drain", action="store_true", help="exit when nothing is left to read")
    add_id_column(parser, "entry field")
    add_rejects(parser, "entry")
    add_show_errors(parser, "entries")
    parser.set_defaults(func=run)
