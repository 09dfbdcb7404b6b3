"""Fault injection between the uploader and the platform simulator (a real HTTP server on 127.0.0.1),
through the simulator's own faults and a small TCP proxy (tests/fakes/proxy.py).

The uploader runs with a fake clock (wall and monotonic) whose ``sleep`` advances time, so a 60 s
lock-out or a 15 min backoff costs nothing. Each test says what the outbox, the uploader's counters
and the simulator hold afterwards: retried or not, ambiguous or not, how many copies arrived.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.fakes

from bridge.config import config_from_dict, replace
from bridge.outbox import JobState, Outbox, Stage
from bridge.pacing import retry_delay
from bridge.platform import MAX_ERROR_BODY, PlatformClient
from bridge.simulator import SimulatorThread
from bridge.simulator.model import Faults
from bridge.upload import decisions as uploader_mod
from bridge.uploader import Uploader
from drivers.cards.numbers import ReaderFormat
from tests.fakes.proxy import TcpProxy
from tests.helpers import UPLOAD_STORES, FakeClock, upload_store_for

CARD = "1234567890123456"  # seeded member 1004, studio A
POST = "createCustomerWeighing"


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the response bytes the client actually pulled off the connection."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.read = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        outer = self
        inner_stream: Any = resp.stream

        class Stream(httpx.AsyncByteStream):
            async def __aiter__(self) -> Any:
                async for chunk in inner_stream:
                    outer.read += len(chunk)
                    yield chunk

            async def aclose(self) -> None:
                await inner_stream.aclose()

        return httpx.Response(resp.status_code, headers=resp.headers, stream=Stream(), extensions=resp.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Env:
    #: the uploader's store (``_store_kind`` runs every test with each): the sync Outbox inline, or an
    #: AsyncOutbox on its own thread and connection, beside the test's own sync Outbox (as the daemon)
    store_kind = "inline"

    def __init__(self, tmp_path: Path, url: str, key: str, *, benefit_key: str = "",
                 transport: httpx.AsyncBaseTransport | None = None, timeout_s: float = 0.5) -> None:
        self.clock = FakeClock()
        self.cfg = config_from_dict({
            "platform": {"base_url": url, "api_key": key, "benefit_key": benefit_key, "timeout_s": timeout_s,
                         "connect_timeout_s": 0.5},
            "scale": {"driver": "tanita", "capture": str(tmp_path / "unused.capture.jsonl")},
            "state": {"dir": str(tmp_path)},
            "queue": {"backoff_base_s": 2.0, "backoff_cap_s": 900.0},
        }, source="test")
        self.outbox = Outbox(self.cfg.outbox_path, clock=self.clock.wall)
        self.client = PlatformClient(url, key, timeout_s=timeout_s, connect_timeout_s=0.5, transport=transport)
        # one clock for both connections: a test that swaps the outbox's clock swaps the store's too
        self.store = upload_store_for(self.store_kind, self.outbox, lambda: self.outbox._clock())  # noqa: PLW0108 - late binding
        self.up = Uploader(self.cfg, self.store, self.client, clock=self.clock.wall, monotonic=self.clock.mono,
                           rng=random.Random(1), sleep=self.clock.sleep)
        self.n = 0

    def capture(self, card: str | None = CARD, body: dict[str, Any] | None = None) -> int:
        self.n += 1
        wid = self.outbox.capture(scale="s", driver="tanita", card=card, card_source="scale_id",
                                  body=body or {"weight": 70.0 + self.n / 10, "rawResults": f"synthetic #{self.n}"})
        assert wid is not None
        return wid

    async def process(self, wid: int) -> None:
        job = self.outbox.get(wid)
        assert job is not None
        await self.up.process(job)

    def job(self, wid: int):  # type: ignore[no-untyped-def]
        return self.outbox.get(wid)

    async def close(self) -> None:
        await self.client.aclose()
        if self.store is not self.outbox:
            await self.store.close()
        self.outbox.close()


@pytest.fixture(scope="module")
def sim():  # type: ignore[no-untyped-def]
    with SimulatorThread(rate_limit_per_min=10**6) as s:
        yield s


@pytest.fixture(autouse=True, params=UPLOAD_STORES)
def _store_kind(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    Env.store_kind = request.param
    yield request.param
    Env.store_kind = "inline"


@pytest.fixture(autouse=True)
def _no_faults(sim: SimulatorThread):  # type: ignore[no-untyped-def]
    sim.call(lambda: setattr(sim.state, "faults", Faults()))
    yield
    sim.call(lambda: setattr(sim.state, "faults", Faults()))


def script(sim: SimulatorThread, *kinds: str, operation: str = POST, delay_s: float = 1.0) -> None:
    sim.call(lambda: setattr(sim.state, "faults", Faults(script=deque(kinds), operations=(operation,),
                                                         delay_s=delay_s)))


def copies(sim: SimulatorThread, uid: str) -> int:
    return int(sim.call(lambda: sum(1 for w in sim.state.weighings if w["idempotencyKey"] == uid)))


# ---- retryable answers: backoff, no duplicate ------------------------------------------------------

@pytest.mark.parametrize(("fault", "status"), [
    ("500", 500), ("502", 502), ("503", 503), ("504", 504),
    ("html", 502),  # an HTML error page from a proxy
    ("malformed", 500),  # a JSON error body cut short
    ("huge", 500),  # a 4 MiB error body
])
def test_retryable_answer_backs_off_then_delivers_once(sim: SimulatorThread, tmp_path: Path, fault: str,
                                                       status: int) -> None:
    async def main() -> None:
        counting = CountingTransport()
        env = Env(tmp_path, sim.url, sim.api_key(1), transport=counting)
        wid = env.capture()
        script(sim, fault)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.PENDING and job.stage is Stage.POST
        # a 5xx answer to a sent write may have been applied before the server failed (the platform
        # documents this for 503): the retry is counted as ambiguous, whatever the body said
        assert (job.attempts, job.ambiguous, job.last_status) == (1, 1, status)
        now = env.clock.wall()
        assert now + 1.0 <= job.next_attempt_at <= now + 900.0  # >= base/2, <= cap
        assert env.up.counters.retries == 1 and env.up.counters.ambiguous == 1
        if fault == "huge":
            # the client stopped reading: at most the error-body cap plus one network chunk
            assert counting.read <= MAX_ERROR_BODY + 128 * 1024 < 4 * 1024 * 1024
            assert "error body not JSON" in (job.last_error or "")
        if fault == "html":
            assert "<h1>502 Bad Gateway" in (job.last_error or "")
        env.clock.advance_to(job.next_attempt_at)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED
        assert copies(sim, job.uid) == 1
        await env.close()

    asyncio.run(main())


def test_slow_answer_within_the_timeout_is_not_a_failure(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1), timeout_s=2.0)
        wid = env.capture()
        script(sim, "slow", delay_s=0.3)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED and job.attempts == 1 and job.ambiguous == 0
        assert copies(sim, job.uid) == 1
        await env.close()

    asyncio.run(main())


# ---- ambiguous: the request may have reached the platform ----------------------------------------

@pytest.mark.parametrize(("fault", "platform_got_it"), [
    ("timeout_after_commit", True),  # the platform committed; the answer came after our read timeout
    ("reset_after", True),  # committed, then the connection was reset
    ("reset_before", False),  # reset before processing: we cannot know that, so it counts as ambiguous
])
def test_ambiguous_write_is_retried_and_counted(sim: SimulatorThread, tmp_path: Path, fault: str,
                                                platform_got_it: bool) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wid = env.capture()
        script(sim, fault, delay_s=1.5)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.PENDING and job.ambiguous == 1 and job.attempts == 1
        assert env.up.counters.ambiguous == 1
        assert [e for _, e, _ in env.outbox.history(wid)].count("ambiguous_attempt") == 1
        assert copies(sim, job.uid) == int(platform_got_it)
        env.clock.advance_to(job.next_attempt_at)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED
        # a duplicate exists only where an ambiguous attempt was recorded
        assert copies(sim, job.uid) == 1 + int(platform_got_it) <= 1 + job.ambiguous
        assert env.outbox.stats().ambiguous_jobs == 1
        await env.close()

    asyncio.run(main())


def test_ambiguous_fault_on_a_read_is_a_plain_retry(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wid = env.capture()
        script(sim, "timeout_after_commit", operation="getCustomerMeasurement", delay_s=1.5)
        await env.process(wid)
        job = env.job(wid)
        assert job.stage is Stage.RESOLVE and job.ambiguous == 0 and job.attempts == 1
        await env.close()

    asyncio.run(main())


@pytest.mark.parametrize(("mode", "platform_got_it", "ambiguous"), [
    ("refuse", False, 1),  # reset right after connect: the bytes may have left, so ambiguous for a write
    ("reset_after_request", True, 1),
    ("blackhole", False, 1),  # never answered: read timeout
])
def test_proxy_faults_on_the_write(sim: SimulatorThread, tmp_path: Path, mode: str, platform_got_it: bool,
                                   ambiguous: int) -> None:
    async def main() -> None:
        with TcpProxy(sim.port) as proxy:
            env = Env(tmp_path, proxy.url, sim.api_key(1))
            wid = env.capture()
            orig = env.client.post_weighing

            async def post(*a: Any, **kw: Any) -> int:
                proxy.mode = mode  # resolve went through; the POST meets the fault
                return await orig(*a, **kw)

            env.client.post_weighing = post  # type: ignore[method-assign]
            await env.process(wid)
            job = env.job(wid)
            assert job.state is JobState.PENDING and job.stage is Stage.POST
            assert job.ambiguous == ambiguous
            assert copies(sim, job.uid) == int(platform_got_it)
            env.client.post_weighing = orig  # type: ignore[method-assign]
            proxy.mode = "pass"
            env.clock.advance_to(job.next_attempt_at)
            await env.process(wid)
            job = env.job(wid)
            assert job.state is JobState.DELIVERED
            assert copies(sim, job.uid) == 1 + int(platform_got_it)
            await env.close()

    asyncio.run(main())


def test_a_trickled_answer_hits_the_overall_deadline(sim: SimulatorThread, tmp_path: Path) -> None:
    """httpx's read timeout is per read: an answer trickled one byte per 0.1 s never trips a 0.5 s read
    timeout. The client's overall deadline (connect + 2 x timeout = 1.5 s) ends it, as ambiguous."""
    async def main() -> None:
        with TcpProxy(sim.port) as proxy:
            env = Env(tmp_path, proxy.url, sim.api_key(1))
            assert env.client.deadline_s == 1.5
            wid = env.capture()
            orig = env.client.post_weighing

            before: list[int] = []

            async def post(*a: Any, **kw: Any) -> int:
                before.append(proxy.to_client_bytes)
                proxy.mode = "trickle"
                return await orig(*a, **kw)

            env.client.post_weighing = post  # type: ignore[method-assign]
            await env.process(wid)
            job = env.job(wid)
            assert job.state is JobState.PENDING and job.ambiguous == 1
            assert "within 1.5 s" in (job.last_error or "")
            assert 0 < proxy.to_client_bytes - before[0] < 100  # it was answering, slowly
            assert copies(sim, job.uid) == 1  # the platform had taken it
            await env.close()

    asyncio.run(main())


def test_connection_refused_is_not_ambiguous(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there
        env = Env(tmp_path, f"http://127.0.0.1:{port}", sim.api_key(1))
        wid = env.capture()
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.PENDING and job.ambiguous == 0 and job.last_status is None
        assert "unreachable" in (job.last_error or "")
        assert env.up.platform_down_until > env.clock.wall()  # one probe per backoff while it is down
        await env.close()

    asyncio.run(main())


# ---- 429: the endpoint is paused >= 60 s --------------------------------------------------------------

def test_429_pauses_the_endpoint_for_at_least_60_s(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        clock_holder: list[FakeClock] = []
        env = Env(tmp_path, sim.url, sim.api_key(1))
        clock_holder.append(env.clock)
        sim.call(lambda: setattr(sim.state, "monotonic", env.clock.mono))  # the lock-out runs on our clock
        try:
            first, second = env.capture(), env.capture()
            script(sim, "429")
            await env.process(first)
            t429 = env.clock.mono()
            job = env.job(first)
            assert job.state is JobState.PENDING and job.last_status == 429
            assert job.next_attempt_at >= env.clock.wall() + 60
            assert env.up.counters.rate_limited == 1
            assert env.up.pacer.delay(POST, env.clock.mono()) >= 60
            # the second job is due now: its POST waits out the pause (fake sleep), then goes through
            await env.process(second)
            assert env.job(second).state is JobState.DELIVERED
            assert env.clock.mono() - t429 >= 60
            assert sim.call(lambda: sim.state.counters["rate_limited"]) == 0  # never hit the lock-out
            env.clock.advance_to(env.job(first).next_attempt_at)
            await env.process(first)
            assert env.job(first).state is JobState.DELIVERED
        finally:
            import time

            # the lock-out this test caused is on its fake clock: the next test's clock starts at 0 again
            sim.call(lambda: sim.state._locked_until.pop(POST, None))
            sim.call(lambda: setattr(sim.state, "monotonic", time.monotonic))
            await env.close()

    asyncio.run(main())


# ---- permanent refusals: dead letters ----------------------------------------------------------------

def test_400_is_dead_lettered_with_code_and_trace(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wid = env.capture(body={"weight": "heavy", "rawResults": "synthetic bad body"})  # fails validation
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DEAD
        dl = env.outbox.dead_letter(wid)
        assert dl is not None and dl.status == 400 and dl.error_code == "VALIDATION_FAILED"
        assert dl.trace_id and len(dl.trace_id) >= 16 and dl.error_message.startswith("Validation")
        assert dl.stage == "post"
        assert env.outbox.stats().dead == 1 and env.up.counters.dead_letters == 1
        await env.close()

    asyncio.run(main())


def test_409_is_retried_then_dead_lettered(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        limit = env.cfg.queue.max_conflict_retries
        wid = env.capture()
        script(sim, *["409"] * (limit + 5))
        for _ in range(limit + 5):
            job = env.job(wid)
            if job.state is not JobState.PENDING:
                break
            env.clock.advance(max(0.0, job.next_attempt_at - env.clock.wall()))
            await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DEAD and job.attempts == limit
        dl = env.outbox.dead_letter(wid)
        assert dl is not None and dl.status == 409 and dl.error_code == "CONCURRENT_MODIFICATION" and dl.trace_id
        assert env.up.counters.retries == limit - 1 and env.up.counters.dead_letters == 1
        assert copies(sim, job.uid) == 0
        await env.close()

    asyncio.run(main())


def test_403_stops_uploads_like_401(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wid = env.capture()
        script(sim, "403")
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.PENDING and job.ambiguous == 0  # kept, not dead-lettered
        assert env.up.auth_error is not None and env.up.auth_error.status == 403
        assert json.loads(env.outbox.meta("auth_failure") or "{}")["status"] == 403
        await env.close()

    asyncio.run(main())


def test_unknown_card_is_dead_lettered_404(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wid = env.capture(card="999999")
        await env.process(wid)
        dl = env.outbox.dead_letter(wid)
        assert env.job(wid).state is JobState.DEAD and dl is not None and dl.status == 404 and dl.stage == "resolve"
        await env.close()

    asyncio.run(main())


# ---- 401: stop, keep everything, resume by itself ------------------------------------------------------

def test_401_stops_uploads_keeps_the_queue_and_resumes_when_the_key_works(sim: SimulatorThread, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uploader_mod, "AUTH_PROBE_INTERVAL_S", 0.05)
    key = f"rotated-key-not-yet-known-{uuid.uuid4().hex[:8]}"  # unknown to the (module-wide) simulator

    async def main() -> None:
        import time

        env = Env(tmp_path, sim.url, key)
        env.up.clock = time.time  # the real loop, on real time (short waits only)
        env.up.monotonic = time.monotonic
        env.up.sleep = asyncio.sleep
        env.outbox._clock = time.time
        wids = [env.capture() for _ in range(3)]
        start = sim.call(lambda: len(sim.state.requests))
        task = asyncio.create_task(env.up.run())
        guard = time.monotonic() + 20  # failure guard only
        # the halt, and its record in the outbox (what `check` reports as CRITICAL: with the threaded
        # store that commit lands a moment after the uploader has halted)
        while env.up.auth_error is None or env.outbox.meta("auth_failure") is None:
            assert time.monotonic() < guard
            await asyncio.sleep(0.02)
        requests_at_stop = sim.call(lambda: len(sim.state.requests))
        await asyncio.sleep(0.5)  # ten probe intervals
        seen = sim.call(lambda: list(sim.state.requests)[start:])
        assert all(r.get("status") == 401 for r in seen)  # nothing got through with the rejected key
        assert not any(r["operation"] == POST for r in seen if r["method"] == "POST")
        st = env.outbox.stats()
        assert st.pending == 3 and st.dead == 0  # nothing dropped, nothing dead-lettered
        assert 1 <= env.up.counters.auth_failures <= 3  # the jobs already in flight when the first 401 came
        # while halted: one weighing per probe interval is tried for real (member lookup + benefit
        # check), never a burst per queued or newly captured weighing (10 intervals in 0.5 s)
        assert sim.call(lambda: len(sim.state.requests)) - requests_at_stop <= 2 * 12
        # the integrator fixes the key on the platform side: the uploader notices by itself
        sim.call(lambda: sim.state.by_key.__setitem__(key, sim.state.studios[1]))
        while env.outbox.stats().delivered < 3:
            assert time.monotonic() < guard
            await asyncio.sleep(0.05)
        assert env.up.auth_error is None and env.outbox.meta("auth_failure") is None
        env.up.stop()
        await task
        for wid in wids:
            assert copies(sim, env.job(wid).uid) == 1
        await env.close()

    asyncio.run(main())


# ---- recovery after an outage releases the backlog in capture order --------------------------------------

def test_after_an_outage_the_backlog_is_due_at_once_in_capture_order(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1))
        wids = [env.capture() for _ in range(6)]
        sim.call(lambda: setattr(sim.state, "faults", Faults(rate=1.0, kinds=("503",))))
        for wid in wids:
            for _ in range(4):
                await env.process(wid)
        due_times = [env.job(w).next_attempt_at for w in wids]
        assert due_times != sorted(due_times) or len(set(due_times)) > 1  # jittered
        sim.call(lambda: setattr(sim.state, "faults", Faults()))
        env.clock.advance_to(min(due_times))
        first = min(wids, key=lambda w: env.job(w).next_attempt_at)
        await env.process(first)  # the platform answers again
        assert env.job(first).state is JobState.DELIVERED
        due = env.outbox.due(env.clock.wall(), limit=100)
        assert [j.id for j in due] == [w for w in wids if w != first]  # all due now, in capture order
        await env.close()

    asyncio.run(main())


# ---- backoff arithmetic ----------------------------------------------------------------------------------

@given(attempt=st.integers(0, 60), base=st.floats(0.1, 10), cap=st.floats(10, 3600),
       retry_after=st.one_of(st.none(), st.floats(0, 7200)), seed=st.integers(0, 2**32 - 1))
def test_backoff_is_full_jitter_capped_and_respects_retry_after(attempt: int, base: float, cap: float,
                                                                retry_after: float | None, seed: int) -> None:
    d = retry_delay(attempt, base, cap, retry_after, random.Random(seed))
    assert d >= base / 2
    if retry_after is None:
        assert d <= max(cap, base / 2)
    else:
        assert d >= retry_after and d <= max(cap, base / 2, retry_after)


# ---- resolve: the member lookup and the benefit check go out together ------------------------------

def _arrivals(sim: SimulatorThread, operation: str) -> list[float]:
    from datetime import datetime

    return [datetime.fromisoformat(at).timestamp() for at in
            sim.call(lambda: [r["at"] for r in sim.state.requests if r["operation"] == operation])]


def _benefit_keys(sim: SimulatorThread, uid: str) -> list[str | None]:
    return list(sim.call(lambda: [w["benefitKey"] for w in sim.state.weighings if w["idempotencyKey"] == uid]))


def test_benefit_check_is_asked_while_the_member_lookup_is_answered(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1), benefit_key="BODY_SCAN", timeout_s=5.0)
        wid = env.capture()
        sim.call(sim.state.requests.clear)
        script(sim, "slow", operation="getCustomerMeasurement", delay_s=1.0)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED
        (member,) = _arrivals(sim, "getCustomerMeasurement")
        (benefit,) = _arrivals(sim, "getBenefitsByCardNumber")
        # asked in turn, the benefit check could only start after the member's answer (>= 1 s later)
        assert abs(benefit - member) < 0.5
        assert _benefit_keys(sim, job.uid) == ["BODY_SCAN"]
        await env.close()

    asyncio.run(main())


def test_member_found_by_a_fallback_format_gets_the_benefit_asked_with_that_format(
        sim: SimulatorThread, tmp_path: Path) -> None:
    """Member 1001's card read as hex with its bytes the wrong way round: the first query (and the
    benefit check sent with it) find nobody; the fallback finds the member, and the benefit is asked
    again with the query that worked, not taken from the 404."""
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1), benefit_key="BODY_SCAN")
        cards = replace(env.cfg.cards, format=ReaderFormat.HEX, fallbacks=("hex_reversed",))
        env.cfg = replace(env.cfg, cards=cards)  # the config is frozen: a new value, applied
        env.up.apply(env.cfg)
        wid = env.capture(card="1C78F2BF")
        sim.call(sim.state.requests.clear)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED, job.last_error
        assert job.customer_id == 1001
        assert len(_arrivals(sim, "getCustomerMeasurement")) == 2
        assert len(_arrivals(sim, "getBenefitsByCardNumber")) == 2  # the speculative one, then the real one
        assert _benefit_keys(sim, job.uid) == ["BODY_SCAN"]
        await env.close()

    asyncio.run(main())


@pytest.mark.parametrize("fault", ["500", "reset_before"])
def test_failed_benefit_check_fails_the_resolve_like_any_call(sim: SimulatorThread, tmp_path: Path,
                                                             fault: str) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1), benefit_key="BODY_SCAN")
        wid = env.capture()
        script(sim, fault, operation="getBenefitsByCardNumber")
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.PENDING and job.stage is Stage.RESOLVE and job.attempts == 1
        assert env.up.counters.retries == 1
        assert copies(sim, job.uid) == 0  # nothing posted on a half-known member
        env.clock.advance_to(job.next_attempt_at)
        await env.process(wid)
        job = env.job(wid)
        assert job.state is JobState.DELIVERED and copies(sim, job.uid) == 1
        await env.close()

    asyncio.run(main())


def test_unknown_card_is_not_found_and_leaves_no_call_behind(sim: SimulatorThread, tmp_path: Path) -> None:
    async def main() -> None:
        env = Env(tmp_path, sim.url, sim.api_key(1), benefit_key="BODY_SCAN")
        wid = env.capture(card="4000000001")
        await env.process(wid)
        job = env.job(wid)
        assert job.state is not JobState.DELIVERED and job.state is not JobState.PENDING
        assert "no member found" in (job.last_error or "")
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert pending == []  # the speculative benefit check was waited for, not left running
        await env.close()

    asyncio.run(main())
