"""The optional Prometheus endpoint of a running daemon (subprocess) tells frames, weighings, uploads
and queue depth; the API key and card numbers never appear in it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from drivers.tanita import checksum
from tests.helpers import REPO, exited, wait_for, write_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_endpoint(tmp_path: Path, simulator: Any) -> None:
    lines = []
    for i, card in enumerate(("3220338716", "999")):  # a member, and an unknown card (dead letter)
        body = "{0,16,~0,1,~1,1,~2,1," f'MO,"MC-780",ID,"{card.zfill(16)}",Wk,{70 + i}.5,FW,20.0,'
        lines.append(body + "CS," + checksum(body.encode()) + "\r\n")
    lines.append("{0,16,~0,1,MO,\"MC-780\",Wk,1.0,CS,00\r\n")  # bad checksum: rejected
    cap = tmp_path / "c.jsonl"
    cap.write_text(json.dumps({"format": "scale-bridge-capture", "version": 1, "driver": "tanita", "link": "serial"})
                   + "\n" + "\n".join(json.dumps({"t": i, "kind": "rx", "hex": x.encode().hex()})
                                      for i, x in enumerate(lines)) + "\n")
    port = free_port()
    cfg = write_config(tmp_path / "config.toml", {
        "platform": {"base_url": simulator.url, "api_key": simulator.api_key(1), "benefit_key": "BODY_SCAN"},
        "scale": {"driver": "tanita", "capture": str(cap)},
        "state": {"dir": str(tmp_path / "state")},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "log": {"format": "json"},
    })
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def both_outcomes() -> str | None:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return None
            done = 'scale_bridge_uploads_total{outcome="delivered"} 1.0' in text and \
                'scale_bridge_uploads_total{outcome="dead_letters"} 1.0' in text
            return text if done else None

        text = wait_for(both_outcomes, "one delivery and one dead letter in /metrics", timeout_s=30, interval_s=0.2,
                        alive=exited(proc))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert 'scale_bridge_uploads_total{outcome="delivered"} 1.0' in text, text
    assert 'scale_bridge_weighings_captured_total 2.0' in text
    assert 'scale_bridge_frames_total{result="rejected"} 1.0' in text
    assert 'scale_bridge_queue{state="dead"} 1.0' in text
    assert 'scale_bridge_queue{state="pending"} 0.0' in text
    assert "scale_bridge_last_success_timestamp_seconds" in text
    assert simulator.api_key(1) not in text and "3220338716" not in text
