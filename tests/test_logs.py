"""bridge.logs: what a support engineer reads (issue 13 theme 6; installer-audit S3 part 2, S4, I15).

Real output: ``configure`` writes to a stream, the tests read the JSON lines back."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import logs
from bridge.logs import BarStream, configure, level_for, settled
from tests.test_platform_hostile import KEY, Answer, EvilPlatform


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure("debug", "json", stream)
    yield stream
    configure("info", "json", io.StringIO())


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_foreign_record_keeps_its_traceback(out: io.StringIO) -> None:
    def fails() -> None:
        raise ValueError("the library broke")

    try:
        fails()
    except ValueError:
        logging.getLogger("somelib").error("it failed", exc_info=True)
    (doc,) = lines(out)
    assert doc["event"] == "it failed" and doc["logger"] == "somelib" and doc["level"] == "error"
    assert "exc_info" not in doc  # not the tuple of reprs ("<traceback object at 0x...>")
    assert "Traceback (most recent call last)" in doc["exception"]
    assert "in fails" in doc["exception"] and "ValueError: the library broke" in doc["exception"]


def test_asyncio_style_record_with_exc_info_tuple(out: io.StringIO) -> None:
    """asyncio hands a ready (type, value, tb) tuple: the same text comes out."""
    try:
        raise RuntimeError("task died")
    except RuntimeError as exc:
        info = (type(exc), exc, exc.__traceback__)
    logging.getLogger("somelib.tasks").error("Task exception was never retrieved", exc_info=info)
    (doc,) = lines(out)
    assert "RuntimeError: task died" in doc["exception"] and "<traceback object" not in json.dumps(doc)


def test_stdlib_extra_fields_are_json_fields(out: io.StringIO) -> None:
    logging.getLogger("drivers.links.ble").warning(
        "ble_scanner_start_failed", extra={"error": "cannot reach the D-Bus", "retry_in_s": 0.95}
    )
    (doc,) = lines(out)
    assert doc["event"] == "ble_scanner_start_failed"
    assert doc["error"] == "cannot reach the D-Bus" and doc["retry_in_s"] == 0.95
    assert doc["logger"] == "drivers.links.ble"


def test_stdlib_extra_fields_are_redacted(out: io.StringIO) -> None:
    logs.register_secret("sk_live_abcdefgh")
    logging.getLogger("drivers.links.cards").info(
        "card_tap", extra={"card": "3220338716", "detail": "key sk_live_abcdefgh in a message"}
    )
    (doc,) = lines(out)
    assert doc["card"] == "******8716"
    assert "sk_live_abcdefgh" not in out.getvalue() and "<redacted>" in doc["detail"]


def test_ble_link_logs_fields_not_format_strings() -> None:
    """Every log call in drivers/links/ble.py passes its values as fields (``jq .error`` works)."""
    source = Path(logs.__file__).resolve().parents[1].joinpath("drivers", "links", "ble.py").read_text()
    calls = re.findall(r"log\.(?:debug|info|warning|error)\)?\(\s*\"([^\"]*)\"", source)
    assert len(calls) >= 15
    assert [c for c in calls if "%" in c or "=" in c or " " in c] == []
    assert "import structlog" not in source  # drivers/ stays stdlib-only


# ---------------------------------------------------------------------------- link state levels


@pytest.mark.parametrize(
    ("state", "previous", "level"),
    [
        ("connecting", None, "info"),  # the start (BLE said warning: I15)
        ("connected", None, "info"),
        ("connected", "disconnected", "info"),
        ("closed", "connected", "info"),  # a normal shutdown (was warning: I15)
        ("replaying", None, "info"),
        ("finished", "replaying", "info"),
        ("disconnected", "connected", "warning"),
        ("disconnected", None, "warning"),
        ("unauthorized", "connected", "warning"),
        ("connecting", "disconnected", "debug"),  # a retry: the failure was already said
        ("connecting", "connected", "info"),  # a planned restart
        ("disconnected", "disconnected", "debug"),
        ("connected", "connected", "debug"),
    ],
)
def test_level_for(state: str, previous: str | None, level: str) -> None:
    assert level_for(state, previous) == level


def _levels(states: list[str]) -> list[tuple[str, str]]:
    previous: str | None = None
    out = []
    for state in states:
        out.append((state, level_for(state, previous)))
        previous = settled(state, previous)
    return out


def test_an_unplugged_device_warns_once_and_says_when_it_is_back() -> None:
    seen = _levels(["connecting", "disconnected", "connecting", "disconnected", "connecting", "connected", "closed"])
    assert seen == [
        ("connecting", "info"),
        ("disconnected", "warning"),
        ("connecting", "debug"),
        ("disconnected", "debug"),
        ("connecting", "debug"),
        ("connected", "info"),
        ("closed", "info"),
    ]
    assert [s for s, level in seen if level == "warning"] == ["disconnected"]


def test_a_clean_run_has_no_warning() -> None:
    assert all(level == "info" for _, level in _levels(["connecting", "connected", "closed"]))


# ---------------------------------------------------------------------------- HTTP exchange at debug


def _platform_calls(url: str) -> None:
    from bridge.platform import PlatformClient, PlatformError

    async def go() -> None:
        async with PlatformClient(url, KEY, timeout_s=5, connect_timeout_s=2) as c:
            assert await c.check_key() == 200
            with pytest.raises(PlatformError):
                await c.customer_by_card("3220338716")

    asyncio.run(go())


def test_debug_logs_each_http_exchange_without_key_or_card(out: io.StringIO) -> None:
    with EvilPlatform() as evil:
        evil.answers["/v1/customers/benefits"] = Answer(200, b"")
        evil.answers["/v1/customers/measurement/latest"] = Answer(
            404, b'{"errorMessage":"no such card","errorCode":"NOT_FOUND","traceId":"7781234567890"}'
        )
        _platform_calls(evil.url)
    exchanges = [d for d in lines(out) if d["event"] == "http_exchange"]
    assert [(d["method"], d["path"], d["status"]) for d in exchanges] == [
        ("HEAD", "/v1/customers/benefits", 200),
        ("GET", "/v1/customers/measurement/latest", 404),
    ]
    assert exchanges[1]["trace_id"] == "7781234567890" and "trace_id" not in exchanges[0]
    assert all(isinstance(d["latency_ms"], float) and d["latency_ms"] >= 0 for d in exchanges)
    assert all(d["level"] == "debug" and d["component"] == "http" for d in exchanges)
    text = out.getvalue()
    assert KEY not in text and "3220338716" not in text


def test_a_failed_connection_is_one_debug_line(out: io.StringIO) -> None:
    from bridge.platform import PlatformClient, PlatformUnavailable

    with EvilPlatform() as evil:
        url = evil.url  # closed when the block ends: nothing listens there any more

    async def go() -> None:
        async with PlatformClient(url, KEY, timeout_s=2, connect_timeout_s=2) as c:
            with pytest.raises(PlatformUnavailable):
                await c.check_key()

    asyncio.run(go())
    (doc,) = [d for d in lines(out) if d["event"] == "http_exchange"]
    assert doc["status"] is None and doc["error"] == "ConnectError" and doc["path"] == "/v1/customers/benefits"


def test_info_level_has_no_http_lines() -> None:
    stream = io.StringIO()
    configure("info", "json", stream)
    with EvilPlatform() as evil:
        evil.answers["/v1/customers/benefits"] = Answer(200, b"")
        _platform_calls(evil.url)
    assert "http_exchange" not in stream.getvalue()


# ---------------------------------------------------------------------------- progress bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(raw: str) -> list[str]:
    """What a terminal shows: ``\\r`` returns to column 0, ``ESC[K`` erases to the end of the line."""
    rows: list[str] = [""]
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            rows[-1] = rows[-1][:col]
            i += 3
            continue
        ch = raw[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            rows.append("")
            col = 0
        else:
            row = rows[-1]
            rows[-1] = row[:col] + ch + row[col + 1 :]
            col += 1
        i += 1
    return rows


def test_log_lines_and_the_bar_never_share_a_line() -> None:
    term = FakeTerminal()
    bar = BarStream(term)
    configure("info", "console", bar)  # type: ignore[arg-type]
    log = logs.get_logger(component="test")
    bar.bar("replaying [###.......] 3/10 events")
    log.info("member_resolved", weighing=1)
    bar.bar("replaying [######....] 6/10 events")
    logging.getLogger("somelib").warning("foreign line")
    bar.bar("replaying [#########.] 9/10 events")
    log.info("weighing_posted", weighing=1)
    bar.done("replayed 10/10 events")
    configure("info", "json", io.StringIO())
    rows = [r for r in screen(term.getvalue()) if r]
    assert len(rows) == 4, rows
    assert "member_resolved" in rows[0] and "foreign line" in rows[1] and "weighing_posted" in rows[2]
    assert rows[3] == "replayed 10/10 events"
    assert not any("replaying [" in r for r in rows)  # every bar state was erased, none glued to a log line


def test_the_bar_is_drawn_below_the_last_log_line() -> None:
    term = FakeTerminal()
    bar = BarStream(term)
    bar.bar("replaying [#.........] 1/10 events")
    bar.write("a log line\n")
    rows = screen(term.getvalue())
    assert rows == ["a log line", "replaying [#.........] 1/10 events"]
