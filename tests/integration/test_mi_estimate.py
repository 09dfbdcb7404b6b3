"""A Mi Body Composition Scale v2 broadcast, replayed through the whole daemon to the simulator:
one weighing however often it is advertised; body composition only when estimation is turned on,
never overwriting measured values, and always marked as estimated in rawResults."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.config import config_from_dict
from bridge.daemon import Daemon
from bridge.logs import configure

MI_V2 = "0226e607020e10293af7019a38"  # Theengs vector: 72.45 kg, 503 ohm, stabilised, impedance present
SERVICE = "0000181b-0000-1000-8000-00805f9b34fb"


def mi_capture(path: Path, repeats: int) -> Path:
    lines = [json.dumps({"format": "scale-bridge-capture", "version": 1, "driver": "mi_scale", "link": "ble"}),
             json.dumps({"t": 0, "kind": "card", "value": "3220338716"})]
    for i in range(repeats):
        lines.append(json.dumps({"t": 1 + i * 0.5, "kind": "adv", "hex": MI_V2, "channel": SERVICE,
                                 "address": "C8:47:8C:00:00:01", "rssi": -60}))
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp: Path, sim: Any, estimate: bool) -> list[dict[str, Any]]:
    configure("warning", "json")
    cfg = config_from_dict({
        "platform": {"base_url": sim.url, "api_key": sim.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "mi_scale", "capture": str(mi_capture(tmp / "mi.jsonl", 50)),
                  "estimate_body_composition": estimate},
        "cards": {"source": "capture"},
        "state": {"dir": str(tmp / "state")},
    })
    assert asyncio.run(Daemon(cfg, exit_when_replayed=True, drain_timeout_s=30).run()) == 0
    return sim.call(lambda: list(sim.state.weighings))  # type: ignore[no-any-return]


def test_fifty_adverts_one_weighing_without_estimate(tmp_path: Path, simulator: Any) -> None:
    got = run(tmp_path, simulator, estimate=False)
    assert len(got) == 1
    body = got[0]["body"]
    assert set(body) == {"weight", "rawResults"} and body["weight"] == pytest.approx(72.45)
    raw = json.loads(body["rawResults"])
    assert raw["raw"] == MI_V2 and raw["unmapped"]["impedance_ohm"] == 503
    assert "estimated" not in raw
    assert got[0]["benefitKey"] == "BODY_SCAN"


def test_estimate_adds_marked_composition(tmp_path: Path, simulator: Any) -> None:
    got = run(tmp_path, simulator, estimate=True)
    assert len(got) == 1
    body = got[0]["body"]
    raw = json.loads(body["rawResults"])
    assert body["weight"] == pytest.approx(72.45)  # measured, untouched
    for field in ("percentBodyFat", "bodyFatMass", "fatFreeMass", "totalBodyWater", "basalMetabolicRate"):
        assert field in body and field in raw["estimated"]
    assert 5 < body["percentBodyFat"] < 45
    assert body["bodyFatMass"] + body["fatFreeMass"] == pytest.approx(72.45, abs=0.01)
    assert "weight" not in raw["estimated"]
    assert raw["estimateProfile"] == {"height_cm": 181.0, "age": raw["estimateProfile"]["age"], "gender": "MALE"}


def test_member_who_steps_on_first_then_taps(tmp_path: Path, simulator: Any) -> None:
    """With late_card_s, a tap 2 s after the Mi reading claims it (it was parked as unidentified first)."""
    configure("warning", "json")
    lines = [json.dumps({"format": "scale-bridge-capture", "version": 1, "driver": "mi_scale", "link": "ble"}),
             json.dumps({"t": 1, "kind": "adv", "hex": MI_V2, "channel": SERVICE, "address": "C8:47:8C:00:00:01"}),
             json.dumps({"t": 3, "kind": "card", "value": "3220338716"})]
    cap = tmp_path / "late.jsonl"
    cap.write_text("\n".join(lines) + "\n")
    cfg = config_from_dict({
        "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "mi_scale", "capture": str(cap)},
        "cards": {"source": "capture"},
        "pairing": {"late_card_s": 10},
        "state": {"dir": str(tmp_path / "state")},
    })
    assert asyncio.run(Daemon(cfg, exit_when_replayed=True, drain_timeout_s=30).run()) == 0
    got = simulator.call(lambda: list(simulator.state.weighings))
    assert [(w["customerId"], w["benefitKey"]) for w in got] == [(1001, "BODY_SCAN")]
