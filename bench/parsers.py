"""4. Parsers: frames/s per driver (pure ``parse``), and the whole intake step for Tanita (framer +
parse + dedupe key + pairing + weighing body), to know how fast a capture can be replayed.

Baseline: the fastest the wire can deliver frames (Tanita MC-780 line at 9600 baud 8N1 = 10 bits a
byte; a BLE advertiser at its minimum 20 ms interval; a GATT indication per 7.5 ms connection event).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bridge.intake import Intake
from bridge.pairing import Pairing
from drivers.events import EventKind, LinkEvent
from drivers.registry import get

from .common import log, median, tanita_frame

MI_V2 = bytes.fromhex("0226b20705040f0201ac018642")  # stable, impedance 428 ohm (xiaomi-ble tests)
BCM_2A9C = bytes.fromhex("1e06ea00e8070511081e0001c91b9c010314803e")  # one-packet body composition
MI_UUID = "0000181b-0000-1000-8000-00805f9b34fb"
BCM_UUID = "00002a9c-0000-1000-8000-00805f9b34fb"


def _rate(fn: Any, budget_s: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn()
        n += 200
        dt = time.perf_counter() - t0
        if dt >= budget_s:
            return n / dt


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    budget = 0.1 if quick else 0.4
    tanita, mi, ble = get("tanita"), get("mi_scale"), get("ble_standard")
    line = tanita_frame(1)
    frame = tanita.make_framer().feed(line)[0]
    at = datetime.now(UTC)

    intake_i = [0]
    intake = Intake(tanita, Pairing(60.0), scale="bench")
    frames = [tanita_frame(i) for i in range(4096)]

    def intake_step() -> None:
        i = intake_i[0] = intake_i[0] + 1
        intake.feed(LinkEvent(EventKind.RX, frames[i % 4096], at, scale="bench"))

    cases = {
        "tanita MC-780 line (parse)": (lambda: tanita.parse(frame, ""), 9600 / 10 / len(line)),
        "tanita MC-780 line (intake: frame+parse+pair+body)": (intake_step, 9600 / 10 / len(line)),
        "mi_scale v2 advert (parse)": (lambda: mi.parse(MI_V2, MI_UUID), 1 / 0.020),
        "ble_standard 0x2A9C (parse)": (lambda: ble.parse(BCM_2A9C, BCM_UUID), 1 / 0.0075),
    }
    assert tanita.parse(frame, "") is not None and mi.parse(MI_V2, MI_UUID) is not None
    assert ble.parse(BCM_2A9C, BCM_UUID) is not None
    out: dict[str, Any] = {}
    for name, (fn, wire) in cases.items():
        rates = [_rate(fn, budget) for _ in range(repeats)]
        out[name] = {
            "frames_per_s": median(rates),
            "wire_max_frames_per_s": wire,
            "ratio_to_wire": median(rates) / wire,
            "us_per_frame": 1e6 / median(rates),
            "runs": rates,
        }
        log(f"parsers: {name}: {median(rates):,.0f} frames/s ({1e6 / median(rates):.1f} us)")
    return out
