"""A decision's Redis round trips around the pure planning: read, reserve what is counted, render.

Round trips of one decision:

1. **Read** — always exactly one: ``HGETALL`` of the memberships when the
   ruleset counts nothing (no caps, suppressions or contact policies), else
   one ``EVALSHA read_profile.lua`` returning memberships and counters together
   (same hash tag, same slot).
2. **Reserve on the profile** — only when the decision would propose an offer
   with a per-profile cap counted on decision, or fill a placement under a
   contact policy counted on decision: one ``EVALSHA select.lua`` on the same
   slot, which redoes the choice atomically on the live counters and counts
   it. Under any concurrency an offer capped at N is proposed at most N times.
3. **Reserve totals** — only when the chosen items include an offer with a
   total cap counted on decision: one ``EVALSHA reserve_total.lua`` per such
   offer (its own slot), pipelined (concurrent on a Cluster). A refused offer
   is left out and steps 2-3 run again without it (the earlier profile
   reservation is given back in the same call); after ``MAX_ATTEMPTS`` any
   offer still unreserved is dropped.

A reservation whose answer is lost (timeout) stays counted: caps err on the
side of proposing less, never more.

A **dry run** (``DecisionRequest.dry_run``) writes nothing: step 2 is ``fill``
on the counters read (the Python twin of select.lua: the same answer on the
same counters), step 3 runs ``reserve_total.lua`` read-only (granted or not on
the totals as they are, with what the decision would hold), and the server's
view of the totals is a private copy. Its answer is the one a real call would
give on the data it read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping

import orjson

from decision.core.controls import DeliveryControls, Times, TotalCheck, merge_keep, parse_counters
from decision.core.experiments import split_sticky
from decision.core.learning import Learner
from decision.core.planning import Plan, Selection, Why, build_plan, fill, needs_reservation, render
from decision.core.tokens import TokenKeys
from decision.core.totals import TotalsView, key_of
from decision.core.types import Decision, DecisionRequest
from decision.core.why_not import answers
from decision.rules.types import ContextValue
from decision.service import stages
from decision.service.active import PreparedRuleset
from decision.store.profiles import ProfileStore, StoreError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


def select_payload(plan: Plan, controls: DeliveryControls, release: list[str]) -> bytes:
    """ARGV[1] of select.lua."""
    fields: list[str] = list(release)
    slots = []
    for slot in plan.slots:
        fields.extend(slot.fields)
        candidates = []
        for candidate in slot.candidates:
            fields.extend(candidate.fields)
            checks = [[c.field, c.limit, c.since_ms] for c in candidate.checks]
            candidates.append([candidate.key, checks, list(candidate.fields), candidate.exempt])
        slots.append(
            {
                "limit": slot.limit,
                "checks": [[c.field, c.limit, c.since_ms] for c in slot.checks],
                "fields": list(slot.fields),
                "cands": candidates,
            }
        )
    return orjson.dumps(
        {
            "now": plan.now_ms,
            "ttl": controls.retention_ms,
            "dup": plan.allow_duplicates,
            "keep": merge_keep(fields, controls.keep),
            "release": release,
            "slots": slots,
        }
    )


def drop(plan: Plan, selection: Selection, offers: set[str]) -> Selection:
    """The selection without the (counted) proposals of ``offers``; holdout stand-ins are never counted."""
    return tuple(
        tuple(i for i in taken if slot.candidates[i].exempt or slot.candidates[i].key not in offers)
        for slot, taken in zip(plan.slots, selection, strict=True)
    )


class Proposer:
    """Makes decisions under caps and contact policies; keeps the server's view of total caps up to date."""

    def __init__(self, store: ProfileStore, totals: TotalsView) -> None:
        self.store = store
        self.totals = totals
        # Work a decision starts but does not wait for (totals refresh, give-backs); referenced until done.
        self._background: set[asyncio.Task[None]] = set()

    async def settled(self) -> None:
        """Wait for the background work decisions started (totals refresh, give-backs): shutdown, tests."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def read(
        self, prepared: PreparedRuleset, profile_id: str, now: float
    ) -> tuple[frozenset[str], Mapping[str, ContextValue], dict[str, Times], dict[str, str]]:
        """The profile's audiences, attributes (when the ruleset reads some), counters and sticky variants
        (``allocation: auto``): one round trip."""
        wanted = bool(prepared.ruleset.profile_attributes)
        if not prepared.controls.keep and not prepared.auto:
            if wanted:
                audiences, attributes = await self.store.profile(profile_id, now)
                return audiences, attributes, {}, {}
            return await self.store.audiences(profile_id, now), {}, {}, {}
        audiences, attributes, raw = await self.store.read_profile(profile_id, now, attributes=wanted)
        counters, sticky = split_sticky(raw)
        return audiences, attributes, parse_counters(counters), sticky

    async def decide(
        self,
        prepared: PreparedRuleset,
        eligible: Mapping[str, str],
        request: DecisionRequest,
        counters: Mapping[str, Times],
        *,
        now: float,
        decision_id: str,
        why: Why | None = None,
        learner: Learner | None = None,
        sticky: Mapping[str, str] | None = None,
        keys: TokenKeys | None = None,
    ) -> Decision:
        """The decision (with its explanations when ``why`` is given; ``learner``: draws of learned rankings;
        tracking tokens signed with ``keys``)."""
        ruleset, controls = prepared.ruleset, prepared.controls
        if controls.total_caps:
            self._refresh_totals_if_stale(controls, now)
        dry = request.dry_run
        totals = self.totals.copy() if dry else self.totals  # a dry run's reservations change no one's view
        now_ms = int(now * 1000)
        exclude: set[str] = set()
        released: list[str] = []  # what the last select.lua added: given back by the next one
        held: dict[str, tuple[tuple[TotalCheck, ...], int]] = {}  # offer -> its total caps, amount reserved
        for attempt in range(MAX_ATTEMPTS):
            stages.mark("planning")
            plan = build_plan(
                ruleset,
                eligible,
                request,
                now_ms=now_ms,
                controls=controls,
                counters=counters,
                totals=totals,
                exclude=frozenset(exclude),
                why=why,
                learner=learner,
                sticky=sticky,
                ranks=prepared.ranks,
            )
            selection = fill(plan, counters)
            if not dry and (released or needs_reservation(plan, selection)):
                stages.mark("reservations")
                selection = tuple(
                    tuple(taken)
                    for taken in await self.store.select(request.profile_id, select_payload(plan, controls, released))
                )
                released = plan.fields_of(selection)
            amounts = plan.amounts(selection)
            wanted = {
                offer: (checks, amounts[offer] - held.get(offer, ((), 0))[1])
                for offer, checks in plan.totals_of(selection).items()
                if amounts[offer] > held.get(offer, ((), 0))[1]
            }
            if not wanted:
                break
            if attempt == MAX_ATTEMPTS - 1:
                selection = drop(plan, selection, set(wanted))  # counted on the profile, not proposed: errs low
                break
            stages.mark("reservations")
            refused = await self._reserve_totals(wanted, held, totals, dry=dry)
            if not refused:
                break
            exclude |= refused
        if not dry:  # a dry run's holdings are what it would have reserved: nothing to give back
            self._give_back(held, plan.amounts(selection))
        stages.mark("render")
        decision = render(plan, selection, ruleset, request, decision_id=decision_id, keys=keys)
        if request.why_not and why is not None:  # planning asked again, on what this decision was made from
            found = answers(plan, selection, ruleset, request, controls=controls, totals=totals,
                            exclude=frozenset(exclude), sticky=sticky)  # fmt: skip
            decision = dataclasses.replace(decision, why_not=found)
        return decision

    async def _reserve_totals(
        self,
        wanted: dict[str, tuple[tuple[TotalCheck, ...], int]],
        held: dict[str, tuple[tuple[TotalCheck, ...], int]],
        totals: TotalsView,
        *,
        dry: bool = False,
    ) -> set[str]:
        """Reserve the wanted totals; record the held ones; return the offers refused. ``dry``: only check that
        each would be granted on top of what this decision holds already, nothing written."""
        if dry:
            replies = await self._check_totals(wanted, held)
        else:
            replies = await self.store.reserve_totals(list(wanted.values()))
        refused: set[str] = set()
        for (offer, (checks, amount)), (granted, counts) in zip(wanted.items(), replies, strict=True):
            for check, count in zip(checks, counts, strict=True):
                totals.record(check, count)
            if granted:
                held[offer] = (checks, held.get(offer, ((), 0))[1] + amount)
            else:
                refused.add(offer)
        return refused

    async def _check_totals(
        self,
        wanted: dict[str, tuple[tuple[TotalCheck, ...], int]],
        held: dict[str, tuple[tuple[TotalCheck, ...], int]],
    ) -> list[tuple[bool, list[int]]]:
        """What reserving the wanted totals would answer, nothing written: each offer asked with what the dry run
        holds already (it wrote none of it), its counts as a reservation would leave them."""
        holding = [held.get(offer, ((), 0))[1] for offer in wanted]
        asked = [(checks, have + amount) for (checks, amount), have in zip(wanted.values(), holding, strict=True)]
        replies = await self.store.reserve_totals(asked, check_only=True)
        return [
            (granted, [n + have + (amount if granted else 0) for n in counts])
            for (granted, counts), have, (_, amount) in zip(replies, holding, wanted.values(), strict=True)
        ]

    def _give_back(self, held: dict[str, tuple[tuple[TotalCheck, ...], int]], amounts: dict[str, int]) -> None:
        """Return, in the background, total reservations of offers the final selection does not propose."""
        changes = [
            (checks, [amounts.get(offer, 0) - amount] * len(checks))
            for offer, (checks, amount) in held.items()
            if amounts.get(offer, 0) < amount
        ]
        if changes:
            task = asyncio.get_running_loop().create_task(self._add_totals(changes))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _add_totals(self, changes: list[tuple[tuple[TotalCheck, ...], list[int]]]) -> None:
        try:
            await self.store.add_totals(changes)
        except StoreError as exc:  # the decision stands; the totals stay a little high (errs low)
            log.warning("could not give back %d total cap reservation(s): %r", len(changes), exc)

    def _refresh_totals_if_stale(self, controls: DeliveryControls, now: float) -> None:
        """Start a background re-read of the total counters of the current buckets (never awaited by a decision)."""
        if not self.totals.stale(time.monotonic()):
            return
        checks = [c for offer in controls.total_caps for c in controls.total_checks(offer, None, int(now * 1000))]
        self.totals.refreshing = True
        task = asyncio.get_running_loop().create_task(self._refresh_totals(checks))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh_totals(self, checks: list[TotalCheck]) -> None:
        try:
            counts = await self.store.read_totals(checks)
            self.totals.replace({key_of(c): n for c, n in zip(checks, counts, strict=True)}, time.monotonic())
        except StoreError as exc:
            log.debug("total caps refresh failed: %r", exc)
            self.totals.refreshed_at = time.monotonic()  # retry after an interval, not on every decision
        finally:
            self.totals.refreshing = False
