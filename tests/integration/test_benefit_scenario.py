"""The seed scenario of the "Working with benefits" use case, end to end against the simulator:
customer A (studio A, BODY_SCAN with 5 uses per month) weighs 6 times, twice at studio B's scale.
Five weighings carry the benefit, the sixth does not (or is parked, by policy), and studio A's
contingent is the one that drops."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.config import config_from_dict
from bridge.daemon import Daemon
from bridge.logs import configure
from bridge.outbox import JobState, Outbox
from drivers.tanita import checksum

STUDIOS = ["A", "A", "B", "A", "B", "A"]
CARD_A = "3220338716"  # customer 1001, studio A (see bridge/simulator/seed.toml)


def capture_file(path: Path, weight_kg: float, minute: int) -> Path:
    body = ("{0,16,~0,1,~1,1,~2,1," f'MO,"MC-780",ID,"{CARD_A.zfill(16)}",Da,"22/11/2026",TI,"10:{minute:02d}",'
            f"Wk,{weight_kg:.1f},FW,20.0,")
    line = body + "CS," + checksum(body.encode()) + "\r\n"
    header = {"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial", "note": "test"}
    path.write_text(json.dumps(header) + "\n" + json.dumps({"t": 0, "kind": "rx", "hex": line.encode().hex()}) + "\n")
    return path


def run_scale(tmp: Path, sim: Any, studio: str, n: int, **platform: Any) -> None:
    cfg = config_from_dict({
        "platform": {"base_url": sim.url, "api_key": sim.api_key(1 if studio == "A" else 2),
                     "benefit_key": "BODY_SCAN", **platform},
        "scale": {"name": f"scale-{studio}", "driver": "tanita",
                  "capture": str(capture_file(tmp / f"w{n}.jsonl", 80.0 + n / 10, n))},
        "state": {"dir": str(tmp / f"state-{studio}")},
    })
    code = asyncio.run(Daemon(cfg, exit_when_replayed=True, drain_timeout_s=30).run())
    assert code == 0


@pytest.mark.parametrize("usage", ["weighing", "endpoint"])
def test_six_weighings_five_benefits_home_contingent_drops(tmp_path: Path, simulator: Any, usage: str) -> None:
    configure("warning", "json")
    for n, studio in enumerate(STUDIOS):
        run_scale(tmp_path, simulator, studio, n, usage=usage)
    weighings = simulator.call(lambda: list(simulator.state.weighings))
    uses = simulator.call(lambda: list(simulator.state.benefit_uses))
    assert [w["customerId"] for w in weighings] == [1001] * 6
    assert [w["studioId"] for w in weighings] == [1, 1, 2, 1, 2, 1]
    if usage == "weighing":
        assert [w["benefitKey"] for w in weighings] == ["BODY_SCAN"] * 5 + [None]
        assert uses == []
    else:
        assert [w["benefitKey"] for w in weighings] == [None] * 6
        assert len(uses) == 5 and {u["homeStudioId"] for u in uses} == {1}
        assert sorted(u["studioId"] for u in uses) == [1, 1, 1, 2, 2]
    assert simulator.call(lambda: simulator.state.contingent_left(1001, "BODY_SCAN")) == 0
    assert simulator.call(lambda: simulator.state.contingent_left(1003, "BODY_SCAN")) == 5  # studio B untouched
    ob = Outbox(tmp_path / "state-B" / "outbox.db")
    try:
        notes = [j.note for j in ob.jobs(JobState.DELIVERED)]
    finally:
        ob.close()
    assert notes and all("cross-studio member (home studio 1)" in (n or "") for n in notes)


def test_sixth_weighing_parked_by_policy_then_released(tmp_path: Path, simulator: Any) -> None:
    configure("warning", "json")
    for n, studio in enumerate(STUDIOS):
        run_scale(tmp_path, simulator, studio, n, not_eligible="park")
    weighings = simulator.call(lambda: list(simulator.state.weighings))
    assert len(weighings) == 5 and all(w["benefitKey"] == "BODY_SCAN" for w in weighings)
    ob = Outbox(tmp_path / "state-A" / "outbox.db")
    try:
        parked = ob.jobs(JobState.PARKED)
        assert len(parked) == 1
        assert "benefit BODY_SCAN not valid" in (parked[0].note or "")
        assert parked[0].body["weight"] == 80.5  # the sixth weighing, kept with its data
    finally:
        ob.close()
