"""``decision report``: what each offer and experiment variant achieved, from the outcome counters in Redis.

Table (default), ``--json``, and ``--html FILE`` (self-contained, inline SVG:
decision/cli/outcomes_html.py). Days are those of the outcome counters (the
ruleset's time zone), ``--from`` and ``--to`` included. Beside the fixed-horizon
figures, always-valid confidence sequences and the "can we stop?" verdict
(decision.core.report), and the current allocation of the learned rankings and
auto experiments of the active ruleset, from the counts the servers read
(decision.service.learning ``wanted``) and their own draws (decision.core.allocation).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from datetime import date, timedelta
from typing import Any

from decision.cli.options import add_json, add_redis_options, emit, fail
from decision.cli.outcomes_text import format_report
from decision.cli.redis_access import client, need_redis, redis_failure
from decision.core.allocation import current
from decision.core.learning import Rates
from decision.core.outcomes import OutcomeRow
from decision.core.report import DEFAULT_MIN_LIFT, build
from decision.core.stats import DEFAULT_TUNING
from decision.rules.errors import RulesetInvalid
from decision.rules.patterns import ID_PATTERN
from decision.rules.types import CLICK, CUSTOM_PREFIX, Experiment, Ruleset
from inbound_common.cli import Exit, option, share
from inbound_common.keys import KeySpace

MAX_DAYS = 400


def add_command(commands: Any) -> None:
    report = commands.add_parser("report", help="what each offer and experiment variant achieved (outcome counters)")
    option(report, "--from", dest="first", required=True, metavar="YYYY-MM-DD", help="first day (included)")
    option(report, "--to", dest="last", metavar="YYYY-MM-DD", help="last day, included (default: --from)")
    option(report, "--ruleset-version", help="only what this ruleset version proposed (default: all)")
    option(
        report,
        "--metric",
        default=CLICK,
        help="experiments' conversion: click, impression, dismiss or a custom event type",
    )
    option(
        report,
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="ruleset file for the experiments' weights, repeatable (default: the published rulesets)",
    )
    option(
        report,
        "--min-lift",
        type=share,
        default=DEFAULT_MIN_LIFT,
        metavar="RATIO",
        help="the stop rule's smallest relative lift worth having: a variant whose always-valid lift interval lies "
        "within ±RATIO is no different",
    )
    option(
        report,
        "--sequential-tuning",
        type=exposures,
        default=DEFAULT_TUNING,
        metavar="N",
        help="exposures (both groups) at which the always-valid intervals are narrowest",
    )
    add_json(report, "the report")
    option(report, "--html", metavar="FILE", help="also write a self-contained HTML report with charts")
    add_redis_options(report)
    report.set_defaults(func=cmd_report)


def days_between(first: str, last: str) -> tuple[str, ...]:
    """Every day from ``first`` to ``last`` (ISO dates, included). ValueError naming the option."""
    try:
        start = date.fromisoformat(first)
    except ValueError:
        raise ValueError(f"--from: {first!r} is not a date (YYYY-MM-DD)") from None
    try:
        end = date.fromisoformat(last)
    except ValueError:
        raise ValueError(f"--to: {last!r} is not a date (YYYY-MM-DD)") from None
    if end < start:
        raise ValueError(f"--to: {last} is before --from {first}")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"--to: at most {MAX_DAYS} days in one report")
    return tuple((start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1))


def exposures(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def metric_of(text: str) -> str:
    if text in ("click", "impression", "dismiss"):
        return text
    name = text.removeprefix(CUSTOM_PREFIX)
    if not ID_PATTERN.fullmatch(name):
        raise ValueError(f"--metric: {text!r} is neither click, impression, dismiss nor a custom event type")
    return CUSTOM_PREFIX + name


def experiments_of(rulesets: list[Ruleset]) -> dict[str, Experiment]:
    """Experiment id -> its definition; a later ruleset's wins."""
    found: dict[str, Experiment] = {}
    for ruleset in rulesets:
        for experiment in (
            *(p.experiment for p in ruleset.placements.values()),
            *(o.experiment for o in ruleset.offers.values()),
        ):
            if experiment is not None:
                found[experiment.id] = experiment
    return found


async def _gather(
    args: argparse.Namespace, days: tuple[str, ...]
) -> tuple[list[Any], list[Ruleset], Ruleset | None, Rates]:
    """The rows of the days, the rulesets (experiments' weights) and, for the allocation, the counts the servers
    read for the active ruleset (the last ``--rules`` file) now."""
    # lazy, start-up (loadtest.startup): YAML ~40 ms, redis-py ~120 ms
    from decision.rules.loader import load_file, parse
    from decision.service.learning import wanted
    from decision.store.control import ControlStore
    from decision.store.outcomes import scan_outcomes

    keys = KeySpace(args.key_prefix)
    control = ControlStore(client(args), keys)
    try:
        rows = await scan_outcomes(control.client, keys, set(days))
        rulesets = [load_file(path) for path in args.rules]
        active = rulesets[-1] if rulesets else None
        if not rulesets:
            pointer = await control.active()
            for entry in await control.versions():
                chosen = args.ruleset_version is None or entry.version == args.ruleset_version
                serving = pointer is not None and pointer.version == entry.version
                if chosen or serving:
                    ruleset, _ = parse(entry.text.encode(), entry.source or entry.version)
                    if ruleset is not None and chosen:
                        rulesets.append(ruleset)
                    active = ruleset if serving else active
        learned: list[OutcomeRow] = []
        if active is not None:
            needed = wanted(active, time.time())
            if needed:
                read = await scan_outcomes(control.client, keys, {day for _, day in needed})
                learned = [row for row in read if (row.offer_id, row.day) in needed]
        return rows, rulesets, active, Rates.of(learned)
    finally:
        await control.close()


def cmd_report(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms, the HTML report ~80 ms
    from decision.store.connect import StoreError

    if not need_redis(args, "report"):
        return int(Exit.USAGE)
    try:
        days = days_between(args.first, args.last or args.first)
        metric = metric_of(args.metric)
    except ValueError as exc:
        return fail("report", str(exc), Exit.USAGE)
    try:
        rows, rulesets, active, rates = asyncio.run(_gather(args, days))
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision report: a ruleset given with --rules is invalid", file=sys.stderr)
        return int(Exit.INVALID)
    except StoreError as exc:
        return redis_failure("report", exc)
    report = build(rows, days, version=args.ruleset_version, metric=metric, experiments=experiments_of(rulesets),
                   tuning=args.sequential_tuning, min_lift=args.min_lift)  # fmt: skip
    if active is not None:
        report = dataclasses.replace(report, allocations=current(active, rates))
    from decision.cli.outcomes_html import render

    emit(args.json, report.to_json, lambda: format_report(report), ("html", args.html, lambda: render(report)))
    return 0
