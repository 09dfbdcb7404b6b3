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
    assert set(report["results"]) == {"capture", "drain", "live", "parsers", "soak"}
    assert report["machine"]["cores"] and report["date"] and report["table"]
    assert all({"metric", "result", "baseline", "ratio", "target", "met"} <= set(r) for r in report["table"])
    assert "| metric |" in proc.stdout
