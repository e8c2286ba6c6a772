"""Published rulesets: publish, roll back and list them (``decision rules``), and follow them in a server.

A ruleset is published under its version name (``version:``, or the content
hash when it has none); a name always stands for one content, so the
``ruleset_version`` of a response names exactly one ruleset. Publishing
stores the YAML text in Redis, points ``active`` at it and announces it on a
channel; every server compiles it off the event loop and swaps it in
atomically. A server that cannot compile it refuses it and keeps serving the
ruleset it has (logged, counted in metrics).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from decision.rules.diff import RulesetChanges, diff
from decision.rules.engine import CompiledRuleset, compile_and_load
from decision.rules.errors import Problem, RulesetInvalid, Severity
from decision.rules.loader import parse
from decision.rules.types import Location, Ruleset
from decision.service.active import ActiveRuleset
from decision.store.control import ControlStore
from inbound_common.codecs import ActiveRulesetPointer, PublishedRuleset

log = logging.getLogger(__name__)


class PublishError(Exception):
    """A publication or rollback that was refused; nothing was changed."""


class VersionConflict(PublishError):
    """The version name was published before with other content."""


class NoPublishedRuleset(PublishError):
    pass


class RulesetEvents(Protocol):
    """What a follower reports (implemented by decision.observe.metrics.Metrics)."""

    def ruleset_active(self, version: str) -> None: ...

    def ruleset_refused(self, source: str) -> None: ...


def parse_checked(data: bytes, source: str) -> tuple[Ruleset, list[Problem]]:
    """Parse ruleset bytes; raises RulesetInvalid on errors, returns the ruleset and its warnings."""
    ruleset, problems = parse(data, source)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors or ruleset is None:
        raise RulesetInvalid(errors or [Problem(Location(source, 0), "file", "invalid ruleset")])
    return ruleset, problems


def parse_published(entry: PublishedRuleset) -> Ruleset:
    """A stored ruleset, parsed and checked (not compiled). Raises RulesetInvalid."""
    ruleset, _ = parse_checked(entry.text.encode(), f"{entry.source or 'published'} (published {entry.version})")
    if ruleset.version != entry.version:  # stored under another name than it declares: corrupt
        reason = f"declares {ruleset.version!r}, stored as {entry.version!r}"
        raise RulesetInvalid([Problem(Location(entry.source, 0), "version", reason)])
    return ruleset


def compile_published(entry: PublishedRuleset) -> CompiledRuleset:
    """Compile a stored ruleset (blocking: run it in a thread). Raises RulesetInvalid."""
    return compile_and_load(parse_published(entry))


# -- the `decision rules` commands ----------------------------------------


@dataclass(frozen=True, slots=True)
class Activation:
    entry: PublishedRuleset
    # False: that version was already the active one.
    changed: bool
    # Subscribers that heard the announcement (one per server process).
    receivers: int
    warnings: tuple[Problem, ...] = ()


def read_rules_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise RulesetInvalid([Problem(Location(str(path), 0), "file", f"cannot read: {exc.strerror}")]) from exc


def _check(data: bytes, source: str) -> tuple[Ruleset, list[Problem]]:
    ruleset, problems = parse_checked(data, source)
    compile_and_load(ruleset)  # the engine accepts it here, so it will on every server of this release
    return ruleset, problems


async def publish(
    store: ControlStore, data: bytes, source: str, now: float | None = None, *, author: str = ""
) -> Activation:
    """Validate and compile a ruleset, store it as a new version and make it the active one.

    The version records who published it and what changed against the
    version active until then. Raises RulesetInvalid (nothing stored) or
    PublishError (its version name is taken by other content).
    """
    ruleset, problems = await asyncio.to_thread(_check, data, source)
    when = time.time() if now is None else now
    digest = hashlib.sha256(data).hexdigest()
    previous, changes = await _changes_since_active(store, ruleset)
    entry = await store.add_version(
        ruleset.version,
        sha256=digest,
        source=source,
        text=data.decode(),
        now=when,
        author=author,
        previous=previous,
        changes=None if changes is None else changes.to_json(),
    )
    if entry.sha256 != digest:
        raise VersionConflict(
            f"{source}: version {ruleset.version!r} was already published with other content "
            f"(sha256 {entry.sha256[:12]}, #{entry.seq}): give this ruleset a new version"
        )
    activation = await _activate(store, entry, "publish", when)
    warnings = tuple(p for p in problems if p.severity is Severity.WARNING)
    return Activation(activation.entry, activation.changed, activation.receivers, warnings)


async def _changes_since_active(store: ControlStore, ruleset: Ruleset) -> tuple[str, RulesetChanges | None]:
    """The active version's name and what ``ruleset`` changes in it ("", None: nothing is active)."""
    pointer = await store.active()
    entry = None if pointer is None else await store.version(pointer.version)
    if entry is None:
        return "", None
    try:
        source = f"{entry.source or 'published'} (published {entry.version})"
        active, _ = await asyncio.to_thread(parse_checked, entry.text.encode(), source)
    except RulesetInvalid:  # published by a release with another language: not comparable
        log.warning("cannot compare with the active ruleset %s: it no longer validates", entry.version)
        return entry.version, None
    return entry.version, diff(active, ruleset)


async def rollback(store: ControlStore, version: str | None = None, now: float | None = None) -> Activation:
    """Make a stored version active again: ``version``, or the latest one published before the active
    one that still compiles (a refused publication is skipped)."""
    versions = await store.versions()
    when = time.time() if now is None else now
    if version is not None:
        target = next((e for e in versions if e.version == version), None)
        if target is None:
            known = ", ".join(e.version for e in versions) or "none"
            raise PublishError(f"no published ruleset {version!r} (published: {known})")
        await asyncio.to_thread(compile_published, target)  # still valid for this release?
        return await _activate(store, target, "rollback", when)
    pointer = await store.active()
    if pointer is None:
        raise NoPublishedRuleset("nothing is published: nothing to roll back")
    current = next((e for e in versions if e.version == pointer.version), None)
    older = [e for e in versions if current is None or e.seq < current.seq]
    for candidate in reversed(older):
        try:
            await asyncio.to_thread(compile_published, candidate)
        except RulesetInvalid as exc:
            log.warning("rollback skips %s, which does not compile: %s", candidate.version, exc)
            continue
        return await _activate(store, candidate, "rollback", when)
    raise PublishError(f"no valid ruleset was published before {pointer.version}: nothing to roll back to")


async def _activate(store: ControlStore, entry: PublishedRuleset, action: str, now: float) -> Activation:
    pointer = await store.active()
    if pointer is not None and pointer.version == entry.version:
        return Activation(entry, changed=False, receivers=0)
    receivers = await store.activate(ActiveRulesetPointer(entry.version, now, action))
    return Activation(entry, changed=True, receivers=receivers)


def changes_of(entry: PublishedRuleset) -> RulesetChanges | None:
    """What a version changed against the one active before it, as recorded when it was published."""
    return None if entry.changes is None else RulesetChanges.from_json(entry.changes)


def change_summary(entry: PublishedRuleset) -> str:
    """What ``rules list`` and the console show of a version's changes against the one active before it."""
    changes = changes_of(entry)
    if changes is not None:
        return f"{changes.summary()} (vs {entry.previous})"
    if entry.previous:
        return f"not compared with {entry.previous}"
    return "first publication" if entry.author else "-"  # "-": published before the audit was recorded


async def listing(store: ControlStore) -> tuple[list[PublishedRuleset], ActiveRulesetPointer | None]:
    return await store.versions(), await store.active()


# -- in a server -----------------------------------------------------------


async def active_entry(store: ControlStore) -> PublishedRuleset:
    """The active published ruleset as stored. Raises NoPublishedRuleset."""
    pointer = await store.active()
    if pointer is None:
        raise NoPublishedRuleset("no ruleset has been published to this Redis (decision rules publish RULES)")
    entry = await store.version(pointer.version)
    if entry is None:
        raise NoPublishedRuleset(f"the active ruleset {pointer.version!r} is missing from Redis")
    return entry


async def load_active(store: ControlStore) -> CompiledRuleset:
    """The active published ruleset, compiled. Raises NoPublishedRuleset or RulesetInvalid."""
    return await asyncio.to_thread(compile_published, await active_entry(store))


class RulesetFollower:
    """Keeps a server on the active published ruleset."""

    def __init__(self, store: ControlStore, active: ActiveRuleset, events: RulesetEvents | None = None) -> None:
        self.store = store
        self.active = active
        self.events = events
        # The version this server could not compile: not retried until another is activated.
        self.refused: str | None = None
        self._lock = asyncio.Lock()

    async def sync(self) -> bool:
        """Swap in the active published ruleset if it changed. Returns whether it swapped."""
        async with self._lock:  # one compilation at a time; later announcements wait
            pointer = await self.store.active()
            if pointer is None or pointer.version in (self.active.current.version, self.refused):
                return False
            entry = await self.store.version(pointer.version)
            if entry is None:
                log.error("active ruleset %s is missing from Redis; keeping %s", pointer.version, self.current)
                return False
            started = time.perf_counter()
            try:
                compiled = await asyncio.to_thread(compile_published, entry)
            except Exception as exc:  # RulesetInvalid, or the engine refusing it: keep serving the old one
                self.refused = entry.version
                log.error(
                    "published ruleset %s refused, keeping %s: %s",
                    entry.version,
                    self.current,
                    exc,
                    extra={"event": "ruleset_refused", "ruleset_version": entry.version},
                )
                if self.events is not None:
                    self.events.ruleset_refused("redis")
                return False
            self.refused = None
            self.active.replace(compiled)
            log.info(
                "published ruleset %s active (compiled in %.1f ms)",
                entry.version,
                (time.perf_counter() - started) * 1000,
                extra={"event": "ruleset_swap", "ruleset_version": entry.version},
            )
            if self.events is not None:
                self.events.ruleset_active(entry.version)
            return True

    @property
    def current(self) -> str:
        return self.active.current.version

    async def watch(self, interval: float) -> None:
        await self.store.watch_rules(self._on_announcement, interval)

    async def _on_announcement(self) -> None:
        await self.sync()
