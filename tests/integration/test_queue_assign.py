"""An unidentified weighing is kept, shown by `queue list`, and `queue assign ID --card N` rescues it:
the next daemon run uploads it for that member."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from bridge.config import config_from_dict
from bridge.daemon import Daemon
from bridge.logs import configure
from drivers.tanita import checksum
from tests.helpers import run_cli, write_config


def test_assign_rescues_an_unidentified_weighing(tmp_path: Path, simulator: Any) -> None:
    configure("warning", "json")
    body = "{0,16,~0,1,~1,1,~2,1," 'MO,"MC-780",ID,"0000000000000000",Wk,88.8,FW,25.0,'
    line = body + "CS," + checksum(body.encode()) + "\r\n"
    cap = tmp_path / "c.jsonl"
    cap.write_text(json.dumps({"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"})
                   + "\n" + json.dumps({"t": 0, "kind": "rx", "hex": line.encode().hex()}) + "\n")
    sections = {
        "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "tanita", "capture": str(cap)},
        "state": {"dir": str(tmp_path / "state")},
    }
    cfg_path = write_config(tmp_path / "config.toml", sections)
    cfg = config_from_dict(json.loads(json.dumps(sections)))
    assert asyncio.run(Daemon(cfg, exit_when_replayed=True, drain_timeout_s=10).run()) == 0
    assert simulator.call(lambda: len(simulator.state.weighings)) == 0

    r = run_cli("queue", "list", "--config", str(cfg_path), "--json")
    rows = json.loads(r.stdout)
    assert [(x["state"], x["weight_kg"]) for x in rows] == [("unidentified", 88.8)]
    wid = rows[0]["id"]
    r = run_cli("queue", "assign", str(wid), "--card", "3220338716", "--config", str(cfg_path))
    assert r.returncode == 0, r.stderr
    assert b"8716" in r.stdout and b"3220338716" not in r.stdout  # masked in the answer too

    cfg = config_from_dict(json.loads(json.dumps(sections)))
    assert asyncio.run(Daemon(cfg, exit_when_replayed=True, drain_timeout_s=20).run()) == 0
    got = simulator.call(lambda: list(simulator.state.weighings))
    assert [(w["customerId"], w["body"]["weight"], w["benefitKey"]) for w in got] == [(1001, 88.8, "BODY_SCAN")]
    r = run_cli("queue", "show", str(wid), "--config", str(cfg_path), "--json")
    shown = json.loads(r.stdout)
    assert shown["state"] == "delivered"
    assert [h["event"] for h in shown["history"]][:3] == ["captured", "assigned", "resolved"]
