"""LookinBody Web link: polls InBody's cloud (httpx, imported lazily) and yields each answer as an
``http`` LinkEvent carrying a ``drivers.inbody`` envelope, so the daemon decodes, dedupes, pairs and
uploads it like any scale reading (and ``record`` captures it like any link).

What is asked when is decided by ``drivers.inbody.PollScheduler`` (sans-I/O); this module only does the
HTTP: ``POST`` with the headers ``Account`` and ``API-KEY`` (never logged, never sent anywhere but
``base_url``: redirects are not followed), a connect and a total timeout, answers capped at
``MAX_FRAME_BYTES``. A failed call is a ``LinkError``-free event: an ``error`` envelope (the daemon logs
it as a device report) plus a backoff; the link never gives up by itself, so a LookinBody outage or a
missing data-access add-on (401 on the data endpoints) costs nothing but time.

State words: ``connecting`` -> ``connected`` (the last call succeeded) | ``unauthorized`` (401/403) |
``disconnected`` (timeouts, 5xx, garbage) -> ``closed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .. import inbody as ib
from ..errors import FrameError, LinkError
from ..events import EventKind, LinkEvent
from .base import StateCallback, StateReporter, says_why

DEFAULT_BASE_URL = "https://apiusa.lookinbody.com"
#: 4xx answers (other than 401/403/429) to one test before the link stops asking for it
MAX_TEST_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class LookinBodySettings:
    account: str
    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    poll_interval_s: float = 60.0
    time_zone: str = "UTC"
    identify_by: ib.IdentifyBy = ib.IdentifyBy.USER_ID
    mass_unit: ib.MassUnit = ib.MassUnit.KG
    date_format: ib.DateFormat = ib.DateFormat.COMPACT
    timeout_s: float = 20.0
    connect_timeout_s: float = 10.0
    pace_s: float = 1.0
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 900.0
    lookback_days: int = 1


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange: ``status`` 0 when there was no answer (timeout, refused, too large)."""

    status: int
    text: str
    retry_after_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


class LookinBodyClient:
    """The HTTP side: one pooled ``httpx.AsyncClient`` with the two headers."""

    def __init__(self, settings: LookinBodySettings, *, transport: Any = None) -> None:
        import httpx

        self._httpx = httpx
        self.settings = settings
        self._client = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers={"Account": settings.account, "API-KEY": settings.api_key, "Accept": "application/json"},
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,  # never carry the key to another host
            transport=transport,
        )

    async def post(self, endpoint: str, body: dict[str, str]) -> Answer:
        httpx = self._httpx
        try:
            async with self._client.stream("POST", endpoint, json=body) as resp:
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > ib.MAX_FRAME_BYTES:
                        return Answer(0, "", error=f"answer larger than {ib.MAX_FRAME_BYTES} bytes")
                    chunks.append(chunk)
                text = b"".join(chunks).decode("utf-8", "replace")
                if 300 <= resp.status_code < 400:
                    return Answer(resp.status_code, text, error="redirect not followed (the key stays with base_url)")
                return Answer(resp.status_code, text, _retry_after(resp.headers.get("Retry-After")))
        except httpx.TimeoutException:
            return Answer(0, "", error="timeout")
        except (httpx.HTTPError, OSError) as exc:
            return Answer(0, "", error=type(exc).__name__)

    async def aclose(self) -> None:
        await self._client.aclose()


def fetch_plan(test: ib.TestRef) -> list[tuple[str, dict[str, str]]]:
    """The endpoints that give one test's values, full (descriptive keys) first, then abbreviated.
    By ``UserID`` (local to the account) when the listing gave one, else by ``usertoken``."""
    if test.user_id:
        body = {"UserID": test.user_id, "Datetimes": test.datetimes}
        return [(ib.ENDPOINT_FULL_BY_ID, body), (ib.ENDPOINT_ABBR_BY_ID, body)]
    body = {"usertoken": test.user_token, "datetimes": test.datetimes}
    return [(ib.ENDPOINT_FULL, body), (ib.ENDPOINT_ABBR, body)]


class LookinBodyLink(StateReporter):
    def __init__(
        self,
        settings: LookinBodySettings,
        *,
        scale: str = "",
        on_state: StateCallback | None = None,
        clock: Callable[[], float] = time.time,
        transport: Any = None,
    ) -> None:
        self.settings = settings
        self.name = f"lookinbody:{settings.account}"
        self.scale = scale
        self._on_state = on_state
        self._state = "connecting"
        self._clock = clock
        self._transport = transport
        self._closed = False
        self._wake = asyncio.Event()
        self._attempts: dict[tuple[str, str], int] = {}
        self.scheduler = ib.PollScheduler(
            ZoneInfo(settings.time_zone),
            interval_s=settings.poll_interval_s,
            pace_s=settings.pace_s,
            backoff_base_s=settings.backoff_base_s,
            backoff_cap_s=settings.backoff_cap_s,
            lookback_days=settings.lookback_days,
        )

    def _event(self, payload: bytes, endpoint: str) -> LinkEvent:
        return LinkEvent(
            EventKind.HTTP,
            payload,
            datetime.fromtimestamp(self._clock(), UTC),
            channel=endpoint.lower(),
            address=self.name,
            scale=self.scale,
        )

    def _error(self, endpoint: str, answer: Answer) -> LinkEvent:
        text = answer.text or answer.error
        payload = ib.error_envelope(account=self.settings.account, endpoint=endpoint, status=answer.status, answer=text)
        detail = ib.explain_status(answer.status, endpoint) + (f": {answer.error}" if answer.error else "")
        self._set_state("unauthorized" if answer.status in (401, 403) else "disconnected", detail)
        return self._event(payload, endpoint)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        client = LookinBodyClient(self.settings, transport=self._transport)
        sched = self.scheduler
        try:
            while not self._closed:
                now = self._clock()
                step = sched.next(now)
                if isinstance(step, ib.Wait):
                    await self._sleep(step.until - now)
                elif isinstance(step, ib.ListDay):
                    for ev in await self._list(client, step):
                        yield ev
                else:
                    for ev in await self._fetch(client, step):
                        yield ev
        finally:
            await client.aclose()
            self._set_state("closed")

    async def _list(self, client: LookinBodyClient, step: ib.ListDay) -> list[LinkEvent]:
        day = self.settings.date_format.render(step.day)
        answer = await client.post(ib.ENDPOINT_TODAY, {"Date": day})
        now = self._clock()
        if not answer.ok:
            self.scheduler.failed(step, now, answer.retry_after_s)
            return [self._error(ib.ENDPOINT_TODAY, answer)]
        try:
            tests = ib.parse_listing(answer.text)
        except FrameError as exc:
            self.scheduler.failed(step, now)
            return [self._error(ib.ENDPOINT_TODAY, Answer(200, answer.text, error=exc.reason))]
        self._set_state("connected")
        self.scheduler.listed(step.day, tests, now)
        payload = ib.list_envelope(account=self.settings.account, day=day, answer=answer.text)
        return [self._event(payload, ib.ENDPOINT_TODAY)]

    async def _fetch(self, client: LookinBodyClient, step: ib.FetchTest) -> list[LinkEvent]:
        test = step.test
        answers: dict[str, str] = {}
        last: tuple[str, Answer] | None = None
        for endpoint, body in fetch_plan(test):
            answer = await client.post(endpoint, body)
            if answer.ok:
                answers[endpoint] = answer.text
                if ib.has_weight(answer.text):
                    break
            else:
                last = (endpoint, answer)
                if answer.status in (0, 401, 403, 429) or answer.status >= 500:
                    break  # the next endpoint would fail the same way: back off first
            if self._closed:
                break
        now = self._clock()
        if answers:
            self._set_state("connected")
            self._attempts.pop(test.key, None)
            self.scheduler.fetched(test, now)
            s = self.settings
            payload = ib.test_envelope(
                account=s.account, test=test, answers=answers, identify_by=s.identify_by, mass_unit=s.mass_unit
            )
            return [self._event(payload, next(iter(answers)))]
        assert last is not None
        endpoint, answer = last
        events = [self._error(endpoint, answer)]
        permanent = 400 <= answer.status < 500 and answer.status not in (401, 403, 429)
        attempts = self._attempts.get(test.key, 0) + 1
        if permanent and attempts >= MAX_TEST_ATTEMPTS:
            self._attempts.pop(test.key, None)
            self.scheduler.fetched(test, now)  # given up: the error events say so
        else:
            self._attempts[test.key] = attempts
            self.scheduler.failed(step, now, answer.retry_after_s)
        return events

    async def send(self, data: bytes) -> None:
        raise LinkError("the LookinBody link cannot send to the analyser", transient=False)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """``/user/test`` (credentials) and one data call (the add-on), for ``check`` and ``validate``."""

    connection: Answer
    data: Answer | None

    @property
    def ok(self) -> bool:
        return self.connection.ok and self.data is not None and self.data.ok


async def probe(settings: LookinBodySettings, *, now: float | None = None, transport: Any = None) -> ProbeResult:
    client = LookinBodyClient(settings, transport=transport)
    try:
        conn = await client.post(ib.ENDPOINT_TEST, {})
        if not conn.ok:
            return ProbeResult(conn, None)
        today: date = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(settings.time_zone)).date()
        data = await client.post(ib.ENDPOINT_TODAY, {"Date": settings.date_format.render(today)})
        if data.ok:
            try:
                ib.parse_listing(data.text)
            except FrameError as exc:
                data = Answer(200, data.text, error=f"listing unreadable: {exc.reason}")
        return ProbeResult(conn, data)
    finally:
        await client.aclose()


def describe(result: ProbeResult) -> tuple[bool, str]:
    """(healthy, one line with what to do)."""
    conn, data = result.connection, result.data
    if not conn.ok:
        if conn.status == 0:
            return False, f"LookinBody unreachable ({conn.error or 'no answer'}) on {ib.ENDPOINT_TEST}"
        return False, ib.explain_status(conn.status, ib.ENDPOINT_TEST)
    assert data is not None
    if data.status == 401:
        return False, (
            "LookinBody data endpoints answer 401 while /user/test works: the account's data-access add-on is "
            "not active. Ask InBody support to activate API data access for this LookinBody account; nothing "
            "is lost meanwhile (tests are fetched once it is active, up to lookback_days back)"
        )
    if not data.ok:
        return False, ib.explain_status(data.status, ib.ENDPOINT_TODAY)
    if data.error:
        return False, f"LookinBody {ib.ENDPOINT_TODAY}: {data.error}"
    return True, "LookinBody reachable, key valid, data access active"
