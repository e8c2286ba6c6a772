"""The operating commands: ``decision rules publish|rollback|list`` and ``decision simulate``.

Registered on the ``decision`` command by :func:`decision.cli.main.build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from decision.cli.audit import audit_json, cmd_rules_diff, default_author
from decision.cli.options import add_json, add_redis_options, emit, fail, parse_context
from decision.cli.redis_access import client, lint_warnings, need_redis, redis_failure, run_control
from decision.rules.errors import RulesetInvalid
from decision.rules.types import utc_iso
from inbound_common.cli import Exit, option, positive, share
from inbound_common.keys import KeySpace


def add_commands(commands: Any) -> None:
    """Register ``rules`` and ``simulate`` on the ``decision`` command's subparsers."""
    rules = commands.add_parser("rules", help="publish rulesets to every server through Redis, roll back, list")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    publish = rules_commands.add_parser("publish", help="validate a ruleset, store it as a new version, activate it")
    publish.add_argument("rules", help="ruleset YAML file")
    option(publish, "--author", help="who publishes it, recorded with the version (default: the OS user)")
    add_redis_options(publish)
    add_json(publish, "the published version")
    publish.set_defaults(func=cmd_rules_publish)
    rollback = rules_commands.add_parser("rollback", help="activate a published version again")
    rollback.add_argument("version", nargs="?", help="version name (default: the one published before the active one)")
    add_redis_options(rollback)
    rollback.set_defaults(func=cmd_rules_rollback)
    listing = rules_commands.add_parser("list", help="the published versions and the active one")
    add_redis_options(listing)
    add_json(listing, "the versions")
    listing.set_defaults(func=cmd_rules_list)
    diff = rules_commands.add_parser(
        "diff", help="offers and placements added, removed or changed (which fields) between two rulesets"
    )
    diff.add_argument("old", metavar="A", help="a ruleset file, or a published version name")
    diff.add_argument("new", metavar="B", help="a ruleset file, or a published version name")
    add_redis_options(diff)
    add_json(diff, "the changes")
    diff.set_defaults(func=cmd_rules_diff)

    simulate = commands.add_parser("simulate", help="run a sample of profiles through a ruleset offline")
    simulate.add_argument("rules", nargs="?", help="ruleset YAML file (not with --compare)")
    option(
        simulate,
        "--compare",
        nargs=2,
        metavar=("OLD", "NEW"),
        help="which placements' winners NEW changes from OLD, on the same profiles",
    )
    option(
        simulate,
        "--fail-on-change",
        type=share,
        metavar="RATIO",
        help="with --compare: exit 1 if more than this share (0 to 1) of decisions changed (CI)",
    )
    source = simulate.add_mutually_exclusive_group(required=True)
    option(source, "--profiles", metavar="SAMPLE.ndjson", help='lines of {"profile", "audiences", "context"}')
    option(source, "--from-redis", type=positive, metavar="N", help="a sample of N profiles read from Redis (SCAN)")
    add_redis_options(simulate)
    option(
        simulate,
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context for every profile (repeatable)",
    )
    option(simulate, "--at", metavar="ISO8601", help="decide at this time, for schedules (default: now)")
    option(simulate, "--chart", default="simulation.html", metavar="HTML", help="HTML chart of winners per placement")
    add_json(simulate, "the results")
    simulate.set_defaults(func=cmd_simulate)


# -- rules ------------------------------------------------------------------


def cmd_rules_publish(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.rulesets import (
        PublishError,
        VersionConflict,
        change_summary,
        parse_checked,
        publish,
        read_rules_file,
    )
    from decision.store.connect import StoreError

    if not need_redis(args, "rules publish"):
        return Exit.USAGE
    try:
        data = read_rules_file(args.rules)
        ruleset, _ = parse_checked(data, args.rules)
        author = args.author or default_author()
        activation = run_control(args, lambda store: publish(store, data, args.rules, author=author))
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision rules publish: refused, the ruleset is invalid; nothing was published", file=sys.stderr)
        return Exit.INVALID
    except VersionConflict as exc:
        return fail("rules publish", f"refused: {exc}", Exit.CONFLICT)
    except PublishError as exc:
        return fail("rules publish", f"refused: {exc}", Exit.INVALID)
    except StoreError as exc:
        return redis_failure("rules publish", exc)
    warnings = [*activation.warnings, *lint_warnings(ruleset, args.redis_url, args.key_prefix)]
    for problem in warnings:
        print(problem, file=sys.stderr)
    entry = activation.entry
    if args.json:
        body = {
            "version": entry.version,
            "seq": entry.seq,
            "sha256": entry.sha256,
            "changed": activation.changed,
            "servers_notified": activation.receivers,
            "warnings": [str(p) for p in warnings],
            **audit_json(entry),
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    elif activation.changed:
        print(
            f"published {entry.version} (#{entry.seq}, sha256 {entry.sha256[:12]}): active; "
            f"{activation.receivers} server process(es) notified"
        )
        print(f"by {entry.author or '?'}: {change_summary(entry)}")
    else:
        print(f"{entry.version} (#{entry.seq}) is already the active ruleset: nothing changed")
    return 0


def cmd_rules_rollback(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.rulesets import PublishError, rollback
    from decision.store.connect import StoreError

    if not need_redis(args, "rules rollback"):
        return Exit.USAGE
    try:
        activation = run_control(args, lambda store: rollback(store, args.version))
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision rules rollback: refused, that version no longer validates", file=sys.stderr)
        return Exit.INVALID
    except PublishError as exc:
        print(f"decision rules rollback: {exc}", file=sys.stderr)
        return Exit.INVALID
    except StoreError as exc:
        return redis_failure("rules rollback", exc)
    entry = activation.entry
    if activation.changed:
        print(
            f"rolled back to {entry.version} (#{entry.seq}): active; {activation.receivers} server process(es) notified"
        )
    else:
        print(f"{entry.version} (#{entry.seq}) is already the active ruleset: nothing changed")
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.rulesets import change_summary, listing
    from decision.store.connect import StoreError

    if not need_redis(args, "rules list"):
        return Exit.USAGE
    try:
        versions, pointer = run_control(args, listing)
    except StoreError as exc:
        return redis_failure("rules list", exc)
    active = pointer.version if pointer is not None else None
    if args.json:
        body = {
            "active": None if pointer is None else {"version": pointer.version, "at": pointer.activated_at},
            "versions": [
                {
                    "version": e.version,
                    "seq": e.seq,
                    "sha256": e.sha256,
                    "published_at": e.published_at,
                    "source": e.source,
                    **audit_json(e),
                }
                for e in versions
            ],
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not versions:
        print("nothing published yet (decision rules publish RULES)")
        return 0
    width = max(len(e.version) for e in versions)
    by = max(len("author"), *(len(e.author or "-") for e in versions))
    src = max(len("source"), *(len(e.source) for e in versions))
    print(
        f"  {'#':>4}  {'version':<{width}}  {'published (UTC)':<20}  {'sha256':<12}  {'author':<{by}}  "
        f"{'source':<{src}}  changes"
    )
    for e in versions:
        mark = "*" if e.version == active else " "
        print(
            f"{mark} {e.seq:>4}  {e.version:<{width}}  {utc_iso(e.published_at, 'seconds'):<20}  {e.sha256[:12]}  "
            f"{e.author or '-':<{by}}  {e.source:<{src}}  {change_summary(e)}"
        )
    if pointer is not None:
        print(f"active: {pointer.version} (by {pointer.action or '?'} at {utc_iso(pointer.activated_at, 'seconds')})")
    return 0


# -- simulate -----------------------------------------------------------------


def _sample_from_redis(args: argparse.Namespace, now: float) -> list[Any]:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.samples import sample_profiles

    async def main() -> list[Any]:
        redis = client(args)
        try:
            return await sample_profiles(redis, KeySpace(args.key_prefix), args.from_redis, now)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def _with_context(profiles: Any, context: dict[str, Any]) -> Iterator[Any]:
    for profile in profiles:
        yield dataclasses.replace(profile, context={**context, **profile.context}) if context else profile


def cmd_simulate(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): the rule engine ~70 ms, redis-py ~120 ms
    from decision.cli.report_html import render
    from decision.cli.simulate import read_ndjson
    from decision.core.simulation import SampleError, profile_from_json, simulate
    from decision.service.active import load_compiled
    from decision.store.connect import StoreError

    try:
        now = datetime.fromisoformat(args.at).timestamp() if args.at else time.time()
        extra = profile_from_json({"profile": "-", "context": parse_context(args.context)}, "--context").context
    except ValueError as exc:
        print(f"decision simulate: {exc}", file=sys.stderr)
        return Exit.USAGE
    if (args.rules is None) == (args.compare is None) or (args.fail_on_change is not None and not args.compare):
        return fail("simulate", "give a ruleset file, or --compare OLD NEW (--fail-on-change with it)", Exit.USAGE)
    try:
        compiled = [load_compiled(path) for path in (args.compare or [args.rules])]
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision simulate: the ruleset is invalid", file=sys.stderr)
        return Exit.INVALID
    try:
        if args.from_redis is not None:
            if not need_redis(args, "simulate --from-redis"):
                return Exit.USAGE
            profiles: Any = _sample_from_redis(args, now)
        else:
            profiles = read_ndjson(args.profiles)
        if args.compare:
            from decision.core.comparison import compare

            compared = compare(compiled[0], compiled[1], _with_context(profiles, dict(extra)), now)
        else:
            result = simulate(compiled[0], _with_context(profiles, dict(extra)), now)
    except (SampleError, OSError) as exc:
        print(f"decision simulate: {exc}", file=sys.stderr)
        return Exit.INVALID
    except StoreError as exc:
        return redis_failure("simulate", exc)
    if args.compare:
        return _report_comparison(args, compared)
    emit(args.json, result.to_json, lambda: format_simulation(result), ("chart", args.chart, lambda: render(result)))
    return 0


def _report_comparison(args: argparse.Namespace, compared: Any) -> int:
    # lazy, start-up (loadtest.startup): the rule engine ~70 ms
    from decision.cli.compare import format_comparison

    emit(args.json, compared.to_json, lambda: format_comparison(compared))
    if args.fail_on_change is not None and compared.share > args.fail_on_change:
        message = f"{100 * compared.share:.1f}% of decisions changed, above --fail-on-change {args.fail_on_change:g}"
        return fail("simulate", message, Exit.INVALID)
    return 0


def format_simulation(result: Any) -> str:
    total = result.profiles - len(result.skipped)
    lines = [
        f"ruleset {result.ruleset_version}: {result.profiles} profiles"
        + (f" ({len(result.skipped)} skipped: context rejected)" if result.skipped else "")
        + f", decided at {utc_iso(result.now, 'seconds')}",
        "",
        f"{'offer':<28} {'prio':>6} {'eligible':>9} {'':>6}  wins by placement",
    ]
    for o in result.offers.values():
        share = f"{100 * o.eligible / total:.1f}%" if total else "-"
        won = ", ".join(f"{placement} {count}" for placement, count in o.wins.items()) or "-"
        if o.served_as_fallback:
            won += f" (+{o.served_as_fallback} as fallback)"
        lines.append(f"{o.offer_id:<28} {o.priority:>6} {o.eligible:>9} {share:>6}  {won}")
    lines += ["", f"{'placement':<28} {'decisions':>9} {'fallback':>9}"]
    for p in result.placements.values():
        lines.append(f"{p.placement_id:<28} {p.decisions:>9} {100 * p.fallback_share:>8.1f}%")
    never = result.never_win()
    if never:
        lines += ["", "never win:"] + [f"  {n.describe()}" for n in never]
    for skipped in result.skipped[:5]:
        lines.append(f"skipped {skipped}")
    return "\n".join(lines)
