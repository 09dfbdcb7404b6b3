"""bridge.flight_recorder: bounded, rotated, redacted raw traffic (issue 13 theme 7, audit S2).

Real files in tmp_path; the recordings are read back with the capture reader the replay uses."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.commands.demo import demo_capture_path
from bridge.flight_recorder import FlightRecorder, flight_recorder_for
from drivers.capture import read_capture_bytes
from drivers.events import EventKind, LinkEvent
from drivers.links.replay import ReplayLink

T0 = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
MEMBER = "3220338716"


def demo_events() -> list[LinkEvent]:
    with ReplayLink(demo_capture_path()).opened() as (_, events):
        return [ce.event for ce in events]


def card(number: str, at: datetime) -> LinkEvent:
    return LinkEvent(EventKind.CARD, number.encode(), at, scale="s1")


def read(path: Path) -> tuple[dict[str, object], list[LinkEvent]]:
    with path.open("rb") as fh:
        header, events = read_capture_bytes(fh)
        evs = [ce.event for ce in events]
    return {"driver": header.driver, "link": header.link, **header.extra}, evs


def test_unredacted_recording_replays_byte_for_byte(tmp_path: Path) -> None:
    events = demo_events()
    rec = FlightRecorder(tmp_path / "flight", 1 << 20, 4, redact=False, driver="tanita", link="serial:/dev/ttyUSB0")
    for ev in events:
        rec.record(ev)
    rec.close()
    (only,) = rec.files()
    header, back = read(only)
    assert header["driver"] == "tanita" and header["flight_recorder"] is True and "redacted" not in header
    assert [(e.kind, e.payload) for e in back] == [(e.kind, e.payload) for e in events]
    assert rec.failed is None


def test_files_and_directory_modes(tmp_path: Path) -> None:
    old = os.umask(0)  # a permissive umask must not widen the files
    try:
        rec = FlightRecorder(tmp_path / "flight", 1 << 20, 2)
        rec.record(card(MEMBER, T0))
        rec.close()
    finally:
        os.umask(old)
    (only,) = rec.files()
    assert stat.S_IMODE(only.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "flight").stat().st_mode) == 0o750


def test_redacted_by_default_and_still_decodes(tmp_path: Path) -> None:
    events = demo_events()
    rec = FlightRecorder(tmp_path, 1 << 20, 2, driver="tanita")
    for ev in events:
        rec.record(ev)
    rec.record(card(MEMBER, events[-1].received_at))
    rec.close()
    (only,) = rec.files()
    text = only.read_text()
    header, back = read(only)
    assert header["redacted"] is True
    raw = b"".join(e.payload for e in back if e.kind is EventKind.RX)
    assert b"3220338716" not in raw and MEMBER.encode().hex() not in text  # the ID field and the card
    original = b"".join(e.payload for e in events if e.kind is EventKind.RX)
    assert len(raw) == len(original)  # same length pseudonyms, same records
    tap = [e for e in back if e.kind is EventKind.CARD][-1]
    assert tap.payload != MEMBER.encode() and len(tap.payload) == len(MEMBER)
    from drivers.errors import FrameError
    from drivers.model import Reading
    from drivers.registry import get

    spec = get("tanita")

    def weights(data: bytes) -> list[float]:
        out = []
        for frame in spec.make_framer().feed(data):
            try:
                r = spec.parse(frame, "")
            except FrameError:
                continue  # the demo's noise and bad checksums, in both
            if isinstance(r, Reading):
                out.append(r.measurement.weight_kg)
        return out

    assert weights(raw) == weights(original) and len(weights(raw)) >= 4  # checksums recomputed


def test_rotation_keeps_the_size_cap_and_the_newest(tmp_path: Path) -> None:
    max_bytes, max_files = 8 * 1024, 4
    rec = FlightRecorder(tmp_path, max_bytes, max_files, redact=False)
    for i in range(2000):
        rec.record(card(f"{i:010d}", T0 + timedelta(seconds=i)))
        files = rec.files()
        assert len(files) <= max_files
        assert sum(f.stat().st_size for f in files) <= max_bytes
    rec.close()
    files = rec.files()
    assert len(files) == max_files
    numbers = [int(e.payload) for f in files for e in read(f)[1]]
    assert numbers[-1] == 1999 and numbers == sorted(numbers)  # oldest dropped, order kept
    assert numbers[0] > 0
    for f in files:  # every file is a complete capture on its own
        header, evs = read(f)
        assert evs and header["flight_recorder"] is True


def test_a_restart_continues_the_rotation(tmp_path: Path) -> None:
    for run in range(3):
        rec = FlightRecorder(tmp_path, 4 * 1024, 2, redact=False)
        rec.record(card(f"{run:010d}", T0 + timedelta(hours=run)))
        rec.close()
    files = rec.files()
    assert [int(read(f)[1][0].payload) for f in files] == [1, 2]


def test_an_event_too_large_for_a_file_is_skipped_not_split(tmp_path: Path) -> None:
    rec = FlightRecorder(tmp_path, 2048, 2, redact=False)
    rec.record(LinkEvent(EventKind.RX, b"x" * 4096, T0))
    rec.record(card(MEMBER, T0))
    rec.close()
    assert rec.skipped == 1
    assert [e.payload for f in rec.files() for e in read(f)[1]] == [MEMBER.encode()]


def test_a_failing_disk_disables_it_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    rec = FlightRecorder(blocker / "flight", 1 << 20, 2)
    rec.record(card(MEMBER, T0))
    rec.record(card(MEMBER, T0))
    rec.close()
    assert rec.failed is not None and "not-a-dir" in rec.failed


def test_config_turns_it_on(tmp_path: Path) -> None:
    from bridge.config import config_from_dict

    base = {"platform": {"base_url": "http://127.0.0.1:9", "api_key": "x" * 12}}
    off = config_from_dict({**base, "scale": {"driver": "tanita", "port": "/dev/null"}}, source="t")
    assert flight_recorder_for(off) is None
    on = config_from_dict(
        {**base, "scale": {"driver": "tanita", "port": "/dev/null", "record_dir": str(tmp_path), "record_max_mb": 2}},
        source="t",
    )
    rec = flight_recorder_for(on, link="serial:/dev/null")
    assert rec is not None and rec.max_bytes == 2 * 1024 * 1024 and rec.max_files == 8 and rec._redactor is not None


@pytest.mark.parametrize(("key", "value"), [("record_max_mb", 0), ("record_max_files", 0)])
def test_config_refuses_a_cap_of_nothing(key: str, value: int) -> None:
    from bridge.config import config_from_dict
    from bridge.errors import ConfigError

    doc = {"platform": {"base_url": "http://127.0.0.1:9", "api_key": "x" * 12}}
    with pytest.raises(ConfigError) as err:
        config_from_dict({**doc, "scale": {"driver": "tanita", "port": "/dev/null", key: value}}, source="t")
    assert f"scale.{key}" in str(err.value)
