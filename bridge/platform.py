"""Async client for the PerfectGym Next / Magicline Open API (the operations the bridge uses).

Every failure becomes one of the ``bridge.errors.PlatformError`` subclasses; the decision retryable /
ambiguous / permanent is made here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import __version__
from .errors import (
    AmbiguousDelivery,
    AuthRejected,
    Conflict,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from .printable import printable

USER_AGENT = f"scale-bridge/{__version__}"
#: at most this much of an error body is read (the rest is never buffered: a proxy's huge error page
#: or an endless stream cannot exhaust a Raspberry Pi's memory)
MAX_ERROR_BODY = 64 * 1024
#: at most this much of a success body (the largest answer the bridge uses is a small JSON object)
MAX_BODY = 1024 * 1024
#: what stands for the API key where the platform's answer quoted it
REDACTED = "<redacted>"
#: a Retry-After longer than this is clamped (a platform or proxy asking for days, or for ``inf``,
#: must not park the queue forever; the uploader's own backoff takes over after it)
MAX_RETRY_AFTER_S = 3600.0
#: member ids are int64 on the platform (and in the outbox's SQLite INTEGER)
MAX_ID = 2**63 - 1


class PlatformProtocolError(PlatformUnavailable):
    """The platform answered, but not as the API says (a member id that is not a positive int64, a
    list where an object belongs). Retried with backoff: nothing is posted on the strength of it."""


class PlatformMoved(PlatformUnavailable):
    """A 3xx: the platform (or a proxy) sends the bridge elsewhere. Never followed (the API key would
    go with it); retried with backoff so the queue is kept until ``base_url`` is fixed."""


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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when it says nothing usable.

    Delay-seconds must be finite and non-negative (``inf``, ``nan``, ``-5``: ignored) and are clamped
    to ``MAX_RETRY_AFTER_S``. An HTTP date is read with any zone; a date without one (or RFC 5322's
    ``-0000``) is UTC; a date in the past means now; one in the year 9999 is clamped.
    """
    if not value:
        return None
    text = value.strip()
    if not text or len(text) > 64 or not text.isprintable():
        return None
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = _http_date_delay_s(text, now)
    except OverflowError:
        return None
    if seconds is None:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def _http_date_delay_s(text: str, now: datetime) -> float | None:
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return max(0.0, (when - now).total_seconds())
    except OverflowError:
        return MAX_RETRY_AFTER_S


def _retry_after_s(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))


def _loads(body: bytes) -> tuple[Any, str | None]:
    """(document, None) or (None, why it is unreadable). Never raises: deep nesting (RecursionError),
    invalid UTF-8, NaN and garbage are all "unreadable"."""
    try:
        return json.loads(body, parse_constant=_no_constant), None
    except RecursionError:
        return None, "JSON nested too deeply"
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except ValueError:
        return None, "not JSON"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


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


def _redirect(response: httpx.Response) -> PlatformMoved:
    """Name the new location's host only: its path, query and userinfo may carry anything."""
    host = ""
    location = response.headers.get("Location", "")
    try:
        host = urlsplit(location).hostname or ""
    except ValueError:
        host = ""
    where = f"redirects to {printable(host, max_chars=100)}" if host else "redirects (no usable Location)"
    return PlatformMoved(
        f"HTTP {response.status_code}: the platform {where}; not followed (tenant URL moved? check platform.base_url)",
        status=response.status_code,
    )


def classify_response(response: httpx.Response, body: bytes) -> PlatformError:
    """Map a non-2xx response to our exception (status, errorCode, errorMessage, traceId kept)."""
    status = response.status_code
    if 300 <= status < 400:
        return _redirect(response)
    message, code, trace, ref = f"HTTP {status}", None, None, None
    doc, unreadable = _loads(body[:MAX_ERROR_BODY]) if body else (None, None)
    if isinstance(doc, dict):
        text = doc.get("errorMessage")
        if isinstance(text, str) and text:
            message = printable(text, max_chars=300)
        code = _text_field(doc, "errorCode")
        trace = _text_field(doc, "traceId")
        ref = _text_field(doc, "reference")
    elif body:
        snippet = printable(body[:120].decode("utf-8", "replace").strip(), max_chars=120)
        why = unreadable or "not a JSON object"
        message = f"HTTP {status} (error body {why}: {snippet!r})"
    kw: dict[str, Any] = {
        "status": status,
        "error_code": code,
        "trace_id": trace,
        "reference": ref,
        "retry_after_s": _retry_after_s(response),
    }
    if status in (401, 403):
        return AuthRejected(message, **kw)
    if status == 404:
        return NotFound(message, **kw)
    if status == 409:
        return Conflict(message, **kw)
    if status == 429:
        return RateLimited(message, **kw)
    if status in (408, 425) or status >= 500:
        return PlatformUnavailable(message, **kw)
    return RequestRejected(message, **kw)


def _text_field(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return printable(value, max_chars=200) if isinstance(value, str) else None


#: fixed texts for transport failures whose own text may quote the request (h11's
#: LocalProtocolError prints the offending header value: the API key; M3, issue 14)
_LOCAL_PROTOCOL = (
    "the request could not be sent: a header is not valid HTTP "
    "(check the API key for spaces, line breaks or control characters)"
)
_SAFE_TEXT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ReadTimeout, httpx.WriteTimeout)


def _transport_text(exc: httpx.HTTPError) -> str:
    name = type(exc).__name__
    if isinstance(exc, httpx.LocalProtocolError):
        return f"{name}: {_LOCAL_PROTOCOL}"
    if isinstance(exc, _SAFE_TEXT) and str(exc):
        return f"{name}: {printable(str(exc), max_chars=200)}"
    return name


def classify_transport_error(exc: httpx.HTTPError, *, writes: bool) -> PlatformError:
    """A request that failed without an HTTP response. ``writes``: the request changes server state.

    Connect failures and pool timeouts happen before anything is sent: safe to retry. Once the request
    may have been sent (write/read timeouts, resets, protocol errors), a write is *ambiguous*.
    """
    text = _transport_text(exc)
    if isinstance(exc, httpx.LocalProtocolError):  # refused by our own HTTP library: nothing was sent
        return PlatformUnavailable(f"platform not asked ({text})")
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol):
        return PlatformUnavailable(f"platform unreachable ({text})")
    if writes:
        return AmbiguousDelivery(f"no answer after the request was sent ({text})")
    return PlatformUnavailable(f"no answer from the platform ({text})")


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
            raise PlatformUnavailable(f"platform not asked ({type(exc).__name__}: {_LOCAL_PROTOCOL})") from None

    async def _exchange_raw(self, method: str, path: str, *, writes: bool, **kw: Any) -> tuple[int, Any, str | None]:
        truncated = False
        status: int | None = None
        try:
            async with asyncio.timeout(self.deadline_s), self._client.stream(method, path, **kw) as response:
                status = response.status_code
                limit = MAX_ERROR_BODY if response.status_code >= 300 else MAX_BODY
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > limit:  # stop reading; closing the stream drops the connection
                        truncated = True
                        break
                body = b"".join(chunks)[:limit]
                if self._key_bytes and self._key_bytes in body:
                    body = body.replace(self._key_bytes, REDACTED.encode())
        except TimeoutError:
            if writes and status is not None and 200 <= status < 300:
                return status, None, "the answer did not complete within the deadline"
            late = httpx.ReadTimeout(f"no complete answer within {self.deadline_s:g} s")
            raise classify_transport_error(late, writes=writes) from None
        except httpx.HTTPError as exc:
            if writes and status is not None and 200 <= status < 300:
                # the platform said 2xx: accepted; a broken echo does not undo that
                return status, None, f"the answer broke off ({type(exc).__name__})"
            raise classify_transport_error(exc, writes=writes) from None
        if response.status_code >= 300:
            err = classify_response(response, body)
            if writes and response.status_code == 503:
                # "under heavy database load" may or may not have been applied (platform-api.md,
                # Update 2026-12-01): count it ambiguous, keep its Retry-After
                raise AmbiguousDelivery(
                    f"{err.message} (HTTP 503 to a write: it may have been applied)",
                    status=err.status,
                    error_code=err.error_code,
                    trace_id=err.trace_id,
                    reference=err.reference,
                    retry_after_s=err.retry_after_s,
                )
            raise err
        if truncated:
            if writes:
                return response.status_code, None, f"the answer is over {MAX_BODY} bytes"
            raise PlatformUnavailable(f"HTTP {response.status_code} with a body over {MAX_BODY} bytes")
        if not body:
            return response.status_code, None, None
        doc, unreadable = _loads(body)
        if unreadable is None:
            return response.status_code, doc, None
        if writes:
            return response.status_code, None, f"the answer is {unreadable}"  # accepted all the same
        raise PlatformUnavailable(f"HTTP {response.status_code} with a body that is {unreadable}")

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
