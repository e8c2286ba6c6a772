"""``decision profile ID``: one profile as Redis holds it, in words (the object: decision.service.inspection).

Its audiences by name with generation and state, its attributes with their event times and which
value decisions read, and its caps and contact policies as the ruleset counts them (``--rules``,
else the published one). Each id is one identity: the layout keeps no link between the ids of one
person (each is a profile of its own), so give every id to see (``decision profile ECID CRMID``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from decision.cli.options import add_json, add_redis_options, fail
from decision.cli.redis_access import need_redis, redis_failure, run_control
from decision.present.profile import (
    attribute_value_text,
    audience_text,
    change_text,
    control_text,
    duration_text,
    generation_text,
    membership_state_text,
    namespaces_text,
    reached_text,
    since_text,
    times_text,
    whose_text,
    writer_text,
)
from decision.rules.errors import RulesetInvalid
from decision.rules.types import utc_iso
from inbound_common.cli import Exit, option

if TYPE_CHECKING:  # imported to run: every command's start would pay for redis-py and the rule engine
    from decision.service.inspection import ProfileView
    from decision.store.control import ControlStore


def add_command(commands: Any) -> None:
    profile = commands.add_parser(
        "profile",
        help="one profile as stored: audiences, attributes, caps and contact-policy counters",
        description="One profile as Redis holds it: its audiences by name with generation and state, its "
        "attributes with their event times, its caps and contact policies as the ruleset counts them. "
        "Each id is one identity: the layout keeps no link between the ids of one person, give each.",
    )
    profile.add_argument("profiles", nargs="+", metavar="PROFILE", help="profile id(s), as audience-sync stored them")
    option(
        profile,
        "--rules",
        metavar="FILE",
        help="count the caps and contact policies with this ruleset (default: the one published to Redis)",
    )
    add_redis_options(profile)
    add_json(profile, "each profile (one object; a list for several ids)")
    profile.set_defaults(func=cmd_profile)


async def _views(args: argparse.Namespace, control: ControlStore, now: float) -> list[ProfileView]:
    # lazy, start-up (loadtest.startup): YAML ~40 ms, redis-py ~120 ms
    from decision.rules.loader import load_file
    from decision.service.inspection import inspect_profile, published_ruleset

    ruleset = load_file(args.rules) if args.rules else await published_ruleset(control)
    return [
        await inspect_profile(control.client, control.keys, profile_id, ruleset=ruleset, now=now)
        for profile_id in dict.fromkeys(args.profiles)
    ]


def cmd_profile(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.store.connect import StoreError

    if not need_redis(args, "profile"):
        return int(Exit.USAGE)
    try:
        now = time.time()
        views = run_control(args, lambda control: _views(args, control, now))
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision profile: the ruleset is invalid: its caps cannot be counted", file=sys.stderr)
        return int(Exit.INVALID)
    except StoreError as exc:
        return redis_failure("profile", exc)
    if args.json:
        bodies = [view.to_json() for view in views]
        print(orjson.dumps(bodies[0] if len(bodies) == 1 else bodies, option=orjson.OPT_INDENT_2).decode())
    elif any(view.stored.found for view in views):
        print("\n\n".join(format_profile(view) for view in views if view.stored.found))
    status = Exit.OK
    for view in views:
        if not view.stored.found:
            said = f"nothing under {args.key_prefix}:m:{{{view.stored.profile_id}}} nor its counters"
            status = Exit(fail("profile", f"no profile {view.stored.profile_id!r} in Redis ({said})", Exit.NOT_FOUND))
    return int(status)


# -- words ----------------------------------------------------------------------


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def format_profile(view: ProfileView) -> str:
    stored = view.stored
    lines = [
        f"profile {stored.profile_id}  (read {utc_iso(stored.read_at, 'seconds')}; keys {', '.join(stored.keys)})",
        "  an id is one identity: the profile's other ids (ECID, CRMID...) are profiles of their own, not linked here",
        f"  ids stored: {namespaces_text(stored.identity_namespaces)}",
        "",
        f"audiences (registry version {stored.registry_version})",
    ]
    if stored.memberships:
        rows = [["AUDIENCE", "GEN", "STATE", "LAST CHANGE"]]
        rows += [
            [audience_text(m), generation_text(m), membership_state_text(m), change_text(m)] for m in stored.memberships
        ]
        lines += _table(rows)
    else:
        lines.append("  none: the profile is in no audience")
    lines += ["", "attributes"]
    if stored.attributes:
        rows = [["NAME", "VALUE", "TYPE", "EVENT TIME", "WRITTEN BY", "STATE"]]
        rows += [
            [
                a.name,
                attribute_value_text(a),
                a.type or "?",
                utc_iso(a.event_time, "seconds") if a.event_time else "-",
                writer_text(a),
                a.state.value,
            ]
            for a in stored.attributes
        ]
        lines += _table(rows)
    else:
        lines.append("  none")
    lines += ["", *_counters(view)]
    return "\n".join(lines)


def _counters(view: ProfileView) -> list[str]:
    stored = view.stored
    expiry = (
        "" if stored.counters_ttl_ms is None else f"; they expire in {duration_text(stored.counters_ttl_ms / 1000)}"
    )
    if view.ruleset_version is None:
        lines = [f"counters (no ruleset given or published: shown as stored{expiry})"]
        lines += [f"  {name}: {times_text(times)}" for name, times in view.unread_counters.items()] or ["  none"]
        return lines + [f"  variant of {e}: {v}" for e, v in view.variants.items()]
    lines = [f"caps and contact policies (ruleset {view.ruleset_version}{expiry})"]
    used = [u for u in view.controls if u.count or u.reached]
    if used:
        rows = [["OFFER / POLICY", "CONTROL", "COUNTED", "SINCE", "STATE"]]
        rows += [
            [whose_text(u), control_text(u), f"{u.count} of {u.limit}", since_text(u), reached_text(u)] for u in used
        ]
        lines += _table(rows)
    idle = len(view.controls) - len(used)
    if idle or not view.controls:
        lines.append(f"  {idle} other(s): nothing counted" if view.controls else "  the ruleset has none")
    lines += [f"  experiment {e}: keeps variant {v!r}" for e, v in sorted(view.variants.items())]
    lines += [
        f"  {name} (not read by this ruleset): {times_text(t)}" for name, t in sorted(view.unread_counters.items())
    ]
    return lines
