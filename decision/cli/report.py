"""``decision report``: what each offer and experiment variant achieved, from the outcome counters in Redis.

Table (default), ``--json``, and ``--html FILE`` (self-contained, inline SVG:
decision/cli/outcomes_html.py). Days are those of the outcome counters (the
ruleset's time zone), ``--from`` and ``--to`` included. Beside the fixed-horizon
figures, always-valid confidence sequences and the "can we stop?" verdict
(decision.core.report), and the current allocation of the learned rankings and
auto experiments of the active ruleset, from the counts the servers read
(decision.service.learning ``wanted``) and their own draws (decision.core.allocation):
read by decision.service.reporting, which the console's Offers page reads too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from decision.cli.options import add_json, add_redis_options, emit, fail
from decision.cli.outcomes_text import format_report
from decision.cli.redis_access import need_redis, redis_failure, run_control
from decision.core.report import DEFAULT_MIN_LIFT, days_between, metric_of
from decision.core.stats import DEFAULT_TUNING
from decision.rules.errors import RulesetInvalid
from decision.rules.types import CLICK
from inbound_common.cli import Exit, option, share


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


def exposures(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): YAML ~40 ms, redis-py ~120 ms, the HTML report ~70 ms
    from decision.rules.loader import load_file
    from decision.service.reporting import ReportRequest, read_report
    from decision.store.connect import StoreError

    if not need_redis(args, "report"):
        return int(Exit.USAGE)
    try:
        request = ReportRequest(
            days_between(args.first, args.last or args.first), args.ruleset_version, metric_of(args.metric),
            tuning=args.sequential_tuning, min_lift=args.min_lift,
        )  # fmt: skip
    except ValueError as exc:
        return fail("report", str(exc), Exit.USAGE)
    try:
        given = [load_file(path) for path in args.rules]
        report = run_control(args, lambda control: read_report(control, request, given))
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision report: a ruleset given with --rules is invalid", file=sys.stderr)
        return int(Exit.INVALID)
    except StoreError as exc:
        return redis_failure("report", exc)
    from decision.present.outcomes_html import render

    emit(args.json, report.to_json, lambda: format_report(report), ("html", args.html, lambda: render(report)))
    return 0
