"""The decision service: read the profile, evaluate, decide. Independent of gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

from decision.core.planning import Why, build_plan, fill, render
from decision.core.requests import check_request, with_profile
from decision.core.totals import TotalsView
from decision.core.types import Decision, DecisionRequest
from decision.core.why_not import answers
from decision.rules.engine import EngineError
from decision.service import stages
from decision.service.active import ActiveRuleset
from decision.service.breaker import BreakerBoard
from decision.service.degraded import DegradedAnswers
from decision.service.events import EventInput, EventRecorder, EventResult, EventsUnavailable
from decision.service.learning import LearnedRates
from decision.service.outcomes import ProposalCounter
from decision.service.reservations import Proposer
from decision.settings import Settings
from decision.store.profiles import ProfileStore, StoreError

log = logging.getLogger(__name__)


_NO_TIME = "no time left for Redis within the call's deadline (or --redis-timeout-ms)"


def _redis(shard: str) -> str:
    return f"Redis {shard}" if shard else "Redis"


def _store_failure(kind: str, doing: str, exc: BaseException) -> tuple[str, str, None]:
    """The reason and cause of a degraded answer for a Redis failure while ``doing``; ``kind``: read, count."""
    if isinstance(exc, TimeoutError):
        return f"{kind}_timeout", f"{doing}: Redis did not answer in time", None
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{kind}_error", f"{doing}: {type(exc).__name__}{': ' if detail else ''}{detail}", None


def _log_breaker_change(shard: str, is_open: bool) -> None:
    where = _redis(shard)
    if is_open:
        log.error("%s reads keep failing: circuit open, answering fallbacks (degraded) while probing", where)
    else:
        log.warning("%s answers again: circuit closed, normal decisions resume", where)


class DecisionService:
    def __init__(self, store: ProfileStore, active: ActiveRuleset, settings: Settings) -> None:
        self.store = store
        self.active = active
        self.settings = settings
        # Circuit breakers on Redis reads, one per shard (Cluster node).
        self.breakers = BreakerBoard(
            settings.breaker_failures, settings.breaker_probe_interval, on_change=_log_breaker_change
        )
        # The clock of decisions and events: tests set another to cross period boundaries without sleeping.
        self.clock: Callable[[], float] = time.time
        # This server's view of total caps: kept by decisions (service.reservations) and events (service.events).
        self.totals = TotalsView(settings.totals_refresh_interval)
        self.proposer = Proposer(store, self.totals)
        self.events = EventRecorder(
            store,
            self.totals,
            window=settings.event_dedupe_window,
            skew=settings.event_max_skew,
            limits=settings.limits,
            keys=settings.token_keys,
            outcome_retention=settings.outcome_retention,
            lifetime=settings.token_lifetime,
        )
        # What each offer achieved: proposals tallied here, flushed in the background (service.outcomes).
        self.proposals = ProposalCounter(
            store, retention=settings.outcome_retention, interval=settings.outcome_flush_interval
        )
        # Answers degraded to the fallbacks: counted by reason, their causes logged (rate-limited).
        self.degraded = DegradedAnswers()
        # Learned rankings (``ranking:``, ``allocation: auto``) draw from counts refreshed in the background.
        self.learning = LearnedRates(store, interval=settings.learning_refresh_interval, clock=lambda: self.clock())

    async def decide(self, request: DecisionRequest, time_remaining: float | None = None) -> Decision:
        """Decide for one request. Raises InvalidRequest; never fails for Redis.

        ``time_remaining`` is what is left of the caller's deadline, in
        seconds: the Redis read gets at most that minus a margin, and a read
        that does not fit is answered with fallbacks (``degraded``).
        """
        stages.mark("prepare")
        prepared = self.active.current  # this request's version, whatever reloads happen meanwhile
        check_request(prepared.ruleset, request)
        if not request.request_id:
            request = dataclasses.replace(request, request_id=os.urandom(16).hex())
        now = self.clock()
        decision_id = os.urandom(16).hex()  # 32 hex digits, as uuid4().hex (tokens store them as 16 bytes)
        budget = self.settings.redis_timeout
        if time_remaining is not None:
            margin = min(max(self.settings.deadline_margin, time_remaining / 5), self.settings.deadline_margin_max)
            budget = min(budget, time_remaining - margin)
        eligible = None
        decision: Decision | None = None
        # Why the answer is degraded, when it is: (reason, cause, the exception when its traceback matters).
        degraded: tuple[str, str, BaseException | None] | None = None
        # Skip Redis (fallbacks, degraded) while it is known to be down or to have lost its data.
        shard = self.store.shard_of(request.profile_id)
        breaker = self.breakers.for_shard(shard)
        if budget <= 0:
            degraded = ("no_time", _NO_TIME, None)
        elif self.store.registry_lost:
            degraded = ("registry_lost", "Redis lost the audience registry", None)
        elif not breaker.allow():
            degraded = ("breaker_open", f"{_redis(shard)} reads keep failing: circuit breaker open", None)
        else:
            # One Redis budget (one timeout scope) for the read and, when caps are in play, the reservation.
            deadline = asyncio.get_running_loop().time() + budget
            read = False
            try:
                async with asyncio.timeout_at(deadline):
                    stages.mark("redis_read")
                    audiences, attributes, counters, sticky = await self.proposer.read(
                        prepared, request.profile_id, now
                    )
                    read = True
                    breaker.record_success()
                    # Rules, formulas and templates read the profile's attributes as context profile.<name>.
                    request = with_profile(prepared.ruleset, request, attributes)
                    # Only the requested placements' offers: the others could not be shown anyway.
                    placements = [p.placement_id for p in request.placements]
                    stages.mark("eligibility")
                    eligible = prepared.compiled.eligible(audiences, request.context, now, placements)
                    why = Why(audiences, now) if request.explain else None
                    decision = await self.proposer.decide(
                        prepared, eligible, request, counters, now=now, decision_id=decision_id, why=why,
                        learner=self.learning.learner, sticky=sticky, keys=self.settings.token_keys,
                    )  # fmt: skip
            except StoreError as exc:
                if read:  # counters or totals (maybe on another shard): the next read will tell
                    degraded = _store_failure("count", "counting the decision", exc)
                else:
                    degraded = _store_failure("read", "reading the profile", exc)
                    # Only the profile read speaks for the breaker: a timeout cut short by the caller's own
                    # deadline says nothing about Redis.
                    if not (isinstance(exc, TimeoutError) and budget < self.settings.redis_timeout):
                        breaker.record_failure()
            except EngineError as exc:
                degraded = ("rules_error", f"rule evaluation failed: {exc}", exc)
            except Exception as exc:
                if read:
                    degraded = ("internal_error", f"unexpected error deciding: {exc!r}", exc)
                else:  # the Redis client failing in a way it does not declare (redis-py mid-failover)
                    degraded = ("internal_error", f"unexpected error reading the profile: {exc!r}", exc)
                    breaker.record_failure()
        if decision is None:  # Redis or the engine failed: fallbacks, degraded
            assert degraded is not None  # every path without a decision says why
            reason, cause, failure = degraded
            self.degraded.record(reason, cause, traceback=failure)
            stages.mark("render")
            why = Why(frozenset(), now) if request.explain else None
            plan = build_plan(prepared.ruleset, None, request, now_ms=int(now * 1000), why=why)
            selection = fill(plan, {})
            decision = render(
                plan, selection, prepared.ruleset, request, decision_id=decision_id, degraded=True,
                keys=self.settings.token_keys,
            )  # fmt: skip
            if request.why_not and why is not None:
                decision = dataclasses.replace(decision, why_not=answers(plan, selection, prepared.ruleset, request))
        stages.mark("outcomes")
        self.proposals.add(decision, prepared.ruleset.time_zone, now)
        return decision

    async def record_events(self, events: Sequence[EventInput]) -> list[EventResult]:
        """Record feedback events, each counted once (decision.service.events). Raises EventsUnavailable."""
        try:
            async with asyncio.timeout(self.settings.event_timeout):
                return await self.events.record(self.active.current, events, self.clock())
        except StoreError as exc:
            reason = f"Redis did not record the events ({type(exc).__name__}); retrying is safe"
            raise EventsUnavailable(reason) from exc
