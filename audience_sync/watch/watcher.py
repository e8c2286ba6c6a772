"""The poll loop: list, plan, and apply each due export through ``load`` or ``apply``, recording the outcome.

One export at a time, under the lease (ledger.py):

1. its files are recorded ``applying`` (with this process as owner, under the lease's token);
2. a previous attempt left ``applying`` by a watcher that died or lost its lease may have left a snapshot
   generation pending: its records are dropped (gc removes its fields), so the export loads from scratch;
3. the files are fetched (object stores) and handed to the ``load`` command (snapshots: its cutover checks
   the lease and records the files ``applied`` in the same script) or the ``apply`` command (deltas:
   recorded ``applied`` after; a replay after a crash is harmless, see docs/watch.md);
4. a refused export (exit status 1: bad lines over the threshold, an audience left empty, an unreadable
   file) is recorded ``refused`` with its reason and not tried again until a file of it changes; a
   conflict or a Redis failure leaves it due, and later exports wait for it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from audience_sync.store import CutoverGuard, StoreFailure, SyncStore
from audience_sync.watch.ledger import Lease, LeaseLost
from audience_sync.watch.plan import SNAPSHOT, Export, Plan, Rules, make_plan
from audience_sync.watch.record import Record
from audience_sync.watch.service import WatchMetrics
from audience_sync.watch.storage import Storage, StoredFile
from inbound_common.cli import Exit

log = logging.getLogger("audience_sync.watch")


@dataclass(frozen=True, slots=True)
class Ran:
    """What ``load``/``apply`` did with an export: its exit status and its ``--json`` summary."""

    status: int
    summary: Mapping[str, Any] | None = None
    error: str = ""  # an exception that ended it (an unreadable file)

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        summary = self.summary or {}
        return str(summary.get("refused") or summary.get("failed") or f"exit status {self.status}")


# Runs ``load`` (snapshots, with the cutover guard) or ``apply`` (deltas) on local copies of an export's files.
RunExport = Callable[[Export, Sequence[str], CutoverGuard | None], Ran]


@dataclass(slots=True)
class PollReport:
    role: str = "standby"  # leader, standby, or the failure: storage_error, redis_error
    plan: Plan = field(default_factory=Plan)
    handled: list[tuple[Export, str]] = field(default_factory=list)  # (export, outcome)
    status: int = Exit.OK  # the first non-zero exit status of an export this poll


class Stopped(Exception):
    """A stop (SIGTERM/SIGINT) interrupted the export being applied."""


class Watcher:
    def __init__(
        self,
        storage: Storage,
        store: SyncStore,
        lease: Lease,
        rules: Rules,
        run_export: RunExport,
        *,
        owner: str,
        work_dir: str,
        metrics: WatchMetrics,
        json: bool = False,
        out: IO[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.store = store
        self.lease = lease
        self.rules = rules
        self.run_export = run_export
        self.owner = owner
        self.work_dir = work_dir
        self.metrics = metrics
        self.json = json
        self.out = out if out is not None else sys.stdout
        self.clock = clock
        self.previous: dict[str, str] = {}  # path -> version at the previous poll
        self.applying: Export | None = None
        self.storage_problem = "not listed yet"  # why the last listing failed ('' it succeeded)
        self.last_poll = time.monotonic()
        self.polls = 0

    # -- one poll ---------------------------------------------------------------------
    def poll(self) -> PollReport:
        report = PollReport()
        self.last_poll = time.monotonic()
        self.polls += 1
        try:
            listing = self.storage.list()
        except Exception as exc:  # the filesystem's own errors (botocore, paramiko...): storage unreachable
            self.storage_problem = f"{type(exc).__name__}: {exc}"
            log.warning("cannot list %s: %s", self.storage.url, self.storage_problem)
            report.role = "storage_error"
            self.metrics.polls.labels(report.role).inc()
            return report
        self.storage_problem = ""
        versions = {f.path: f.version for f in listing}
        try:
            if not self.lease.acquire():
                self.previous = versions
                self.metrics.leader.set(0)
                self.metrics.polls.labels("standby").inc()
                return report
            self.metrics.leader.set(1)
            report.role = "leader"
            ledger = self.lease.read()
            report.plan = plan = make_plan(listing, self.previous, ledger, self.rules)
            self.previous = versions
            self.metrics.due.set(len(plan.due))
            self.metrics.waiting.set(len(plan.waiting))
            for export in plan.superseded:
                self._supersede(export, ledger)
                report.handled.append((export, "superseded"))
            for export in plan.due:
                outcome, status = self._apply(export, ledger)
                report.handled.append((export, outcome))
                if status and not report.status:
                    report.status = status
                if outcome not in ("applied", "refused"):
                    break  # later exports wait for this one
        except LeaseLost:
            self.metrics.lease_lost.inc()
            self.metrics.leader.set(0)
            report.role = "standby"
        except StoreFailure as exc:
            log.warning("Redis: %s", exc)
            report.role = "redis_error"
        self.metrics.polls.labels(report.role).inc()
        return report

    # -- one export ----------------------------------------------------------------------
    def _records(
        self, export: Export, ledger: Mapping[str, Record], outcome: str, reason: str = ""
    ) -> dict[str, Record]:
        records: dict[str, Record] = {}
        now = self.clock()
        for stored in export.files:
            before = ledger.get(stored.path)
            attempts = before.attempts + 1 if before and before.version == stored.version and not before.final else 1
            if outcome != "applying" and before is not None and before.version == stored.version:
                attempts = before.attempts  # the outcome of the attempt recorded as applying
            records[stored.path] = Record(
                version=stored.version, kind=export.kind, outcome=outcome, export_time=export.time,
                series=export.series, attempts=attempts, reason=reason, owner=self.owner, token=self.lease.token,
                at=now,
            )  # fmt: skip
        return records

    def _supersede(self, export: Export, ledger: Mapping[str, Record]) -> None:
        reason = "a later snapshot of the same series was applied already"
        self.lease.write(self._records(export, ledger, "superseded", reason))
        self._count(export, "superseded")
        self._emit(export, "superseded", Ran(Exit.OK, error=reason))

    def _apply(self, export: Export, ledger: Mapping[str, Record]) -> tuple[str, int]:
        abandoned = {
            r.owner
            for stored in export.files
            if (r := ledger.get(stored.path)) is not None and r.version == stored.version and not r.final and r.owner
        }
        applying = self._records(export, ledger, "applying")
        self.lease.write(applying)
        ledger = {**ledger, **applying}
        if abandoned and export.kind == SNAPSHOT:
            self._drop_abandoned(export, abandoned)
        started = time.monotonic()
        directory = os.path.join(self.work_dir, f"{self.lease.token}-{int(started * 1000)}")
        try:
            try:
                fetched = [self._fetch(stored, directory) for stored in export.files]
            except Exception as exc:  # the filesystem's errors: tried again on the next poll
                return self._failed(export, ledger, f"cannot fetch: {type(exc).__name__}: {exc}")
            paths = [p for p in fetched if p is not None]
            if len(paths) < len(fetched):
                return self._failed(export, ledger, "changed while it was fetched")
            guard = self.lease.guard(self._records(export, ledger, "applied")) if export.kind == SNAPSHOT else None
            self.applying = export
            try:
                ran = self.run_export(export, paths, guard)
            except LeaseLost:
                raise
            except KeyboardInterrupt:
                self.applying = None
                self._record(export, ledger, "interrupted", "stopped (SIGTERM/SIGINT) while applying")
                raise Stopped from None
            except StoreFailure as exc:
                return self._failed(export, ledger, f"Redis: {type(exc).__name__}: {exc}")
            except OSError as exc:  # an unreadable or corrupt file: as load refuses it
                ran = Ran(Exit.INVALID, error=str(exc))
            finally:
                self.applying = None
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        self.metrics.seconds.labels(export.kind).observe(time.monotonic() - started)
        if ran.status == Exit.OK:
            if export.kind != SNAPSHOT:  # a snapshot was recorded by its cutover
                self.lease.write(self._records(export, ledger, "applied"))
            self.metrics.last_export.set(export.time)
            return self._done(export, "applied", ran)
        if ran.status == Exit.INVALID:
            self.lease.write(self._records(export, ledger, "refused", ran.reason))
            return self._done(export, "refused", ran)
        if not self.lease.held:
            raise LeaseLost("lost while applying")
        return self._failed(export, ledger, ran.reason, ran)

    def _fetch(self, stored: StoredFile, directory: str) -> str | None:
        path = self.storage.fetch(stored, directory)
        return path if os.path.getsize(path) == stored.size else None

    def _drop_abandoned(self, export: Export, owners: set[str]) -> None:
        """Earlier attempts at this export that did not end (killed, lease lost) may have left a snapshot
        generation pending: never switched in now (their lease is gone), they are dropped, for gc."""
        fields = [p.field for p in self.store.registry_state().pending if p.owner in owners]
        if fields:
            log.warning("dropping the pending generation(s) %s of an abandoned attempt at %s", fields, export.name)
            self.store.abandon(fields)

    def _record(self, export: Export, ledger: Mapping[str, Record], outcome: str, reason: str) -> None:
        try:
            self.lease.write(self._records(export, ledger, outcome, reason))
        except (LeaseLost, StoreFailure) as exc:
            log.warning("could not record %s as %s: %s", export.name, outcome, exc)

    def _failed(
        self, export: Export, ledger: Mapping[str, Record], reason: str, ran: Ran | None = None
    ) -> tuple[str, int]:
        self._record(export, ledger, "failed", reason)
        return self._done(export, "failed", ran or Ran(Exit.CONFLICT, error=reason))

    def _done(self, export: Export, outcome: str, ran: Ran) -> tuple[str, int]:
        self._count(export, outcome)
        self._emit(export, outcome, ran)
        return outcome, ran.status

    def _count(self, export: Export, outcome: str) -> None:
        self.metrics.exports.labels(export.kind, outcome).inc()
        self.metrics.files.labels(export.kind, outcome).inc(len(export.files))

    def _emit(self, export: Export, outcome: str, ran: Ran) -> None:
        when = datetime.fromtimestamp(export.time, UTC).isoformat().replace("+00:00", "Z")
        if self.json:
            line = {
                "command": "watch",
                "ok": outcome in ("applied", "superseded"),
                "outcome": outcome,
                "kind": export.kind,
                "files": [f.url for f in export.files],
                "series": export.series,
                "export_time": when,
                "status": ran.status,
                "reason": None if outcome == "applied" else ran.reason,
                "result": dict(ran.summary) if ran.summary is not None else None,
            }
            self.out.write(orjson.dumps(line).decode() + "\n")
        else:
            detail = _describe(ran) if outcome == "applied" else ran.reason
            self.out.write(f"watch: {outcome} {export.kind} {export.name} (exported {when}): {detail}\n")
        self.out.flush()


def _describe(ran: Ran) -> str:
    summary = ran.summary or {}
    if summary.get("command") == "load":
        return f"{summary.get('memberships', 0):,} memberships; registry version {summary.get('version', 0)}"
    audiences = summary.get("audiences") or []
    added = sum(int(a.get("added", 0)) for a in audiences)
    removed = sum(int(a.get("removed", 0)) for a in audiences)
    stale = sum(int(a.get("stale", 0)) for a in audiences)
    return f"{summary.get('changes', 0):,} changes: added {added:,}, removed {removed:,}, stale {stale:,}"
