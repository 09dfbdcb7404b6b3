"""The failure policy as a table (bridge/upload/policy.py), and the journey's conversations as pure
state machines (bridge/upload/journey.py): no server, no clock, no outbox."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import (
    AmbiguousDelivery,
    AuthRejected,
    Conflict,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from bridge.outbox import Job, JobState, Stage, WaitReason
from bridge.platform import CrossStudioCustomer, CustomerProfile
from bridge.upload import journey as j
from bridge.upload.policy import (
    INTERNAL_ERROR_RETRY_S,
    MAX_RETRY_AFTER_S,
    DeadLetter,
    PauseEndpoint,
    Retry,
    Rules,
    StopAll,
    decide,
    retry_after_s,
)

NOW = 1_800_000_000.0
RULES = Rules(backoff_base_s=2.0, backoff_cap_s=900.0, rate_limit_pause_s=60.0, max_conflict_retries=5)


def job(stage: Stage = Stage.RESOLVE, *, attempts: int = 0, inflight: str | None = None) -> Job:
    return Job(
        id=1, uid="u", captured_at=NOW, scale="s", driver="tanita", card="1", card_source="x", body={},
        state=JobState.PENDING, stage=stage, customer_id=None, home_studio=None, profile=None, card_query=None,
        benefit_valid=None, benefit_attached=None, benefit_used=None, resolved_at=None, attempts=attempts,
        ambiguous=0, inflight=inflight, next_attempt_at=NOW, last_status=None, last_error=None, note=None,
        delivered_at=None, wait_reason=None,
    )


def err(cls: type[PlatformError], status: int | None, retry_after_s: float | None = None) -> PlatformError:
    return cls("x", status=status, retry_after_s=retry_after_s)


# (error, stage, attempts, inflight) -> (decision type, wait reason, ambiguous, outage)
Row = tuple[str, BaseException, Stage, int, str | None, type, WaitReason | None, bool, bool]
TABLE: list[Row] = [
    ("401 on resolve", err(AuthRejected, 401), Stage.RESOLVE, 0, None, StopAll, WaitReason.AUTH, False, False),
    ("403 on post", err(AuthRejected, 403), Stage.POST, 0, "post", StopAll, WaitReason.AUTH, False, False),
    ("429 on resolve", err(RateLimited, 429), Stage.RESOLVE, 0, None, PauseEndpoint, WaitReason.RATE_LIMIT, False,
     False),
    ("no answer before sending", err(PlatformUnavailable, None), Stage.RESOLVE, 0, None, Retry, WaitReason.OUTAGE,
     False, True),
    ("no answer after a sent write", err(AmbiguousDelivery, None), Stage.POST, 1, "post", Retry, WaitReason.OUTAGE,
     True, True),
    ("503 to a GET", err(PlatformUnavailable, 503), Stage.RESOLVE, 0, None, Retry, WaitReason.OUTAGE, False, True),
    ("503 to a POST", err(PlatformUnavailable, 503), Stage.POST, 1, "post", Retry, WaitReason.OUTAGE, True, True),
    ("500 to a GET", err(PlatformUnavailable, 500), Stage.RESOLVE, 0, None, Retry, WaitReason.BACKOFF, False, False),
    ("500 to a POST", err(PlatformUnavailable, 500), Stage.POST, 1, "post", Retry, WaitReason.BACKOFF, True, False),
    ("500 to the /use", err(PlatformUnavailable, 500), Stage.USE, 1, "use", Retry, WaitReason.BACKOFF, True, False),
    ("409 early", err(Conflict, 409), Stage.POST, 2, "post", Retry, WaitReason.BACKOFF, False, False),
    ("409 exhausted", err(Conflict, 409), Stage.POST, 5, "post", DeadLetter, None, False, False),
    ("400", err(RequestRejected, 400), Stage.POST, 1, "post", DeadLetter, None, False, False),
    ("404 member", err(NotFound, 404), Stage.RESOLVE, 0, None, DeadLetter, None, False, False),
    ("a bug before any write", RecursionError("deep"), Stage.RESOLVE, 0, None, Retry, WaitReason.BACKOFF, False,
     False),
    ("a bug after begin(post)", RecursionError("deep"), Stage.POST, 1, "post", Retry, WaitReason.BACKOFF, True,
     False),
]


@pytest.mark.parametrize("row", TABLE, ids=[row[0] for row in TABLE])
def test_decide_table(row: Row) -> None:
    _, error, stage, attempts, inflight, kind, reason, ambiguous, outage = row
    d = decide(error, stage, job(stage, attempts=attempts, inflight=inflight), RULES, now=NOW, rng=random.Random(1))
    assert type(d) is kind, d
    retry = d if isinstance(d, Retry) else getattr(d, "retry", None)
    if reason is None:
        assert retry is None
        return
    assert retry is not None
    assert (retry.reason, retry.ambiguous, retry.outage) == (reason, ambiguous, outage)
    assert NOW <= retry.at <= NOW + max(RULES.backoff_cap_s, RULES.rate_limit_pause_s, INTERNAL_ERROR_RETRY_S)


def test_a_dead_letter_keeps_what_the_server_said() -> None:
    e = NotFound("no member", status=404, error_code="CUSTOMER_NOT_FOUND", trace_id="t-1")
    d = decide(e, Stage.RESOLVE, job(), RULES, now=NOW, rng=random.Random(1))
    assert d == DeadLetter(Stage.RESOLVE, 404, "CUSTOMER_NOT_FOUND", "no member", "t-1")


@pytest.mark.parametrize("hint", [math.inf, 1e308, float("nan"), -5.0, 99999999999.0])
def test_retry_after_is_believed_only_finite_and_capped(hint: float) -> None:
    got = retry_after_s(hint)
    assert got is None or 0 <= got <= MAX_RETRY_AFTER_S
    d = decide(err(RateLimited, 429, hint), Stage.RESOLVE, job(), RULES, now=NOW, rng=random.Random(1))
    assert isinstance(d, PauseEndpoint) and NOW + 60 <= d.until <= NOW + MAX_RETRY_AFTER_S
    d2 = decide(err(PlatformUnavailable, 503, hint), Stage.RESOLVE, job(), RULES, now=NOW, rng=random.Random(1))
    assert isinstance(d2, Retry) and math.isfinite(d2.at) and d2.at <= NOW + MAX_RETRY_AFTER_S


def test_a_429_pause_is_the_longer_of_the_rule_and_the_server() -> None:
    d = decide(err(RateLimited, 429, 120.0), Stage.RESOLVE, job(), RULES, now=NOW, rng=random.Random(1))
    assert isinstance(d, PauseEndpoint) and d.until == NOW + 120.0
    d = decide(err(RateLimited, 429, 5.0), Stage.RESOLVE, job(), RULES, now=NOW, rng=random.Random(1))
    assert isinstance(d, PauseEndpoint) and d.until == NOW + 60.0


# ---- the journey's conversations -------------------------------------------------------------------

PROFILE = CustomerProfile(id=1001, age=36, gender="MALE", height_cm=181.0)
Q = [("3220338716", "DECIMAL"), ("C0F6E2BE", "HEX_MSB")]


def run(conv: Any, answer: Any) -> tuple[Any, list[tuple[j.Request, ...]]]:
    """Drive a conversation with ``answer(request)``; returns the outcome and every batch asked."""
    asked: list[tuple[j.Request, ...]] = []
    step = conv.start()
    while isinstance(step, j.Requests):
        asked.append(step.requests)
        step = conv.advance([(r, answer(r)) for r in step.requests])
    return step, asked


def nf() -> NotFound:
    return NotFound("not found", status=404, error_code="CUSTOMER_NOT_FOUND", trace_id="t-9")


def test_the_first_format_asks_the_member_and_the_benefit_together() -> None:
    conv = j.ResolveMember(Q, benefit_key="BODY_SCAN", cross_studio=True)
    out, asked = run(conv, lambda r: PROFILE if isinstance(r, j.MemberByCard) else True)
    assert asked == [(j.MemberByCard(*Q[0]), j.BenefitByCard(*Q[0], "BODY_SCAN"))]
    assert out == j.Resolved(1001, Q[0], True, profile={"age": 36, "gender": "MALE", "height_cm": 181.0})


def test_a_fallback_format_asks_the_benefit_again_with_what_worked() -> None:
    conv = j.ResolveMember(Q, benefit_key="BODY_SCAN", cross_studio=True)

    def answer(r: j.Request) -> Any:
        if isinstance(r, j.MemberByCard):
            return PROFILE if r.card_format == "HEX_MSB" else nf()
        return r.card_format == "HEX_MSB"  # the speculative check (first format) says False: dropped

    out, asked = run(conv, answer)
    assert asked[1:] == [(j.MemberByCard(*Q[1]),), (j.BenefitByCard(*Q[1], "BODY_SCAN"),)]
    assert isinstance(out, j.Resolved) and out.card_query == Q[1] and out.benefit_valid is True


def test_cross_studio_member_gets_the_benefit_by_id() -> None:
    conv = j.ResolveMember(Q, benefit_key="BODY_SCAN", cross_studio=True)

    def answer(r: j.Request) -> Any:
        if isinstance(r, j.MemberByCard):
            return nf()
        if isinstance(r, j.CrossStudioByCard):
            return CrossStudioCustomer(id=1003, studio_id=2)
        if isinstance(r, j.BenefitById):
            return True
        return nf()  # the speculative benefit check for an unknown card

    out, asked = run(conv, answer)
    assert asked[-1] == (j.BenefitById(1003, "BODY_SCAN"),)
    assert out == j.Resolved(1003, Q[0], True, home_studio=2, cross_studio=True)
    assert out.note == "cross-studio member (home studio 2)"


def test_an_unknown_card_keeps_the_last_404_for_the_ticket() -> None:
    conv = j.ResolveMember(Q, benefit_key="", cross_studio=True)
    out, asked = run(conv, lambda r: nf())
    assert len(asked) == 4  # two formats, then the cross-studio lookup in both
    assert isinstance(out, j.NoMember) and out.last is not None and out.last.trace_id == "t-9"
    assert out.message == "no member found for this card (tried 2 format(s) and the cross-studio lookup)"


def test_an_error_on_the_unneeded_speculative_check_is_not_the_jobs_failure() -> None:
    conv = j.ResolveMember(Q, benefit_key="BODY_SCAN", cross_studio=False)

    def answer(r: j.Request) -> Any:
        if isinstance(r, j.BenefitByCard) and r.card_format == "DECIMAL":
            return err(RateLimited, 429)  # the speculative check, no longer needed
        if isinstance(r, j.MemberByCard):
            return PROFILE if r.card_format == "HEX_MSB" else nf()
        return False

    out, _ = run(conv, answer)
    assert isinstance(out, j.Resolved) and out.benefit_valid is False


def test_an_error_on_the_needed_speculative_check_fails_the_step() -> None:
    conv = j.ResolveMember(Q, benefit_key="BODY_SCAN", cross_studio=False)
    boom = err(PlatformUnavailable, 500)
    out, _ = run(conv, lambda r: PROFILE if isinstance(r, j.MemberByCard) else boom)
    assert out == j.Failed(boom)


def test_post_outcomes() -> None:
    req = j.PostWeighing(1001, {"weight": 70.0}, "BODY_SCAN", "u")
    assert run(j.PostTheWeighing(req, then_use=False), lambda r: 200)[0] == j.Posted(200, True, Stage.DONE)
    refused = RequestRejected("benefit used up", status=400)
    assert run(j.PostTheWeighing(req, then_use=False), lambda r: refused)[0] == j.BenefitRefused(
        "platform refused benefit key: benefit used up")
    plain = replace(req, benefit_key=None)
    assert run(j.PostTheWeighing(plain, then_use=True), lambda r: refused)[0] == j.Failed(refused)
    assert run(j.PostTheWeighing(plain, then_use=True), lambda r: 201)[0] == j.Posted(201, False, Stage.USE)


def test_use_outcomes() -> None:
    req = j.UseBenefit(1001, "BODY_SCAN", "u:use")
    assert run(j.UseTheBenefit(req), lambda r: 200)[0] == j.Used(200)
    refused = RequestRejected("no contingent left", status=400)
    assert run(j.UseTheBenefit(req), lambda r: refused)[0] == j.UseRefused("benefit not used: no contingent left")
    conflict = Conflict("busy", status=409)
    assert run(j.UseTheBenefit(req), lambda r: conflict)[0] == j.Failed(conflict)
