"""The Open API's answers and failures as ``bridge.errors.PlatformError``s: the decision retryable /
ambiguous / permanent for an HTTP status, an error body, a ``Retry-After`` or a transport failure.
Pure (no I/O): ``bridge.platform.PlatformClient`` does the requests and raises what these return.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

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

#: at most this much of an error body is read (the rest is never buffered: a proxy's huge error page
#: or an endless stream cannot exhaust a Raspberry Pi's memory)
MAX_ERROR_BODY = 64 * 1024
#: a Retry-After longer than this is clamped (a platform or proxy asking for days, or for ``inf``,
#: must not park the queue forever; the uploader's own backoff takes over after it)
MAX_RETRY_AFTER_S = 3600.0


class PlatformProtocolError(PlatformUnavailable):
    """The platform answered, but not as the API says (a member id that is not a positive int64, a
    list where an object belongs). Retried with backoff: nothing is posted on the strength of it."""


class PlatformMoved(PlatformUnavailable):
    """A 3xx: the platform (or a proxy) sends the bridge elsewhere. Never followed (the API key would
    go with it); retried with backoff so the queue is kept until ``base_url`` is fixed."""


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


def loads_json(body: bytes) -> tuple[Any, str | None]:
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
    doc, unreadable = loads_json(body[:MAX_ERROR_BODY]) if body else (None, None)
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
LOCAL_PROTOCOL = (
    "the request could not be sent: a header is not valid HTTP "
    "(check the API key for spaces, line breaks or control characters)"
)
_SAFE_TEXT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ReadTimeout, httpx.WriteTimeout)


def _transport_text(exc: httpx.HTTPError) -> str:
    name = type(exc).__name__
    if isinstance(exc, httpx.LocalProtocolError):
        return f"{name}: {LOCAL_PROTOCOL}"
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


def classify_answer(response: httpx.Response, body: bytes, *, writes: bool) -> PlatformError:
    """``classify_response``, and a 503 to a write counted ambiguous: "under heavy database load" may
    or may not have been applied (platform-api.md, Update 2026-12-01); its Retry-After is kept."""
    err = classify_response(response, body)
    if not (writes and response.status_code == 503):
        return err
    return AmbiguousDelivery(
        f"{err.message} (HTTP 503 to a write: it may have been applied)",
        status=err.status,
        error_code=err.error_code,
        trace_id=err.trace_id,
        reference=err.reference,
        retry_after_s=err.retry_after_s,
    )
