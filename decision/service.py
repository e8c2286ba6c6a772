"""The decision service: read the profile, evaluate, decide. Independent of gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid

from decision.active import ActiveRuleset
from decision.decisioning import check_request, decide
from decision.rules.engine import EngineError
from decision.settings import Settings
from decision.store import ProfileStore, StoreError
from decision.types import Decision, DecisionRequest

log = logging.getLogger(__name__)


class DecisionService:
    def __init__(self, store: ProfileStore, active: ActiveRuleset, settings: Settings) -> None:
        self.store = store
        self.active = active
        self.settings = settings

    async def decide(self, request: DecisionRequest, time_remaining: float | None = None) -> Decision:
        """Decide for one request. Raises InvalidRequest; never fails for Redis.

        ``time_remaining`` is what is left of the caller's deadline, in
        seconds: the Redis read gets at most that minus a margin, and a read
        that does not fit is answered with fallbacks (``degraded``).
        """
        compiled = self.active.current  # this request's version, whatever reloads happen meanwhile
        check_request(compiled.ruleset, request)
        if not request.request_id:
            request = dataclasses.replace(request, request_id=uuid.uuid4().hex)
        now = time.time()
        budget = self.settings.redis_timeout
        if time_remaining is not None:
            budget = min(budget, time_remaining - self.settings.deadline_margin)
        eligible = None
        if budget > 0:
            try:
                async with asyncio.timeout(budget):
                    audiences = await self.store.audiences(request.profile_id, now)
                eligible = compiled.eligible(audiences, request.context, now)
            except StoreError as exc:
                log.debug("profile read failed, answering fallbacks: %r", exc)
            except EngineError:
                log.exception("rule evaluation failed, answering fallbacks (request %s)", request.request_id)
        return decide(
            compiled.ruleset,
            eligible,
            request,
            decision_id=uuid.uuid4().hex,
            now_ms=int(now * 1000),
        )
