"""The platform client against the simulator (a real HTTP server): answers and every failure class."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bridge.errors import (
    AmbiguousDelivery,
    AuthRejected,
    NotFound,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from bridge.platform import PlatformClient, classify_response


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def client(sim: Any, studio: int = 1, timeout_s: float = 5.0) -> PlatformClient:
    return PlatformClient(sim.url, sim.api_key(studio), timeout_s=timeout_s, connect_timeout_s=2)


def faults(sim: Any, **doc: Any) -> None:
    r = httpx.post(sim.url + "/_sim/faults", json=doc)
    assert r.status_code == 200, r.text


def test_card_lookup_profile_and_benefits(simulator: Any) -> None:
    async def go() -> Any:
        async with client(simulator) as c:
            prof = await c.customer_by_card("3220338716", "DECIMAL")
            by_hex = await c.customer_by_card("BFF2781C", "HEX_MSB")
            by_lsb = await c.customer_by_card("1C78F2BF", "HEX_LSB")
            valid = await c.benefit_valid_by_card("3220338716", "DECIMAL", "BODY_SCAN")
            invalid = await c.benefit_valid(1002, "BODY_SCAN")
            return prof, by_hex, by_lsb, valid, invalid

    prof, by_hex, by_lsb, valid, invalid = run(go())
    assert prof.id == by_hex.id == by_lsb.id == 1001
    assert prof.gender == "MALE" and prof.height_cm == 181.0 and isinstance(prof.age, int)
    assert valid is True and invalid is False


def test_unknown_card_is_not_found_with_the_server_message(simulator: Any) -> None:
    async def go() -> None:
        async with client(simulator) as c:
            await c.customer_by_card("999", "DECIMAL")

    with pytest.raises(NotFound) as exc:
        run(go())
    assert exc.value.status == 404 and exc.value.error_code == "CUSTOMER_NOT_FOUND" and exc.value.trace_id


def test_wrong_key_is_auth_rejected(simulator: Any) -> None:
    async def go() -> None:
        async with PlatformClient(simulator.url, "not-a-key-xxxxxx") as c:
            await c.check_key()

    with pytest.raises(AuthRejected) as exc:
        run(go())
    assert exc.value.status == 401 and not exc.value.retryable


def test_non_conforming_request_is_rejected_by_the_simulator(simulator: Any) -> None:
    async def go() -> None:
        async with client(simulator) as c:
            await c.post_weighing(1001, {"weight": 80.0}, benefit_key=None, idempotency_key="k")  # no rawResults

    with pytest.raises(RequestRejected) as exc:
        run(go())
    assert exc.value.status == 400 and "rawResults" in exc.value.message and not exc.value.retryable


@pytest.mark.parametrize(("kind", "expected", "ambiguous"), [
    ("503", AmbiguousDelivery, True),  # may have been applied (platform-api.md, Update 2026-12-01)
    ("500", PlatformUnavailable, False),
    ("reset_before", AmbiguousDelivery, True),
    ("reset_after", AmbiguousDelivery, True),
    ("html", PlatformUnavailable, False),
    ("malformed", PlatformUnavailable, False),
    ("429", RateLimited, False),
])
def test_post_failures_are_classified(simulator: Any, kind: str, expected: type, ambiguous: bool) -> None:
    faults(simulator, script=[kind])

    async def go() -> None:
        async with client(simulator) as c:
            await c.post_weighing(1001, {"weight": 80.0, "rawResults": "x"}, benefit_key=None, idempotency_key="k")

    with pytest.raises(expected) as exc:
        run(go())
    assert exc.value.retryable
    assert exc.value.ambiguous is ambiguous


def test_read_timeout_after_commit_is_ambiguous_and_the_server_kept_it(simulator: Any) -> None:
    faults(simulator, script=["timeout_after_commit"], delay_s=3)

    async def go() -> None:
        async with client(simulator, timeout_s=0.5) as c:
            await c.post_weighing(1001, {"weight": 81.0, "rawResults": "x"}, benefit_key=None, idempotency_key="k1")

    with pytest.raises(AmbiguousDelivery):
        run(go())
    got = simulator.call(lambda: [w["idempotencyKey"] for w in simulator.state.weighings])
    assert got == ["k1"]  # the platform did store it: exactly why this attempt is counted as ambiguous


def test_get_failure_after_send_is_not_ambiguous(simulator: Any) -> None:
    faults(simulator, script=["reset_after"])

    async def go() -> None:
        async with client(simulator) as c:
            await c.customer_by_card("3220338716")

    with pytest.raises(PlatformUnavailable) as exc:
        run(go())
    assert not exc.value.ambiguous


def test_connection_refused_is_retryable_not_ambiguous() -> None:
    async def go() -> None:
        async with PlatformClient("http://127.0.0.1:9", "k" * 10, connect_timeout_s=1) as c:
            await c.post_weighing(1, {"rawResults": "x"}, benefit_key=None, idempotency_key="k")

    with pytest.raises(PlatformUnavailable) as exc:
        run(go())
    assert exc.value.retryable and not exc.value.ambiguous


def test_retry_after_header_is_read() -> None:
    resp = httpx.Response(503, headers={"Retry-After": "120"})
    err = classify_response(resp, b'{"errorMessage": "busy", "errorCode": "X", "traceId": "t"}')
    assert isinstance(err, PlatformUnavailable) and err.retry_after_s == 120.0
    assert err.message == "busy" and err.error_code == "X" and err.trace_id == "t"


def test_cross_studio_lookup(simulator: Any) -> None:
    async def go() -> Any:
        async with client(simulator, studio=1) as c:
            with pytest.raises(NotFound):
                await c.customer_by_card("6547886")  # a studio B member, asked with studio A's key
            return await c.cross_studio_customer("6547886")

    cs = run(go())
    assert cs.id == 1003 and cs.studio_id == 2
