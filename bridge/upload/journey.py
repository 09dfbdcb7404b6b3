"""One job's journey (resolve -> post -> use) as sans-I/O conversations, like ``drivers/tanita_pc.py``.

Each conversation says which platform requests to make next and, from their answers, what the step
came to. It awaits nothing, reads no clock, writes no state: the uploader (``bridge/upload/loop.py``)
is the one awaiting shell that performs the requests (paced), stores each outcome in the outbox and
asks ``bridge/upload/policy.py`` what a failure means.

    conv = ResolveMember(card_queries, benefit_key=..., cross_studio=...)
    step = conv.start()
    while isinstance(step, Requests):
        answers = [await perform(r) for r in step.requests]      # performed together; a value, or the
        step = conv.advance(list(zip(step.requests, answers)))   # PlatformError the request ended with
    # step is now an outcome (Resolved, NoMember, Posted, ...) or Failed(error) for the policy

Answers are values (``CustomerProfile``, ``CrossStudioCustomer``, ``bool``, an HTTP status) or the
``PlatformError`` a request ended with: a 404 from a lookup is an answer ("not this format"); most other
errors end the step as ``Failed`` - but an error on a request whose answer is not needed (the benefit
check sent speculatively beside the first lookup, when the member is then found another way) is not
the job's failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import Conflict, NotFound, PlatformError, RequestRejected
from ..outbox import Stage
from ..platform import CrossStudioCustomer, CustomerProfile


class Endpoint(StrEnum):
    """The platform's operation ids: the pacer's keys (each is limited to 1000 requests/min)."""

    MEMBER_BY_CARD = "getCustomerMeasurement"
    CROSS_STUDIO = "getCrossStudioCustomerBy"
    BENEFIT_BY_CARD = "getBenefitsByCardNumber"
    BENEFIT_BY_ID = "getBenefits"
    POST_WEIGHING = "createCustomerWeighing"
    USE_BENEFIT = "useBenefit"


@dataclass(frozen=True, slots=True)
class MemberByCard:
    number: str
    card_format: str
    endpoint = Endpoint.MEMBER_BY_CARD


@dataclass(frozen=True, slots=True)
class CrossStudioByCard:
    number: str
    card_format: str
    endpoint = Endpoint.CROSS_STUDIO


@dataclass(frozen=True, slots=True)
class BenefitByCard:
    number: str
    card_format: str
    key: str
    endpoint = Endpoint.BENEFIT_BY_CARD


@dataclass(frozen=True, slots=True)
class BenefitById:
    customer_id: int
    key: str
    endpoint = Endpoint.BENEFIT_BY_ID


@dataclass(frozen=True, slots=True)
class PostWeighing:
    customer_id: int
    body: dict[str, Any] = field(hash=False, compare=False)
    benefit_key: str | None
    idempotency_key: str
    endpoint = Endpoint.POST_WEIGHING


@dataclass(frozen=True, slots=True)
class UseBenefit:
    customer_id: int
    key: str
    idempotency_key: str
    endpoint = Endpoint.USE_BENEFIT


Request = MemberByCard | CrossStudioByCard | BenefitByCard | BenefitById | PostWeighing | UseBenefit
Answer = Any  # the request's value, or the PlatformError it ended with


@dataclass(frozen=True, slots=True)
class Requests:
    """Make these (together), then ``advance`` with their answers in the same order."""

    requests: tuple[Request, ...]


@dataclass(frozen=True, slots=True)
class Failed:
    """The step failed: ``error`` goes to the failure policy."""

    error: PlatformError


@dataclass(frozen=True, slots=True)
class Resolved:
    customer_id: int
    card_query: tuple[str, str]
    benefit_valid: bool | None
    profile: dict[str, Any] | None = None
    home_studio: int | None = None
    cross_studio: bool = False

    @property
    def note(self) -> str | None:
        return f"cross-studio member (home studio {self.home_studio})" if self.cross_studio else None


@dataclass(frozen=True, slots=True)
class NoMember:
    """No member for this card in any format (nor cross-studio): the last 404 is kept for the ticket."""

    formats_tried: int
    cross_studio_tried: bool
    last: NotFound | None

    @property
    def message(self) -> str:
        cross = " and the cross-studio lookup" if self.cross_studio_tried else ""
        return f"no member found for this card (tried {self.formats_tried} format(s){cross})"


@dataclass(frozen=True, slots=True)
class Posted:
    status: int
    benefit_attached: bool
    next_stage: Stage


@dataclass(frozen=True, slots=True)
class BenefitRefused:
    """The platform refused the benefit key on the POST (400): the weighing is not eligible now."""

    note: str


@dataclass(frozen=True, slots=True)
class Used:
    status: int


@dataclass(frozen=True, slots=True)
class UseRefused:
    note: str


Step = Requests | Failed | Resolved | NoMember | Posted | BenefitRefused | Used | UseRefused


def _refusal(answer: Answer) -> RequestRejected | None:
    """A plain 400 refusal (not a 409 conflict, which is retried)."""
    if isinstance(answer, RequestRejected) and not isinstance(answer, Conflict) and answer.status == 400:
        return answer
    return None


class ResolveMember:
    """Card -> member (each card format in turn, then the cross-studio lookup) -> benefit validity.

    The benefit check by card does not depend on the member lookup, so for the first card format both
    go out together (one round trip fewer before the POST). Its answer is used only if that format
    found the member; otherwise the benefit is asked again with what worked.
    """

    def __init__(self, queries: Sequence[tuple[str, str]], *, benefit_key: str, cross_studio: bool) -> None:
        self._queries = list(queries)
        self._key = benefit_key
        self._cross = cross_studio
        self._speculative: BenefitByCard | None = None
        self._speculative_answer: Answer = None
        self._last_not_found: NotFound | None = None
        self._found: Resolved | None = None

    def start(self) -> Step:
        if not self._queries:
            return NoMember(0, False, None)
        first = MemberByCard(*self._queries[0])
        if not self._key:
            return Requests((first,))
        self._speculative = BenefitByCard(*self._queries[0], self._key)
        return Requests((first, self._speculative))

    def advance(self, answers: Sequence[tuple[Request, Answer]]) -> Step:
        for request, answer in answers:
            step = self._take(request, answer)
            if step is not None:
                return step
        asked = [request for request, _ in answers if request != self._speculative]
        return self._next(asked[-1] if asked else None)

    def _take(self, request: Request, answer: Answer) -> Step | None:
        """Record one answer; a step if it ends the conversation."""
        if request == self._speculative:
            self._speculative_answer = answer
            return None
        if isinstance(request, BenefitByCard | BenefitById):
            if isinstance(answer, PlatformError):
                return Failed(answer)
            assert self._found is not None
            return _with_benefit(self._found, bool(answer))
        if isinstance(answer, NotFound):
            self._last_not_found = answer
            return None
        if isinstance(answer, PlatformError):
            return Failed(answer)
        if isinstance(request, MemberByCard) and isinstance(answer, CustomerProfile):
            profile = {"age": answer.age, "gender": answer.gender, "height_cm": answer.height_cm}
            self._found = Resolved(answer.id, (request.number, request.card_format), None, profile=profile)
        elif isinstance(request, CrossStudioByCard) and isinstance(answer, CrossStudioCustomer):
            query = (request.number, request.card_format)
            self._found = Resolved(answer.id, query, None, home_studio=answer.studio_id, cross_studio=True)
        return None

    def _next(self, last: Request | None) -> Step:
        found = self._found
        if found is not None:
            if not self._key:
                return found
            first = self._queries[0]
            if not found.cross_studio and found.card_query == first and self._speculative is not None:
                answer = self._speculative_answer
                if isinstance(answer, PlatformError):
                    return Failed(answer)  # its errors are this job's errors, as if asked in turn
                return _with_benefit(found, bool(answer))
            if found.cross_studio:
                return Requests((BenefitById(found.customer_id, self._key),))
            return Requests((BenefitByCard(*found.card_query, self._key),))
        # not found yet: the next format, then the cross-studio lookup in the same order
        if isinstance(last, MemberByCard):
            i = self._queries.index((last.number, last.card_format)) + 1
            if i < len(self._queries):
                return Requests((MemberByCard(*self._queries[i]),))
            if self._cross:
                return Requests((CrossStudioByCard(*self._queries[0]),))
        elif isinstance(last, CrossStudioByCard):
            i = self._queries.index((last.number, last.card_format)) + 1
            if i < len(self._queries):
                return Requests((CrossStudioByCard(*self._queries[i]),))
        return NoMember(len(self._queries), self._cross, self._last_not_found)


def _with_benefit(found: Resolved, valid: bool) -> Resolved:
    return Resolved(
        found.customer_id,
        found.card_query,
        valid,
        profile=found.profile,
        home_studio=found.home_studio,
        cross_studio=found.cross_studio,
    )


class PostTheWeighing:
    """POST the weighing (with ``?benefitKey`` when it is valid and used that way)."""

    def __init__(self, request: PostWeighing, *, then_use: bool) -> None:
        self._request = request
        self._then_use = then_use

    def start(self) -> Step:
        return Requests((self._request,))

    def advance(self, answers: Sequence[tuple[Request, Answer]]) -> Step:
        (_, answer), = answers
        attached = self._request.benefit_key is not None
        refused = _refusal(answer)
        if refused is not None and attached:
            return BenefitRefused(f"platform refused benefit key: {refused.message}")
        if isinstance(answer, PlatformError):
            return Failed(answer)
        return Posted(int(answer), attached, Stage.USE if self._then_use else Stage.DONE)


class UseTheBenefit:
    """``POST .../benefits/{key}/use`` after the weighing (``usage = "endpoint"``)."""

    def __init__(self, request: UseBenefit) -> None:
        self._request = request

    def start(self) -> Step:
        return Requests((self._request,))

    def advance(self, answers: Sequence[tuple[Request, Answer]]) -> Step:
        (_, answer), = answers
        refused = _refusal(answer)
        if refused is not None:
            return UseRefused(f"benefit not used: {refused.message}")
        if isinstance(answer, PlatformError):
            return Failed(answer)
        return Used(int(answer))


Conversation = ResolveMember | PostTheWeighing | UseTheBenefit
