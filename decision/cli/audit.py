"""Who published what: ``decision rules diff A B``, and the author and change summary of ``rules publish|list``."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

import orjson

from decision.cli.redis_access import redis_failure, run_control
from decision.rules.diff import diff
from decision.rules.errors import RulesetInvalid
from decision.rules.types import Ruleset
from inbound_common.cli import Exit
from inbound_common.codecs import PublishedRuleset


def default_author() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container's)
        return "unknown"


def audit_json(entry: PublishedRuleset) -> dict[str, Any]:
    """The audit members of a version in ``rules list --json``."""
    return {"author": entry.author or None, "previous": entry.previous or None, "changes": entry.changes}


# -- rules diff ---------------------------------------------------------------


class _Unresolved(Exception):
    pass


def _published(args: argparse.Namespace, names: list[str]) -> dict[str, PublishedRuleset]:
    async def read(store: Any) -> dict[str, PublishedRuleset]:
        found = {}
        for name in names:
            entry = await store.version(name)
            if entry is None:
                raise _Unresolved(f"{name}: neither a file nor a published version")
            found[name] = entry
        return found

    return run_control(args, read)


def _rulesets(args: argparse.Namespace) -> list[Ruleset]:
    """A and B: files where such files exist, else published versions (read from --redis-url)."""
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.service.rulesets import parse_checked, read_rules_file

    names = [args.old, args.new]
    versions = [name for name in names if not Path(name).is_file()]
    if versions and not args.redis_url:
        raise _Unresolved(f"{versions[0]}: no such file (for a published version, give --redis-url)")
    published = _published(args, versions) if versions else {}
    result = []
    for name in names:
        if name in published:
            entry = published[name]
            result.append(parse_checked(entry.text.encode(), f"{entry.source or 'published'} (published {name})")[0])
        else:
            result.append(parse_checked(read_rules_file(name), name)[0])
    return result


def cmd_rules_diff(args: argparse.Namespace) -> int:
    # lazy, start-up (loadtest.startup): redis-py ~120 ms
    from decision.store.connect import StoreError

    try:
        old, new = _rulesets(args)
    except _Unresolved as exc:
        print(f"decision rules diff: {exc}", file=sys.stderr)
        return Exit.USAGE
    except RulesetInvalid as exc:
        print(f"{exc}\ndecision rules diff: the ruleset is invalid", file=sys.stderr)
        return Exit.INVALID
    except StoreError as exc:
        return redis_failure("rules diff", exc)
    changes = diff(old, new)
    if args.json:
        body = {"old": old.version, "new": new.version, "changes": changes.to_json(), "summary": changes.summary()}
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{old.version} -> {new.version}: {changes.summary()}")
    for line in changes.lines():
        print(f"  {line}")
    return 0
