"""The intake keeps a bounded number of per-device decoders; the one it lets go is flushed through
pairing first, so a weight it held (a SIG scale waiting for the composition) is not lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.intake import MAX_DECODERS, Capture, Intake
from bridge.pairing import Pairing
from drivers.bleuuid import full_uuid
from drivers.events import EventKind, LinkEvent
from drivers.registry import get

T0 = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
WEIGHT = bytes.fromhex("06b036e907010203040503")  # 70.000 kg, 2025-01-02 03:04:05, user 3


def test_an_evicted_device_releases_the_weight_it_held() -> None:
    intake = Intake(get("ble_standard"), Pairing(60.0), scale="s")
    first = intake.feed(LinkEvent(EventKind.NOTIFY, WEIGHT, T0, channel=full_uuid("2a9d"), address="AA:00"))
    assert not [o for o in first if isinstance(o, Capture)]  # held, waiting for its composition
    released: list[Capture] = []
    for n in range(1, MAX_DECODERS + 1):  # other devices' notifications push the first one out
        ev = LinkEvent(EventKind.NOTIFY, b"\x00", T0 + timedelta(seconds=n), channel=full_uuid("2a9e"),
                       address=f"BB:{n:02X}")
        released += [o for o in intake.feed(ev) if isinstance(o, Capture)]
    assert [c.reading.measurement.weight_kg for c in released] == [70.0]
    assert len(intake._decoders) == MAX_DECODERS  # bounded
