"""Proof (issue 14): a hostile platform as a property. A real HTTP server on 127.0.0.1 answers each
request with what hypothesis chooses - status, headers (``Retry-After`` in every odd form, redirects
to another host, odd content types), bodies (deep JSON, ``"id": true``, 2**70, invalid UTF-8, HTML,
terminal escapes, the caller's own API key echoed back), or a connection cut after the request was
read - and after that script, sane answers. Against it: the real ``bridge.upload.loop.Uploader`` with
a real ``Outbox`` (SQLite file) and ``PlatformClient``, driven like the uploader's loop on a fake clock
(tests/integration/test_faults.py's Env): each round processes what is due, then time jumps to the
next attempt (or one auth probe interval while halted).

Across runs:
- no crash: ``process`` never raises;
- no job stuck forever: every job ends delivered, dead, parked (with a reason), or pending with a
  finite next attempt within a day; once the platform is sane again, pending jobs are delivered;
- every copy of a weighing at the server is covered: the server counts a POST of a weighing as
  (possibly) applied unless it answered 3xx/4xx (a 2xx, a 5xx or a cut connection may have stored
  it), and ``copies <= 1 + ambiguous`` for each job, the uploader's ambiguous counter at least the
  sum of the extra copies;
- the API key is never in anything stored (the outbox file, its -wal/-journal) nor logged (structlog
  ``capture_logs``), even when the platform echoes it back in bodies and headers.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bridge.config import config_from_dict
from bridge.outbox import JobState, Outbox
from bridge.platform import PlatformClient
from bridge.upload.loop import AUTH_PROBE_INTERVAL_S, Uploader
from tests.fakes.quiet_http import QuietHTTPServer

KEY = "sk_test_HOSTILE_0123456789abcdef"
CARDS = ("3220338716", "0477688511")
EPOCH = 1_800_000_000.0
DEFAULT_EXAMPLES = int(os.environ.get("PROOF_PLATFORM_EXAMPLES", "25"))
SLOW_EXAMPLES = 400
#: rounds after the hostile script: enough for backoffs, pauses and probes to run out on the fake clock
MAX_ROUNDS = 60
DAY_S = 86400.0


# ---- the hostile server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | str = b""  # "ECHO_KEY" / "ECHO_HEADERS": built from the request
    cut: bool = False  # close the connection after reading the request, without an answer


SANE_MEMBER = json.dumps({"id": 42, "age": 30, "gender": "MALE", "height": 180}).encode()
SANE_BENEFITS = json.dumps([{"key": "BODY_SCAN", "valid": True}]).encode()


def sane(method: str, path: str) -> Answer:
    if path.endswith("/measurement/latest") or path.endswith("/customers/by"):
        return Answer(200, (("Content-Type", "application/json"),), SANE_MEMBER)
    if path.endswith("/benefits"):
        return Answer(200, (("Content-Type", "application/json"),), SANE_BENEFITS)
    if method == "POST":
        return Answer(201, (("Content-Type", "application/json"),), b'{"id": 1}')
    return Answer(200)


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    answer: Answer


@dataclass
class Script:
    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, method: str, path: str, key: str | None) -> Answer:
        with self.lock:
            answer = self.answers.pop(0) if self.answers else sane(method, path)
            self.seen.append(Seen(method, path, key, answer))
            return answer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def log_message(self, *args: Any) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?", 1)[0]
        answer = self.script.next(self.command, path, self.headers.get("Idempotency-Key"))
        if answer.cut:
            self.close_connection = True
            with_socket = self.connection
            with_socket.shutdown(socket.SHUT_RDWR)
            return
        body = answer.body
        if body == "ECHO_KEY":
            key = self.headers.get("X-API-KEY")
            body = json.dumps({"errorMessage": f"key {key} refused", "echo": dict(self.headers)}).encode()
        elif body == "ECHO_MEMBER":  # a sane answer whose text fields carry the key
            key = self.headers.get("X-API-KEY")
            body = json.dumps({"id": 42, "age": 30, "gender": key, "dateOfBirth": key, "height": 180}).encode()
        elif body == "ECHO_HEADERS":
            body = ("\n".join(f"{k}: {v}" for k, v in self.headers.items())).encode("latin-1", "replace")
        assert isinstance(body, bytes)
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value.replace("{KEY}", self.headers.get("X-API-KEY") or ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _any


class Server:
    def __init__(self) -> None:
        self.script = Script()
        handler = type("H", (Handler,), {"script": self.script})
        self.httpd = QuietHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def reset(self, answers: list[Answer]) -> None:
        with self.script.lock:
            self.script.answers[:] = answers
            self.script.seen.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    s = Server()
    yield s
    s.close()


# ---- strategies --------------------------------------------------------------------------------------

RETRY_AFTER = [
    "0", "1", "5", "120", "-1", "inf", "-inf", "nan", "1e308", "99999999999", "1" + "0" * 400, "soon", "", " 7 ",
    "Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 -0000", "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 01 Jan 0001 00:00:00 GMT", "Tue, 15 Nov 1994 08:12:31 +1400",
]
BODIES: list[bytes | str] = [
    b"", SANE_MEMBER, SANE_BENEFITS, b'{"id": true}', b'{"id": -5}', b'{"id": 1180591620717411303424}',
    b'{"id": "42"}', b'{"id": 42.0}', b'{"id": null}', b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 20_000,
    b"\xff\xfe\xfa not utf-8", b"<html><h1>502 Bad Gateway</h1></html>", b"null", b"[]", b"{}",
    json.dumps({"errorMessage": "\x1b[2J\x1b[H\x1b[32mAll weighings delivered\x1b[8m"}).encode(),
    json.dumps({"errorMessage": {"nested": ["x"] * 10}, "traceId": "\x07" * 50}).encode(),
    json.dumps([{"key": "BODY_SCAN", "valid": "yes"}]).encode(), "ECHO_KEY", "ECHO_HEADERS", "ECHO_MEMBER",
    b"x" * 300_000,
]
STATUSES = [200, 201, 202, 204, 299, 301, 302, 307, 308, 400, 401, 403, 404, 405, 409, 410, 422, 429, 499,
            500, 501, 502, 503, 504, 599]


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    if draw(st.integers(0, 11)) == 0:
        return Answer(cut=True)
    status = draw(st.one_of(st.sampled_from(STATUSES), st.integers(200, 599)))
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        headers.append(("Retry-After", draw(st.sampled_from(RETRY_AFTER))))
    ctype = draw(st.sampled_from([None, "application/json", "text/html", "application/json; charset=latin-1"]))
    if ctype:
        headers.append(("Content-Type", ctype))
    if 300 <= status < 400:
        where = ["http://127.0.0.2:9/steal", "/v1/elsewhere", "", "\x1b[2J", "http://{KEY}.example/"]
        headers.append(("Location", draw(st.sampled_from(where))))
    if draw(st.integers(0, 5)) == 0:
        headers.append(("X-Echo", "{KEY}"))  # the key, sent back in a header
    body = draw(st.sampled_from(BODIES))
    return Answer(status, tuple(headers), body)


# ---- the run -----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def wall(self) -> float:
        return EPOCH + self.t

    def mono(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += max(s, 1e-6)
        await asyncio.sleep(0)


@dataclass
class Outcome:
    jobs: list[Any]
    ambiguous_counter: int
    crashes: list[str]
    logs: list[dict[str, Any]]
    db_bytes: bytes
    now: float


async def run_uploader(url: str, state_dir: Path, benefit: str) -> Outcome:
    clock = FakeClock()
    cfg = config_from_dict({
        "platform": {"base_url": url, "api_key": KEY, "benefit_key": benefit, "timeout_s": 0.5,
                     "connect_timeout_s": 0.5},
        "scale": {"driver": "tanita", "capture": str(state_dir / "unused.capture.jsonl")},
        "state": {"dir": str(state_dir)},
        "queue": {"backoff_base_s": 2.0, "backoff_cap_s": 900.0},
    }, source="proof")
    outbox = Outbox(cfg.outbox_path, clock=clock.wall)
    client = PlatformClient(url, KEY, timeout_s=0.5, connect_timeout_s=0.5)
    up = Uploader(cfg, outbox, client, clock=clock.wall, monotonic=clock.mono, rng=random.Random(1), sleep=clock.sleep)
    ids = []
    for n, card in enumerate(CARDS):
        wid = outbox.capture(scale="s", driver="tanita", card=card, card_source="scale_id",
                             body={"weight": 70.0 + n, "rawResults": f"synthetic #{n}"})
        assert wid is not None
        ids.append(wid)
    crashes: list[str] = []
    try:
        for _ in range(MAX_ROUNDS):
            due = outbox.due(clock.wall(), limit=16)
            if up.auth_error is not None:  # halted: one real job per probe interval (the loop's rule)
                clock.t += AUTH_PROBE_INTERVAL_S
                due = outbox.due(clock.wall(), limit=1)
            for job in due:
                try:
                    await up.process(job)
                except Exception as exc:  # noqa: BLE001 - what the property forbids
                    crashes.append(f"{type(exc).__name__}: {exc}"[:300])
            if outbox.stats().pending == 0:
                break
            if up.auth_error is None:
                nxt = outbox.next_due_at()
                if nxt is None:
                    break
                wake = max(nxt, up.breaker.down_until)
                if not math.isfinite(wake):
                    break  # reported below as stuck
                clock.t = max(clock.t, wake - EPOCH)
        jobs = [outbox.get(i) for i in ids]
    finally:
        await client.aclose()
        outbox.close()
    db = b"".join(p.read_bytes() for p in sorted(state_dir.iterdir()) if p.is_file() and p.name.startswith("outbox"))
    return Outcome(jobs, up.counters.ambiguous, crashes, [], db, clock.wall())


APPLIED = lambda s: s.answer.cut or 200 <= s.answer.status < 300 or s.answer.status >= 500  # noqa: E731


def check(server: Server, out: Outcome) -> None:
    assert not out.crashes, out.crashes
    seen = list(server.script.seen)
    for job in out.jobs:
        assert job is not None
        state = job.state
        if state is JobState.PENDING:
            assert math.isfinite(job.next_attempt_at), f"job {job.id} pending forever: {job}"
            assert job.next_attempt_at <= out.now + DAY_S, f"job {job.id} pending for over a day: {job}"
        elif state is JobState.PARKED:
            assert job.note or job.last_error, f"job {job.id} parked without a reason: {job}"
        else:
            assert state in (JobState.DELIVERED, JobState.DEAD), job
        copies = sum(1 for s in seen if s.method == "POST" and s.path.endswith("/weighing")
                     and s.idempotency_key == job.uid and APPLIED(s))
        assert copies <= 1 + job.ambiguous, (
            f"job {job.id}: {copies} copies at the server, {job.ambiguous} ambiguous attempts: "
            + "; ".join(f"{s.method} {s.path} -> {s.answer.status}{' cut' if s.answer.cut else ''}" for s in seen)
        )
    keys = {job.uid for job in out.jobs}
    assert all(s.idempotency_key in keys for s in seen if s.idempotency_key), "an idempotency key no job has"
    extra = sum(max(0, sum(1 for s in seen if s.method == "POST" and s.path.endswith("/weighing")
                           and s.idempotency_key == j.uid and APPLIED(s)) - 1) for j in out.jobs)
    assert out.ambiguous_counter >= extra
    assert KEY.encode() not in out.db_bytes, "the API key is in the outbox file"
    logged = json.dumps(out.logs, default=repr)
    assert KEY not in logged, "the API key was logged"


def one_run(server: Server, tmp_path: Path, script: list[Answer], benefit: str) -> list[dict[str, Any]]:
    server.reset(script)
    state = Path(tempfile.mkdtemp(dir=tmp_path))
    with capture_logs() as logs:
        out = asyncio.run(run_uploader(server.url, state, benefit))
    out.logs = logs
    check(server, out)
    sane_after = not server.script.answers  # the script ran out: the platform was sane at the end
    if sane_after:
        for job in out.jobs:
            assert job.state is not JobState.PENDING, f"job {job.id} still pending on a sane platform: {job}"
    return logs


PROPERTY = settings(
    max_examples=DEFAULT_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(script=st.lists(answers(), min_size=1, max_size=10), benefit=st.sampled_from(["", "BODY_SCAN"]))
def test_hostile_platform_property(server: Server, tmp_path: Path, script: list[Answer], benefit: str) -> None:
    one_run(server, tmp_path, script, benefit)


@pytest.mark.parametrize("answer", [
    Answer(201, (), b"[" * 100_000 + b"]" * 100_000),  # H1: a 2xx write with a deep body is delivered
    Answer(503, (("Retry-After", "inf"),), b""),  # H3
    Answer(429, (("Retry-After", "1e308"),), b""),
    Answer(400, (("X-Echo", "{KEY}"),), "ECHO_KEY"),  # the key echoed in an error body and a header
    Answer(200, (), "ECHO_MEMBER"),
    Answer(302, (("Location", "http://{KEY}.example/"),), b""),
    Answer(cut=True),
])
def test_known_hostile_answers_on_every_request(server: Server, tmp_path: Path, answer: Answer) -> None:
    """The audit's cases, answered to the first 6 requests whatever they are."""
    logs = one_run(server, tmp_path, [answer] * 6, "BODY_SCAN")
    assert logs, "nothing was logged: the log check would prove nothing"


@pytest.mark.slow
@settings(PROPERTY, max_examples=SLOW_EXAMPLES)
@given(script=st.lists(answers(), min_size=1, max_size=16), benefit=st.sampled_from(["", "BODY_SCAN"]))
def test_hostile_platform_long_profile(server: Server, tmp_path: Path, script: list[Answer], benefit: str) -> None:
    one_run(server, tmp_path, script, benefit)
