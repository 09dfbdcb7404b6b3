"""Smoke test for the benchmarks: ``python -m bench --quick`` runs end to end and writes its JSON
report. No thresholds: timings are reported in docs/benchmarks.md, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_bench_quick_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=580, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["results"]) == {"capture", "drain", "live", "parsers", "simvalidate", "soak"}
    assert report["machine"]["cores"] and report["date"] and report["table"]
    assert all({"metric", "result", "baseline", "ratio", "target", "met"} <= set(r) for r in report["table"])
    assert "| metric |" in proc.stdout
    live = report["results"]["live"]["latency_ms"]
    assert live["received"] == live["frames"] and live["warm_up_frames"] == 1
    assert live["cold_first_weighing"] is not None and len(live["runs"]) == live["frames"]


@pytest.mark.timeout(300)
def test_bench_live_round_trip_reaches_both_clients(tmp_path: Path) -> None:
    """``--rtt-ms`` puts the platform a round trip away for the bridge and the bare client alike:
    every POST waited for at least one delayed answer (a lower bound set by the test, not a speed)."""
    out = tmp_path / "live.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "live", "--quick", "--rtt-ms", "40", "--idle-s", "1",
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    live = json.loads(out.read_text(encoding="utf-8"))["results"]["live"]
    assert live["rtt_ms"] == 40
    lat = live["latency_ms"]
    assert lat["received"] == lat["frames"]
    assert min(lat["runs"]) >= 40 and min(lat["bare_runs"]) >= 40
