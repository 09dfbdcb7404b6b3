"""Async client for the PerfectGym Next / Magicline Open API (the operations the bridge uses).

Every failure becomes one of the ``bridge.errors.PlatformError`` subclasses; the decision retryable /
ambiguous / permanent is made here and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

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

USER_AGENT = f"scale-bridge/{__version__}"
#: at most this much of an error body is read (the rest is never buffered: a proxy's huge error page
#: or an endless stream cannot exhaust a Raspberry Pi's memory)
MAX_ERROR_BODY = 64 * 1024
#: at most this much of a success body (the largest answer the bridge uses is a small JSON object)
MAX_BODY = 1024 * 1024


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


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import UTC, datetime

        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_response(response: httpx.Response, body: bytes) -> PlatformError:
    """Map a non-2xx response to our exception (status, errorCode, errorMessage, traceId kept)."""
    status = response.status_code
    message, code, trace, ref = f"HTTP {status}", None, None, None
    try:
        doc = json.loads(body[:MAX_ERROR_BODY]) if body else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        message = str(doc.get("errorMessage") or message)[:1000]
        code = doc.get("errorCode") if isinstance(doc.get("errorCode"), str) else None
        trace = doc.get("traceId") if isinstance(doc.get("traceId"), str) else None
        ref = doc.get("reference") if isinstance(doc.get("reference"), str) else None
    elif body:
        snippet = body[:200].decode("utf-8", "replace").strip().replace("\n", " ")
        message = f"HTTP {status} (not a JSON error body: {snippet!r})"
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


def classify_transport_error(exc: httpx.HTTPError, *, writes: bool) -> PlatformError:
    """A request that failed without an HTTP response. ``writes``: the request changes server state.

    Connect failures and pool timeouts happen before anything is sent: safe to retry. Once the request
    may have been sent (write/read timeouts, resets, protocol errors), a write is *ambiguous*.
    """
    name = type(exc).__name__
    text = f"{name}: {exc}" if str(exc) else name
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
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"X-API-KEY": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"},
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
        except TimeoutError:
            if writes and status is not None and 200 <= status < 300:
                return status, None
            late = httpx.ReadTimeout(f"no complete answer within {self.deadline_s:g} s")
            raise classify_transport_error(late, writes=writes) from None
        except httpx.HTTPError as exc:
            if writes and status is not None and 200 <= status < 300:
                return status, None  # the platform said 2xx: accepted; a broken echo does not undo that
            raise classify_transport_error(exc, writes=writes) from None
        if response.status_code >= 300:
            raise classify_response(response, body)
        if truncated:
            if writes:
                return response.status_code, None
            raise PlatformUnavailable(f"HTTP {response.status_code} with a body over {MAX_BODY} bytes")
        if not body:
            return response.status_code, None
        try:
            return response.status_code, json.loads(body)
        except ValueError:
            if writes:
                return response.status_code, None  # accepted; an unparsable echo does not undo that
            raise PlatformUnavailable(f"HTTP {response.status_code} with a body that is not JSON") from None

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
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
            raise PlatformUnavailable("measurement/latest answered without a customer id")
        height = doc.get("height")
        return CustomerProfile(
            id=doc["id"],
            age=doc.get("age") if isinstance(doc.get("age"), int) else None,
            gender=doc.get("gender") if isinstance(doc.get("gender"), str) else None,
            height_cm=float(height) if isinstance(height, int | float) else None,
            date_of_birth=doc.get("dateOfBirth") if isinstance(doc.get("dateOfBirth"), str) else None,
        )

    async def cross_studio_customer(self, card_number: str, card_format: str = "DECIMAL") -> CrossStudioCustomer:
        _, doc = await self._request(
            "GET", "/v1/cross-studio/customers/by", params=self._card_params(card_number, card_format)
        )
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), int):
            raise PlatformUnavailable("cross-studio lookup answered without a customer id")
        studio = doc.get("studioId")
        return CrossStudioCustomer(doc["id"], studio if isinstance(studio, int) else None)

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
        params = {"benefitKey": benefit_key} if benefit_key else None
        status, _ = await self._request(
            "POST",
            f"/v1/customers/{customer_id}/weighing",
            writes=True,
            params=params,
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return status

    async def use_benefit(self, customer_id: int, key: str, *, idempotency_key: str) -> int:
        status, _ = await self._request(
            "POST",
            f"/v1/customers/{customer_id}/benefits/{key}/use",
            writes=True,
            headers={"Idempotency-Key": idempotency_key},
        )
        return status
