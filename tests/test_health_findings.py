"""`check`'s findings from a status and a queue, in process (installer audit I5, I9): a benefit valid for
nobody is a WARNING naming platform.benefit_key, perfdata follows the plugin guidelines (units, lower
bounds for free space), the worst finding leads the summary, stale link states are marked."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bridge.config import config_from_dict
from bridge.health import Finding, Perf, Status, check_daemon, summarize
from bridge.status import BenefitFigures, DaemonStatus
from drivers.links.base import LinkState


def cfg(tmp_path: Path) -> object:
    return config_from_dict({"platform": {"base_url": "http://127.0.0.1:9", "api_key": "k", "benefit_key": "BODY_SCAM"},
                             "scale": {"driver": "tanita", "port": "/dev/null"},
                             "state": {"dir": str(tmp_path)}}, source="t")


def write_status(tmp_path: Path, **kw: object) -> None:
    now = time.time()
    doc = {"pid": os.getpid(), "running": True, "started_at": now, "updated_at": now,
           "links": {"scale:s": LinkState.CONNECTED}, **kw}
    (tmp_path / "status.json").write_text(DaemonStatus(**doc).to_json(), encoding="utf-8")  # type: ignore[arg-type]


def test_a_benefit_valid_for_nobody_is_a_warning_naming_the_key(tmp_path: Path) -> None:
    write_status(tmp_path, benefit=BenefitFigures("BODY_SCAM", checked=25, valid=0))
    found = {f.component: f for f in check_daemon(cfg(tmp_path), time.time())}  # type: ignore[arg-type]
    assert found["benefit"].status is Status.WARNING
    assert "BODY_SCAM valid for 0 of the last 25 members" in found["benefit"].message
    assert "platform.benefit_key" in found["benefit"].message
    write_status(tmp_path, benefit=BenefitFigures("BODY_SCAN", checked=25, valid=3))
    assert "benefit" not in {f.component for f in check_daemon(cfg(tmp_path), time.time())}  # type: ignore[arg-type]
    write_status(tmp_path, benefit=BenefitFigures("BODY_SCAM", checked=4, valid=0))  # too few to say
    assert "benefit" not in {f.component for f in check_daemon(cfg(tmp_path), time.time())}  # type: ignore[arg-type]


def test_stale_link_states_are_marked_when_the_daemon_is_down(tmp_path: Path) -> None:
    write_status(tmp_path, running=False)
    found = {f.component: f for f in check_daemon(cfg(tmp_path), time.time())}  # type: ignore[arg-type]
    assert found["daemon"].status is Status.CRITICAL
    assert found["links"].status is Status.UNKNOWN and "(stale)" in found["links"].message


def test_perfdata_has_units_and_lower_bounds_and_the_worst_finding_leads() -> None:
    findings = [
        Finding("dead_letters", Status.WARNING, "1 dead letter(s)", {"dead": Perf(1, 1)}),
        Finding("daemon", Status.CRITICAL, "daemon not running"),
        Finding("disk", Status.OK, "84583 MB free", {"disk_free": Perf(84583, 200, 50, "MB", low_is_bad=True)}),
        Finding("queue", Status.OK, "0 pending", {"oldest_pending": Perf(0, 900, 3600, "s")}),
    ]
    status, line = summarize(findings)
    assert status is Status.CRITICAL
    summary, perf = line.split(" | ")
    assert summary == "SCALE-BRIDGE CRITICAL: daemon not running; 1 dead letter(s)"
    assert perf.split() == ["dead=1;1;;0", "disk_free=84583MB;200:;50:;0", "oldest_pending=0s;900;3600;0"]
