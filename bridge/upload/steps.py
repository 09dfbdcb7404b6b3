"""One job's steps (resolve -> post -> use): each step's conversation performed, its outcome stored.

``JourneySteps`` turns what a conversation (``bridge/upload/journey.py``) came to into outbox
transitions and log lines. A failure is not handled here: it propagates to the uploader, which asks
the policy. Each step reads the platform settings it is given (the snapshot of the job's pass).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ..body import with_estimate
from ..cardquery import platform_queries
from ..config import CardsConfig, NotEligible, PlatformConfig, Usage
from ..outbox import Job, JobState, Outbox, Stage
from . import journey as j
from .calls import PlatformCalls


class JourneySteps:
    def __init__(
        self,
        outbox: Outbox,
        calls: PlatformCalls,
        *,
        counters: Any,
        benefit_results: deque[bool],
        on_delivered: Callable[[], Callable[[Job], None] | None],
        log: Any,
    ) -> None:
        self.outbox = outbox
        self.calls = calls
        self.counters = counters
        #: the benefit's validity for the last members checked (health: a typo in the key shows here)
        self.benefit_results = benefit_results
        self.on_delivered = on_delivered
        self.log = log

    async def resolve(self, job: Job, platform: PlatformConfig, cards: CardsConfig) -> Job:
        if not job.card:
            return self.outbox.park(job.id, "no member card", JobState.UNIDENTIFIED)
        conv = j.ResolveMember(
            platform_queries(job.card, cards), benefit_key=platform.benefit_key, cross_studio=platform.cross_studio
        )
        outcome = await self.calls.converse(conv)
        if isinstance(outcome, j.NoMember):
            last = outcome.last
            self.counters.dead_letters += 1
            job = self.outbox.kill(
                job.id,
                stage=Stage.RESOLVE,
                status=last.status if last else None,
                error_code=last.error_code if last else None,
                error_message=outcome.message,
                trace_id=last.trace_id if last else None,
            )
            self.log.error(
                "weighing_dead_lettered",
                weighing=job.id,
                stage="resolve",
                reason="member_not_found",
                error=outcome.message,
                error_code=last.error_code if last else None,
                trace_id=last.trace_id if last else None,
            )
            return job
        assert isinstance(outcome, j.Resolved)
        if outcome.benefit_valid is not None:
            self.benefit_results.append(outcome.benefit_valid)
        park = outcome.benefit_valid is False and platform.not_eligible is NotEligible.PARK
        job = self.outbox.resolved(
            job.id,
            customer_id=outcome.customer_id,
            profile=outcome.profile,
            card_query=outcome.card_query,
            benefit_valid=outcome.benefit_valid,
            home_studio=outcome.home_studio,
            note=outcome.note,
            begin_post=not park,  # going straight on to POST: mark the attempt in the same commit
        )
        self.log.info(
            "member_resolved",
            weighing=job.id,
            customer_id=outcome.customer_id,
            benefit_valid=outcome.benefit_valid,
            cross_studio=outcome.cross_studio,
        )
        if park:
            self.log.warning("weighing_parked", weighing=job.id, reason="benefit_not_valid")
            return self.outbox.park(job.id, f"benefit {platform.benefit_key} not valid for this member (policy: park)")
        return job

    async def post(self, job: Job, platform: PlatformConfig, *, estimate: bool) -> Job:
        customer_id = job.customer_id
        assert customer_id is not None
        attach = bool(platform.benefit_key) and job.benefit_valid is True and platform.usage is Usage.WEIGHING
        then_use = platform.usage is Usage.ENDPOINT and bool(job.benefit_valid) and bool(platform.benefit_key)
        body = job.body
        if estimate:
            body, why_not = with_estimate(body, job.profile)
            if why_not is not None:
                self.log.info("body_composition_not_estimated", weighing=job.id, reason=why_not)
        if job.inflight != Stage.POST.value:  # not already begun by the resolve that just ran
            job = self.outbox.begin(job.id, Stage.POST)
        request = j.PostWeighing(customer_id, body, platform.benefit_key if attach else None, job.uid)
        outcome = await self.calls.converse(j.PostTheWeighing(request, then_use=then_use))
        if isinstance(outcome, j.BenefitRefused):
            self.log.warning("benefit_refused", weighing=job.id, error=outcome.note)
            job = self.outbox.benefit_refused(job.id, note=outcome.note)
            if platform.not_eligible is NotEligible.PARK:
                return self.outbox.park(job.id, outcome.note)
            return job
        assert isinstance(outcome, j.Posted)
        job = self.outbox.posted(
            job.id, benefit_attached=outcome.benefit_attached, next_stage=outcome.next_stage, status=outcome.status
        )
        self.log.info(
            "weighing_posted",
            weighing=job.id,
            customer_id=job.customer_id,
            benefit_attached=outcome.benefit_attached,
            status=outcome.status,
            idempotency_key=job.uid,
        )
        if outcome.next_stage is Stage.DONE:
            self._delivered(job)
        return job

    async def use(self, job: Job, platform: PlatformConfig) -> Job:
        customer_id = job.customer_id
        assert customer_id is not None
        job = self.outbox.begin(job.id, Stage.USE)
        request = j.UseBenefit(customer_id, platform.benefit_key, f"{job.uid}:use")
        outcome = await self.calls.converse(j.UseTheBenefit(request))
        if isinstance(outcome, j.UseRefused):
            self.log.warning("benefit_use_refused", weighing=job.id, error=outcome.note)
            if platform.not_eligible is NotEligible.PARK:
                return self.outbox.park(job.id, outcome.note)
            job = self.outbox.benefit_use_recorded(job.id, used=False, status=400, note=outcome.note)
            self._delivered(job)
            return job
        assert isinstance(outcome, j.Used)
        job = self.outbox.benefit_use_recorded(job.id, used=True, status=outcome.status)
        self.log.info("benefit_used", weighing=job.id, customer_id=job.customer_id)
        self._delivered(job)
        return job

    def _delivered(self, job: Job) -> None:
        self.counters.delivered += 1
        callback = self.on_delivered()
        if callback is not None:
            callback(job)
