"""A link that dies says why (issue 14, H2/M2: "the link dies without a word"): whatever a link's
``events()`` did not expect ends the stream as ``LinkError(transient=False)`` naming the link, the
exception type and where it was raised, with the original chained; the daemon's pump logs that and
exits 69. Links whose errors might quote what they carry (card numbers, health data, a header with the
API key) do not quote the exception's text. Serial: tests/integration/test_serial_link.py. BLE: its
supervisor translates every failure already (drivers/links/ble.py ``_run``/``translate_error``).

Each case drives the real link with a real input (a capture file, a fake LookinBody Web on
127.0.0.1) and breaks one collaborator the link calls (a hook, a callback, the device opener)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.errors import CaptureError, LinkError
from drivers.events import LinkEvent
from drivers.links.cards import EvdevCardSource, InputDeviceLike
from drivers.links.lookinbody import LookinBodyLink, LookinBodySettings
from drivers.links.replay import ReplayLink

CARD = "0000003220338716"


async def drain(events: AsyncIterator[LinkEvent], guard_s: float = 30.0) -> list[LinkEvent]:
    got: list[LinkEvent] = []

    async def pump() -> None:
        async for ev in events:
            got.append(ev)

    await asyncio.wait_for(pump(), guard_s)
    return got


def write_capture(path: Path, ts: list[float]) -> Path:
    header = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"}
    lines = [json.dumps(header)] + [json.dumps({"t": t, "kind": "rx", "hex": b"x\r\n".hex()}) for t in ts]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_a_hook_that_raises_ends_as_a_link_error_without_its_text(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "c.jsonl", [0.0, 30.0])

    async def on_pause(t_s: float) -> None:
        raise RuntimeError(f"card {CARD} broke the hook")

    link = ReplayLink(cap, pause_gap_s=10.0, on_pause=on_pause)
    with pytest.raises(LinkError) as caught:
        asyncio.run(drain(link.events()))
    text = str(caught.value)
    assert text.startswith("replay:c.jsonl: stopped by an unexpected RuntimeError at test_links_say_why.py:")
    assert text.endswith("in on_pause")
    assert CARD not in text and "broke" not in text  # the type and the place, never what it quoted
    assert caught.value.transient is False
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert link.replayed == 1 and link.state == "finished"  # the first event was played, the file closed


def test_replay_a_bad_line_is_still_a_capture_error_with_its_line_number(tmp_path: Path) -> None:
    """The decorator lets the driver-package errors through unchanged."""
    cap = write_capture(tmp_path / "c.jsonl", [0.0])
    cap.write_text(cap.read_text() + '{"t": 1, "kind": "rx", "hex": "zz"}\n')
    with pytest.raises(CaptureError) as caught:
        asyncio.run(drain(ReplayLink(cap).events()))
    assert caught.value.line_no == 3


def test_evdev_an_opener_that_raises_something_unexpected_ends_as_a_link_error() -> None:
    def open_device(path: str) -> InputDeviceLike:
        raise TypeError(f"evdev changed its API ({CARD})")

    source = EvdevCardSource("/dev/input/by-id/usb-reader-event-kbd", open_device=open_device)
    with pytest.raises(LinkError) as caught:
        asyncio.run(drain(source.events()))
    text = str(caught.value)
    assert text.startswith("evdev:/dev/input/by-id/usb-reader-event-kbd: stopped by an unexpected TypeError at ")
    assert CARD not in text
    assert isinstance(caught.value.__cause__, TypeError)


def test_lookinbody_a_failure_after_a_real_answer_ends_as_a_link_error_without_the_key() -> None:
    from tests.fakes.fake_lookinbody import FakeLookinBody

    with FakeLookinBody() as fake:
        settings = LookinBodySettings(
            account=fake.state.account,
            api_key=fake.state.api_key,
            base_url=fake.url,
            poll_interval_s=0.2,
            pace_s=0.0,
            timeout_s=2.0,
            connect_timeout_s=2.0,
        )

        def on_state(state: str, detail: str) -> None:
            if state == "connected":  # after the listing answered
                raise KeyError(f"API-KEY {settings.api_key}")

        link = LookinBodyLink(settings, on_state=on_state)
        with pytest.raises(LinkError) as caught:
            asyncio.run(drain(link.events()))
        assert fake.state.requests  # it did talk to the server
    text = str(caught.value)
    assert text.startswith(f"lookinbody:{settings.account}: stopped by an unexpected KeyError at ")
    assert settings.api_key not in text and "API-KEY" not in text
    assert link.state == "closed"  # the HTTP client was closed on the way out
