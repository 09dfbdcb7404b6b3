"""Performing the journey's requests: paced per endpoint, 429 pauses kept across restarts.

``PlatformCalls`` is the only place the upload path talks to the platform client. Requests a
conversation makes together are made together and all waited for; each ends with its value or the
``PlatformError`` it failed with (the conversation decides what that means).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import PlatformError, RateLimited, StorageError
from ..outbox import Outbox
from ..pacing import Pacer
from ..platform import PlatformClient
from . import journey as j
from .policy import Rules, retry_after_s

#: outbox meta key of the persisted 429 pauses: {endpoint: until (epoch s)}
RATE_LIMIT_META = "rate_limit_pauses"


class PlatformCalls:
    def __init__(
        self,
        client: PlatformClient,
        outbox: Outbox,
        pacer: Pacer,
        *,
        rules: Callable[[], Rules],
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        answered: Callable[[], None],
        log: Any,
        via: Callable[[str, Callable[[], Any]], Awaitable[Any]] | None = None,
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.pacer = pacer
        self._rules = rules
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._answered = answered
        self.log = log
        #: how one request is made (the uploader's ``_call``: tests wrap it to count or delay calls)
        self._via = via or self.call

    async def converse(self, conv: j.Conversation) -> j.Step:
        step = conv.start()
        while isinstance(step, j.Requests):
            answers = await self.perform_all(step.requests)
            step = conv.advance(list(zip(step.requests, answers, strict=True)))
        if isinstance(step, j.Failed):
            raise step.error
        return step

    async def perform_all(self, requests: Sequence[j.Request]) -> list[Any]:
        """Requests made together; each ends with a value or a PlatformError. All of them are waited
        for (a 429 on one that is no longer needed still pauses its endpoint; nothing is left running
        unretrieved). Anything else (a bug) is raised once all have ended."""
        if len(requests) == 1:
            return [await self._answer(requests[0])]
        results = await asyncio.gather(*(self._answer(r) for r in requests), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, PlatformError):
                raise result
        return list(results)

    async def _answer(self, request: j.Request) -> Any:
        try:
            return await self._via(request.endpoint, lambda: self._send(request))
        except PlatformError as exc:
            return exc

    def _send(self, r: j.Request) -> Awaitable[Any]:
        c = self.client
        if isinstance(r, j.MemberByCard):
            return c.customer_by_card(r.number, r.card_format)
        if isinstance(r, j.CrossStudioByCard):
            return c.cross_studio_customer(r.number, r.card_format)
        if isinstance(r, j.BenefitByCard):
            return c.benefit_valid_by_card(r.number, r.card_format, r.key)
        if isinstance(r, j.BenefitById):
            return c.benefit_valid(r.customer_id, r.key)
        if isinstance(r, j.PostWeighing):
            return c.post_weighing(r.customer_id, r.body, benefit_key=r.benefit_key, idempotency_key=r.idempotency_key)
        return c.use_benefit(r.customer_id, r.key, idempotency_key=r.idempotency_key)

    async def call(self, endpoint: str, coro_fn: Callable[[], Any]) -> Any:
        """One paced request. Any answer from the platform (a refusal too) closes the outage breaker;
        a 429 pauses its endpoint at once (persisted: a restart does not walk into the lock-out)."""
        while True:
            wait = self.pacer.delay(endpoint, self._monotonic())
            if wait <= 0:
                break
            await self._sleep(wait)
        self.pacer.take(endpoint, self._monotonic())
        try:
            result = await coro_fn()
        except RateLimited as exc:
            self._pause_endpoint(endpoint, exc)
            self._answered()
            raise
        except PlatformError as exc:
            if exc.status is not None and exc.status < 500:
                self._answered()  # a refusal is an answer: the platform is up
            raise
        self._answered()
        return result

    def _pause_endpoint(self, endpoint: str, exc: RateLimited) -> None:
        pause_s = max(self._rules().rate_limit_pause_s, retry_after_s(exc.retry_after_s) or 0.0)
        self.pacer.pause(endpoint, self._monotonic() + pause_s)
        pauses = self._rate_limit_pauses()
        pauses[endpoint] = self._clock() + pause_s
        with contextlib.suppress(StorageError):
            self.outbox.set_meta(RATE_LIMIT_META, json.dumps(pauses))

    def _rate_limit_pauses(self) -> dict[str, float]:
        try:
            doc = json.loads(self.outbox.meta(RATE_LIMIT_META) or "{}")
        except ValueError:
            return {}
        now = self._clock()
        if not isinstance(doc, dict):
            return {}
        return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float) and v > now}

    def restore_rate_limits(self) -> None:
        now, mono = self._clock(), self._monotonic()
        for endpoint, until in self._rate_limit_pauses().items():
            self.pacer.pause(endpoint, mono + (retry_after_s(until - now) or 0.0))
            self.log.info("rate_limit_pause_restored", endpoint=endpoint, remaining_s=round(until - now, 1))
