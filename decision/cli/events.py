"""``decision events``: send feedback events to a running server (RecordEvents), from flags or an NDJSON file.

A file holds one event per line, in the API's JSON form (``docs/api.md``):
``{"event_id": "e1", "profile_id": "p1", "type": "click", "tracking_token": "...", "timestamp": "..."}``
(camelCase names too; ``type`` also as ``EVENT_TYPE_CLICK``). A missing ``event_id`` is generated and a
missing ``timestamp`` is now. Events are sent in batches of at most the API's limit per call.

Exit status: 0 every event recorded or a duplicate, 1 some rejected (or the call refused), or a file that
cannot be read or holds a bad line (nothing sent), 2 bad options (nothing sent), 3 the server or its Redis
unavailable (the events before were recorded; a retry with the same event ids is safe: they come back
DUPLICATE).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson

from decision.cli.client import add_client_options
from decision.cli.ndjson import values
from decision.cli.options import add_json, fail
from inbound_common.cli import Exit, option

TYPES = ("impression", "display", "click", "interact", "dismiss", "custom")


class EventsInputError(ValueError):
    """A bad flag or line: ``where: why``."""


def _event_type(value: object, where: str) -> int:
    # lazy, start-up (loadtest.startup): protobuf ~30 ms
    from decision.v1 import decision_pb2

    short = str(value).removeprefix("EVENT_TYPE_").lower()
    if short not in TYPES:
        raise EventsInputError(f"{where}: unknown event type {value!r} (expected one of: {', '.join(TYPES)})")
    return int(decision_pb2.EventType.Value("EVENT_TYPE_" + short.upper()))


def _timestamp(text: str | None, where: str) -> float:
    if text is None:
        return time.time()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EventsInputError(f"{where}: invalid ISO 8601 timestamp {text!r}") from None
    if moment.tzinfo is None:
        raise EventsInputError(f"{where}: timestamp {text!r} needs a time zone (e.g. Z or +01:00)")
    return moment.timestamp()


def new_event_id() -> str:
    return uuid.uuid4().hex


def event_message(
    *,
    profile_id: str,
    type_name: object,
    tracking_token: str,
    event_id: str | None = None,
    custom_type: str = "",
    at: str | None = None,
    where: str = "",
) -> Any:
    """An ``Event`` message; the server validates the rest (and says which field is wrong)."""
    # lazy, start-up (loadtest.startup): protobuf ~30 ms
    from google.protobuf.timestamp_pb2 import Timestamp

    from decision.v1 import decision_pb2

    stamp = Timestamp()
    moment = _timestamp(at, f"{where}timestamp" if where else "--at")
    stamp.FromNanoseconds(int(moment * 1e9))
    return decision_pb2.Event(
        event_id=event_id or new_event_id(),
        profile_id=profile_id,
        type=_event_type(type_name, f"{where}type" if where else "--type"),  # type: ignore[arg-type]
        custom_type=custom_type,
        tracking_token=tracking_token,
        timestamp=stamp,
    )


_FIELDS = {
    "event_id": "event_id",
    "eventId": "event_id",
    "profile_id": "profile_id",
    "profileId": "profile_id",
    "type": "type",
    "custom_type": "custom_type",
    "customType": "custom_type",
    "tracking_token": "tracking_token",
    "trackingToken": "tracking_token",
    "timestamp": "timestamp",
}


def event_from_json(body: object, where: str) -> Any:
    """One line of an events file as an ``Event`` message; ``where`` (``file:line: ``) prefixes errors."""
    if not isinstance(body, dict):
        raise EventsInputError(f"{where}an event is a JSON object")
    fields: dict[str, str] = {}
    for key, value in body.items():
        name = _FIELDS.get(key)
        if name is None:
            raise EventsInputError(f"{where}{key}: unknown field (expected one of: {', '.join(sorted(_FIELDS))})")
        if not isinstance(value, str):
            raise EventsInputError(f"{where}{key}: must be a string, got {orjson.dumps(value).decode()}")
        fields[name] = value
    for required in ("profile_id", "type", "tracking_token"):
        if required not in fields:
            raise EventsInputError(f"{where}{required}: required field is missing")
    return event_message(
        profile_id=fields["profile_id"],
        type_name=fields["type"],
        tracking_token=fields["tracking_token"],
        event_id=fields.get("event_id"),
        custom_type=fields.get("custom_type", ""),
        at=fields.get("timestamp"),
        where=where,
    )


def read_ndjson(path: str) -> list[Any]:
    """Every event of the file, or EventsInputError naming ``file:line``: nothing is sent from a bad file."""
    try:
        events = [event_from_json(body, f"{line}: ") for line, body in values(path, EventsInputError)]
    except OSError as exc:
        raise EventsInputError(f"{path}: cannot read: {exc.strerror}") from None
    if not events:
        raise EventsInputError(f"{path}: no events")
    return events


def batches(events: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def _outcome(value: int) -> str:
    # lazy, start-up (loadtest.startup): protobuf ~30 ms
    from decision.v1 import decision_pb2

    return decision_pb2.EventOutcome.Name(value).removeprefix("EVENT_OUTCOME_")


def cmd_events(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): gRPC ~50 ms, redis-py ~120 ms, protobuf ~30 ms
    import grpc

    from decision.cli.client import call_metadata, client_channel, rpc_failure
    from decision.service.events import MAX_EVENTS_PER_CALL
    from decision.v1 import decision_pb2, decision_pb2_grpc

    try:
        events = read_ndjson(args.file) if args.file is not None else []
    except EventsInputError as exc:  # the file is input refused (as validate's rules, simulate's samples)
        return fail("events", str(exc), Exit.INVALID)
    try:
        if args.file is None:
            missing = [flag for flag, value in (("--profile", args.profile), ("--type", args.type)) if not value]
            if args.tracking_token is None:
                missing.append("--token")
            if missing:
                raise EventsInputError(f"{', '.join(missing)} required (or --file EVENTS.ndjson)")
            events = [
                event_message(
                    profile_id=args.profile,
                    type_name=args.type,
                    tracking_token=args.tracking_token,
                    event_id=args.event_id,
                    custom_type=args.custom_type or "",
                    at=args.at,
                )
            ]
        channel = client_channel(args)
    except ValueError as exc:  # EventsInputError of the flags too
        return fail("events", str(exc), Exit.USAGE)
    results: list[Any] = []
    status = 0
    with channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        for batch in batches(events, MAX_EVENTS_PER_CALL):
            request = decision_pb2.RecordEventsRequest(events=list(batch))
            try:
                response = stub.RecordEvents(request, timeout=args.deadline_ms / 1000, metadata=call_metadata(args))
            except grpc.RpcError as exc:
                status = rpc_failure("events", exc, args.target)
                print(
                    f"decision events: {len(events) - len(results)} event(s) not sent or not recorded (UNSENT): "
                    "retry them with the same event ids",
                    file=sys.stderr,
                )
                break
            results.extend(response.results)
    rejected = sum(1 for r in results if r.outcome == decision_pb2.EVENT_OUTCOME_REJECTED)
    # Ids of the events without a result (generated ones included): a retry must reuse them to count once.
    unsent = [e.event_id for e in events[len(results) :]]
    if args.json:
        body = {
            "results": [
                {"event_id": r.event_id, "outcome": _outcome(r.outcome).lower(), "reason": r.reason} for r in results
            ],
            "unsent": unsent,
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        for r in results:
            print(f"{_outcome(r.outcome):<9}  {r.event_id}" + (f"  {r.reason}" if r.reason else ""))
        for event_id in unsent:
            print(f"{'UNSENT':<9}  {event_id}")
    if status == 0 and rejected:
        status = Exit.INVALID
    return status


def add_events_command(commands: Any) -> None:
    events = commands.add_parser(
        "events",
        help="record feedback events on a running server (impression, click, dismiss, custom), from flags or NDJSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    option(events, "--file", metavar="EVENTS.ndjson", help="one event per line (instead of the flags below)")
    option(events, "--profile", help="the profile the item was proposed to")
    option(events, "--type", choices=TYPES, help="what happened")
    option(events, "--token", dest="tracking_token", help="the item's tracking_token, as Decide returned it")
    option(events, "--event-id", help="unique id, for idempotent retries (default: a new random id)")
    option(events, "--custom-type", help="the custom event's name (with --type custom)")
    option(events, "--at", help="when it happened, ISO 8601 with a time zone (default: now)")
    add_json(events, "the results")
    add_client_options(events, old_token_flag=False)
    events.set_defaults(func=cmd_events)
