"""Async client for the PerfectGym Next / Magicline Open API (the operations the bridge uses).

Every failure becomes one of the ``bridge.errors.PlatformError`` subclasses; the decision retryable /
ambiguous / permanent is made here (the answers and transport failures classified in
``bridge.platform_errors``, re-exported from this module) and nowhere else.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from . import __version__
from .errors import PlatformError, PlatformUnavailable
from .logs import debug_enabled, http_exchange, trace_id_of
from .platform_errors import (
    LOCAL_PROTOCOL,
    MAX_ERROR_BODY,
    MAX_RETRY_AFTER_S,
    PlatformMoved,
    PlatformProtocolError,
    classify_answer,
    classify_response,
    classify_transport_error,
    loads_json,
    parse_retry_after,
)

USER_AGENT = f"scale-bridge/{__version__}"
#: at most this much of a success body (the largest answer the bridge uses is a small JSON object)
MAX_BODY = 1024 * 1024
#: what stands for the API key where the platform's answer quoted it
REDACTED = "<redacted>"
#: member ids are int64 on the platform (and in the outbox's SQLite INTEGER)
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A write the platform answered with 2xx: delivered, whatever the body says. ``body_readable``
    is False when the body could not be read or parsed (``note`` says why); that does not undo it."""

    status: int
    body_readable: bool = True
    note: str | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    """``GET /v1/customers/measurement/latest``: id plus what an analyser needs."""

    id: int
    age: int | None = None
    gender: str | None = None
    height_cm: float | None = None
    date_of_birth: str | None = None


@dataclass(frozen=True, slots=True)
class CrossStudioCustomer:
    id: int
    studio_id: int | None


def _member_id(doc: Any, what: str) -> int:
    """A member id: an int (not a bool), 0 < id < 2**63. Anything else is a protocol error: taking
    ``true`` as customer 1 would post one member's health data to another (M4, issue 14)."""
    if not isinstance(doc, dict):
        raise PlatformProtocolError(f"{what} answered without a customer id (not a JSON object)")
    value = doc.get("id")
    if type(value) is not int:
        shown = "missing" if value is None else f"a {type(value).__name__}"
        raise PlatformProtocolError(f"{what} answered without a customer id ({shown}, not an integer)")
    if not 0 < value <= MAX_ID:
        raise PlatformProtocolError(f"{what} answered with an impossible customer id (not between 1 and 2**63-1)")
    return value


def _plain_int(value: Any, low: int, high: int) -> int | None:
    return value if type(value) is int and low <= value <= high else None


def _debug_exchange(
    method: str,
    path: str,
    started: float,
    response: httpx.Response | None,
    body: bytes,
    *,
    error: str | None = None,
    status: int | None = None,
) -> None:
    """``log.level = "debug"``: one line per exchange (bridge.logs.http_exchange). ``path`` is the
    request path without its query (card numbers travel there); no header is logged."""
    if not debug_enabled():
        return
    latency_s = time.monotonic() - started
    if response is None:
        http_exchange(method, path, status, latency_s, error=error)
        return
    trace = trace_id_of(response.headers, body)
    http_exchange(method, path, response.status_code, latency_s, trace_id=trace, error=error)


async def _read_body(response: httpx.Response) -> tuple[bytes, bool]:
    """The body up to its limit (``MAX_ERROR_BODY`` for a non-2xx, else ``MAX_BODY``), and whether there
    was more: reading stops there; closing the stream drops the connection."""
    limit = MAX_ERROR_BODY if response.status_code >= 300 else MAX_BODY
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks)[:limit], False


def _broken_off(exc: httpx.HTTPError, status: int | None, *, writes: bool, note: str) -> tuple[int, Any, str | None]:
    """An answer that did not complete. After a 2xx to a write the platform has accepted it: a broken
    echo does not undo that (``note`` says what happened). Anything else is raised, classified."""
    if writes and status is not None and 200 <= status < 300:
        return status, None, note
    raise classify_transport_error(exc, writes=writes) from None


def _interpret(response: httpx.Response, body: bytes, truncated: bool, *, writes: bool) -> tuple[int, Any, str | None]:
    """A complete answer: (status, parsed body or None, why a 2xx write's body was unreadable or None)."""
    if response.status_code >= 300:
        raise classify_answer(response, body, writes=writes)
    if truncated:
        if writes:
            return response.status_code, None, f"the answer is over {MAX_BODY} bytes"
        raise PlatformUnavailable(f"HTTP {response.status_code} with a body over {MAX_BODY} bytes")
    if not body:
        return response.status_code, None, None
    doc, unreadable = loads_json(body)
    if unreadable is None:
        return response.status_code, doc, None
    if writes:
        return response.status_code, None, f"the answer is {unreadable}"  # accepted all the same
    raise PlatformUnavailable(f"HTTP {response.status_code} with a body that is {unreadable}")


class PlatformClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 8,
    ) -> None:
        #: httpx's timeouts are per operation: a server trickling its answer a byte at a time would hold
        #: a request forever. This bounds the whole request (connect + send + complete answer).
        self.deadline_s = connect_timeout_s + 2 * timeout_s
        #: a key that cannot be an HTTP header value: every request fails with a fixed message (the
        #: key itself is never quoted); config validation should have refused it first
        self._key_problem: str | None = None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        #: what the platform's answers are cleaned of before anything reads them: a platform (or a proxy's
        #: error page) that echoes the request headers must not get the key into the outbox or the logs
        self._key_bytes = api_key.encode("ascii") if len(api_key) >= 6 and api_key.isascii() else b""
        if api_key.isascii() and api_key.isprintable() and api_key == api_key.strip():
            headers["X-API-KEY"] = api_key
        else:
            self._key_problem = (
                "the API key is not a valid HTTP header value (spaces at either end, line breaks, "
                "control or non-ASCII characters): fix platform.api_key; nothing was sent"
            )
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> PlatformClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, *, writes: bool = False, **kw: Any) -> tuple[int, Any]:
        status, doc, _ = await self._exchange(method, path, writes=writes, **kw)
        return status, doc

    async def _exchange(
        self, method: str, path: str, *, writes: bool = False, **kw: Any
    ) -> tuple[int, Any, str | None]:
        """(status, parsed body or None, why a 2xx write's body was unreadable or None). Every failure
        is raised as a classified PlatformError; nothing else escapes."""
        if self._key_problem is not None:
            raise PlatformUnavailable(self._key_problem)
        try:
            return await self._exchange_raw(method, path, writes=writes, **kw)
        except PlatformError as err:
            raise self._without_key(err) from None
        except RecursionError:
            raise PlatformProtocolError("the platform's answer is nested too deeply to read") from None
        except (UnicodeError, ValueError) as exc:  # a header or URL our HTTP library refuses: not sent
            raise PlatformUnavailable(f"platform not asked ({type(exc).__name__}: {LOCAL_PROTOCOL})") from None

    async def _exchange_raw(self, method: str, path: str, *, writes: bool, **kw: Any) -> tuple[int, Any, str | None]:
        status: int | None = None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.deadline_s), self._client.stream(method, path, **kw) as response:
                status = response.status_code
                body, truncated = await _read_body(response)
                if self._key_bytes and self._key_bytes in body:  # before anything, the debug log included, reads it
                    body = body.replace(self._key_bytes, REDACTED.encode())
            _debug_exchange(method, path, started, response, body)
        except TimeoutError:
            _debug_exchange(method, path, started, None, b"", error="no complete answer within the deadline")
            late = httpx.ReadTimeout(f"no complete answer within {self.deadline_s:g} s")
            return _broken_off(late, status, writes=writes, note="the answer did not complete within the deadline")
        except httpx.HTTPError as exc:
            _debug_exchange(method, path, started, None, b"", error=type(exc).__name__, status=status)
            return _broken_off(exc, status, writes=writes, note=f"the answer broke off ({type(exc).__name__})")
        return _interpret(response, body, truncated, writes=writes)

    def _without_key(self, err: PlatformError) -> PlatformError:
        """The same error with the key taken out of every text the platform supplied (a header value,
        a Location host): the second net behind the body cleaning in ``_exchange_raw``."""
        key = self._key_bytes.decode("ascii")
        if not key:
            return err
        for attr in ("message", "error_code", "trace_id", "reference"):
            value = getattr(err, attr)
            if isinstance(value, str) and key in value:
                setattr(err, attr, value.replace(key, REDACTED))
        err.args = (err.message,)
        return err

    @staticmethod
    def _card_params(card_number: str, card_format: str) -> dict[str, str]:
        return {"cardNumber": card_number, "cardNumberFormat": card_format}

    async def check_key(self) -> int:
        """``HEAD`` validates the key only (200 valid, 401 invalid)."""
        status, _ = await self._request("HEAD", "/v1/customers/benefits", params={"cardNumber": "0"})
        return status

    async def customer_by_card(self, card_number: str, card_format: str = "DECIMAL") -> CustomerProfile:
        _, doc = await self._request(
            "GET", "/v1/customers/measurement/latest", params=self._card_params(card_number, card_format)
        )
        member = _member_id(doc, "measurement/latest")
        height = doc.get("height")
        height_cm = float(height) if isinstance(height, int | float) and not isinstance(height, bool) else None
        if height_cm is not None and not (math.isfinite(height_cm) and 30.0 <= height_cm <= 300.0):
            height_cm = None
        gender, born = doc.get("gender"), doc.get("dateOfBirth")
        return CustomerProfile(
            id=member,
            age=_plain_int(doc.get("age"), 0, 150),
            gender=gender if isinstance(gender, str) and len(gender) <= 32 else None,
            height_cm=height_cm,
            date_of_birth=born if isinstance(born, str) and len(born) <= 32 else None,
        )

    async def cross_studio_customer(self, card_number: str, card_format: str = "DECIMAL") -> CrossStudioCustomer:
        _, doc = await self._request(
            "GET", "/v1/cross-studio/customers/by", params=self._card_params(card_number, card_format)
        )
        member = _member_id(doc, "cross-studio lookup")
        return CrossStudioCustomer(member, _plain_int(doc.get("studioId"), 1, MAX_ID))

    @staticmethod
    def _valid(doc: Any, key: str) -> bool:
        if not isinstance(doc, list):
            raise PlatformUnavailable("benefits answer is not a list")
        return any(isinstance(b, dict) and b.get("key") == key and b.get("valid") is True for b in doc)

    async def benefit_valid_by_card(self, card_number: str, card_format: str, key: str) -> bool:
        params = {**self._card_params(card_number, card_format), "key": key}
        _, doc = await self._request("GET", "/v1/customers/benefits", params=params)
        return self._valid(doc, key)

    async def benefit_valid(self, customer_id: int, key: str) -> bool:
        _, doc = await self._request("GET", f"/v1/customers/{customer_id}/benefits", params={"key": key})
        return self._valid(doc, key)

    async def post_weighing(
        self, customer_id: int, body: dict[str, Any], *, benefit_key: str | None, idempotency_key: str
    ) -> int:
        res = await self.post_weighing_result(
            customer_id, body, benefit_key=benefit_key, idempotency_key=idempotency_key
        )
        return res.status

    async def post_weighing_result(
        self, customer_id: int, body: dict[str, Any], *, benefit_key: str | None, idempotency_key: str
    ) -> WriteResult:
        """POST the weighing. A 2xx is delivered whatever its body (``WriteResult.body_readable``)."""
        params = {"benefitKey": benefit_key} if benefit_key else None
        status, _, note = await self._exchange(
            "POST",
            f"/v1/customers/{customer_id}/weighing",
            writes=True,
            params=params,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return WriteResult(status, note is None, note)

    async def use_benefit(self, customer_id: int, key: str, *, idempotency_key: str) -> int:
        return (await self.use_benefit_result(customer_id, key, idempotency_key=idempotency_key)).status

    async def use_benefit_result(self, customer_id: int, key: str, *, idempotency_key: str) -> WriteResult:
        status, _, note = await self._exchange(
            "POST",
            f"/v1/customers/{customer_id}/benefits/{key}/use",
            writes=True,
            headers={"Idempotency-Key": idempotency_key},
        )
        return WriteResult(status, note is None, note)


__all__ = [
    "MAX_BODY",
    "MAX_ERROR_BODY",
    "MAX_ID",
    "MAX_RETRY_AFTER_S",
    "USER_AGENT",
    "CrossStudioCustomer",
    "CustomerProfile",
    "PlatformClient",
    "PlatformError",
    "PlatformMoved",
    "PlatformProtocolError",
    "PlatformUnavailable",
    "WriteResult",
    "classify_response",
    "classify_transport_error",
    "parse_retry_after",
]
