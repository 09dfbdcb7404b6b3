"""A hostile platform against the real client (issue 14: H1, H3, L6, L7, L8, M3, M4, 503 on a POST).

Every test talks to a real HTTP server on 127.0.0.1 (``EvilPlatform``, a stdlib server whose answer
per path the test sets), except the pure Retry-After table.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bridge.errors import (
    AmbiguousDelivery,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    RateLimited,
    RequestRejected,
)
from bridge.platform import (
    MAX_RETRY_AFTER_S,
    PlatformClient,
    PlatformMoved,
    PlatformProtocolError,
    classify_response,
    parse_retry_after,
)
from tests.fakes.quiet_http import QuietHTTPServer

DEEP = b"[" * 200_000 + b"]" * 200_000
KEY = "sk_test_0123456789"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


class EvilPlatform:
    """Answers every request with ``answers[path]`` (default 404); records what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                path = self.path.split("?")[0]
                outer.requests.append((self.command, self.path, dict(self.headers)))
                a = outer.answers.get(path, Answer(404, b'{"errorMessage":"no"}'))
                self.send_response(a.status)
                self.send_header("Content-Length", str(len(a.body)))
                for k, v in a.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(a.body)

            do_GET = do_POST = do_HEAD = _any

        self.server = QuietHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> EvilPlatform:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def evil() -> Iterator[EvilPlatform]:
    with EvilPlatform() as e:
        yield e


def call(url: str, fn: str, *args: Any, key: str = KEY, **kw: Any) -> Any:
    async def go() -> Any:
        async with PlatformClient(url, key, timeout_s=5, connect_timeout_s=2) as c:
            return await getattr(c, fn)(*args, **kw)

    return asyncio.run(go())


WEIGHING = "/v1/customers/42/weighing"
USE = "/v1/customers/42/benefits/BODY_SCAN/use"
LATEST = "/v1/customers/measurement/latest"


# ---------------------------------------------------------------------------------------------- H1


@pytest.mark.parametrize("body", [DEEP, b"\xff\xfe not utf-8", b"{not json", b'{"id": NaN}', b"[" * 5000])
def test_a_2xx_to_a_write_is_delivered_whatever_its_body(evil: EvilPlatform, body: bytes) -> None:
    evil.answers[WEIGHING] = Answer(201, body)
    evil.answers[USE] = Answer(201, body)
    res = call(evil.url, "post_weighing_result", 42, {"rawResults": "x"}, benefit_key="B", idempotency_key="k")
    assert res.status == 201 and res.delivered and not res.body_readable and res.note
    assert call(evil.url, "post_weighing", 42, {"rawResults": "x"}, benefit_key="B", idempotency_key="k") == 201
    res = call(evil.url, "use_benefit_result", 42, "BODY_SCAN", idempotency_key="k:use")
    assert res.status == 201 and res.delivered and not res.body_readable
    assert call(evil.url, "use_benefit", 42, "BODY_SCAN", idempotency_key="k:use") == 201


def test_a_readable_2xx_body_says_so(evil: EvilPlatform) -> None:
    evil.answers[WEIGHING] = Answer(201, b'{"id": 1}')
    res = call(evil.url, "post_weighing_result", 42, {"rawResults": "x"}, benefit_key=None, idempotency_key="k")
    assert res.delivered and res.body_readable and res.note is None


def test_a_deep_success_body_to_a_read_is_a_classified_error(evil: EvilPlatform) -> None:
    evil.answers[LATEST] = Answer(200, DEEP)
    with pytest.raises(PlatformUnavailable) as exc:
        call(evil.url, "customer_by_card", "3220338716")
    assert "JSON" in exc.value.message and not exc.value.ambiguous


# ---------------------------------------------------------------------------------------------- L8


@pytest.mark.parametrize(("status", "cls"), [(400, RequestRejected), (404, NotFound), (500, PlatformUnavailable)])
@pytest.mark.parametrize("body", [DEEP, b'{"errorMessage": ' + b"[" * 5000 + b"]" * 5000 + b"}", b"\xff" * 300])
def test_garbage_error_bodies_are_classified(evil: EvilPlatform, status: int, cls: type, body: bytes) -> None:
    evil.answers[LATEST] = Answer(status, body)
    with pytest.raises(cls) as exc:
        call(evil.url, "customer_by_card", "3220338716")
    assert exc.value.status == status and "internal" not in exc.value.message
    assert len(exc.value.message) < 400


# ----------------------------------------------------------------------------------------- H3 / L7

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("inf", None),
        ("Infinity", None),
        ("-inf", None),
        ("nan", None),
        ("-5", None),
        ("1e308", MAX_RETRY_AFTER_S),
        ("99999999999", MAX_RETRY_AFTER_S),
        ("1" + "0" * 5000, None),
        ("Tue, 01 Dec 2026 12:01:00 GMT", 60.0),
        ("Tue, 01 Dec 2026 12:01:00 -0000", 60.0),  # RFC 5322 "-0000": parsed naive -> UTC (L7)
        ("Tue, 01 Dec 2026 13:01:00 +0100", 60.0),
        ("Tue, 01 Dec 2026 12:01:00", 60.0),  # no zone: UTC
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # in the past: now
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
        ("", None),
        ("\x00\x1b[2J", None),
        ("x" * 10_000, None),
    ],
)
def test_retry_after_is_finite_and_clamped(value: str, expected: float | None) -> None:
    got = parse_retry_after(value, NOW)
    if expected is None:
        assert got is None
    else:
        assert got is not None and math.isfinite(got) and got == pytest.approx(expected)


def test_retry_after_inf_from_a_real_server_is_ignored(evil: EvilPlatform) -> None:
    evil.answers[LATEST] = Answer(503, b"{}", {"Retry-After": "inf"})
    with pytest.raises(PlatformUnavailable) as exc:
        call(evil.url, "customer_by_card", "1")
    assert exc.value.retry_after_s is None
    evil.answers[LATEST] = Answer(429, b"{}", {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"})
    with pytest.raises(RateLimited) as exc2:
        call(evil.url, "customer_by_card", "1")
    assert exc2.value.retry_after_s == MAX_RETRY_AFTER_S


# ---------------------------------------------------------------------------------------------- M4


@pytest.mark.parametrize("bad", ["true", "false", "-5", "0", str(2**63), str(2**70), '"42"', "42.0", "null", "[42]"])
def test_member_id_must_be_a_positive_int64(evil: EvilPlatform, bad: str) -> None:
    evil.answers[LATEST] = Answer(200, b'{"id": ' + bad.encode() + b', "age": 30}')
    evil.answers["/v1/cross-studio/customers/by"] = Answer(200, b'{"id": ' + bad.encode() + b', "studioId": 2}')
    for fn in ("customer_by_card", "cross_studio_customer"):
        with pytest.raises(PlatformProtocolError) as exc:
            call(evil.url, fn, "3220338716")
        assert "customer id" in exc.value.message and exc.value.retryable and not exc.value.ambiguous


def test_member_id_in_range_is_taken(evil: EvilPlatform) -> None:
    evil.answers[LATEST] = Answer(200, json.dumps({"id": 2**63 - 1, "age": True, "height": 1e300}).encode())
    prof = call(evil.url, "customer_by_card", "3220338716")
    assert prof.id == 2**63 - 1 and prof.age is None and prof.height_cm is None


# ---------------------------------------------------------------------------------------------- 503


def test_a_503_to_a_post_is_ambiguous_and_to_a_get_is_not(evil: EvilPlatform) -> None:
    evil.answers[WEIGHING] = Answer(503, b'{"errorMessage": "under heavy database load"}', {"Retry-After": "30"})
    with pytest.raises(AmbiguousDelivery) as exc:
        call(evil.url, "post_weighing", 42, {"rawResults": "x"}, benefit_key=None, idempotency_key="k")
    assert exc.value.ambiguous and exc.value.retryable and exc.value.status == 503
    assert exc.value.retry_after_s == 30.0
    evil.answers[LATEST] = Answer(503, b"{}")
    with pytest.raises(PlatformUnavailable) as exc2:
        call(evil.url, "customer_by_card", "1")
    assert not exc2.value.ambiguous


# ---------------------------------------------------------------------------------------------- M3


BAD_KEYS = ["sk_live_SECRET_with space ", "sk_live_SECRET\r\nX-Evil: 1", "sk_live_SECRET\x00", "sk_live_SECRÉT"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_key_that_is_not_a_valid_header_never_reaches_an_error_text(evil: EvilPlatform, key: str) -> None:
    evil.answers[LATEST] = Answer(200, b'{"id": 42}')
    for fn, args, kw in (
        ("customer_by_card", ("1",), {}),
        ("post_weighing", (42, {"rawResults": "x"}), {"benefit_key": None, "idempotency_key": "k"}),
        ("check_key", (), {}),
    ):
        with pytest.raises(PlatformError) as exc:
            call(evil.url, fn, *args, key=key, **kw)
        text = f"{exc.value} {exc.value.message} {exc.value!r}"
        assert "SECRET" not in text and "SECRÉT" not in text
        assert "API key" in exc.value.message
        assert not exc.value.ambiguous  # the request never left: nothing to count
    assert evil.requests == []


# ---------------------------------------------------------------------------------------------- L6


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_names_the_new_host_only(evil: EvilPlatform, status: int) -> None:
    loc = "https://user:pw@other.example.net:8443/steal?benefitKey=X&key=" + KEY
    evil.answers[WEIGHING] = Answer(status, b"", {"Location": loc})
    with pytest.raises(PlatformMoved) as exc:
        call(evil.url, "post_weighing", 42, {"rawResults": "x"}, benefit_key="B", idempotency_key="k")
    msg = exc.value.message
    assert "other.example.net" in msg and "tenant URL moved?" in msg and str(status) in msg
    assert "pw" not in msg and "steal" not in msg and KEY not in msg and "8443" not in msg
    assert not exc.value.ambiguous and exc.value.retryable
    assert len(evil.requests) == 1  # not followed


# ---------------------------------------------------------------------------------------------- L4


def test_terminal_escapes_in_error_messages_are_escaped(evil: EvilPlatform) -> None:
    evil.answers[LATEST] = Answer(500, json.dumps({"errorMessage": "\x1b[2J\x1b[HAll delivered\x07"}).encode())
    with pytest.raises(PlatformUnavailable) as exc:
        call(evil.url, "customer_by_card", "1")
    assert "\x1b" not in exc.value.message and "\\x1b[2J" in exc.value.message and "\x07" not in exc.value.message
    resp = httpx.Response(502, content=b"<html>\x1b]0;title\x07</html>")
    err = classify_response(resp, resp.content)
    assert "\x1b" not in err.message and "\x07" not in err.message
