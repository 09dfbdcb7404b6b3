"""Health and metrics agree on every queue figure: both are driven from one state (the outbox's
read model through ``DaemonStatus``). Architecture review D4: a 3-day-old unidentified weighing was
259,200 s "pending" in Prometheus while ``check`` said OK."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.config import config_from_dict
from bridge.health import Status, queue_findings
from bridge.metrics import families
from bridge.outbox import JobState, Outbox
from bridge.status import DaemonStatus, QueueFigures

DAY = 86400.0


def _metric(status: DaemonStatus, name: str, **labels: str) -> float:
    for fam in families(status):
        for sample in fam.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels}")


def test_check_and_metrics_report_the_same_queue(tmp_path: Path) -> None:
    now = time.time()
    box = Outbox(tmp_path / "outbox.db")
    body = {"rawResults": "{}", "weight": 70.0}

    def add(state: JobState, age_s: float) -> int:
        wid = box.capture(scale="s", driver="tanita", body=body, card="1", card_source="x", state=state,
                          now=now - age_s)
        assert wid is not None
        return wid

    add(JobState.UNIDENTIFIED, 3 * DAY)  # waiting for staff, three days old: not an upload backlog
    add(JobState.PARKED, DAY)
    add(JobState.PENDING, 1200.0)
    add(JobState.PENDING, 60.0)
    dead = add(JobState.PENDING, 30.0)
    job = box.get(dead)
    assert job is not None
    box.kill(dead, stage=job.stage, status=404, error_code="X", error_message="gone", trace_id=None)
    stats = box.stats()
    box.close()

    cfg = config_from_dict({"platform": {"base_url": "http://127.0.0.1:9", "api_key": "k"},
                            "scale": {"driver": "tanita", "port": "/dev/null"},
                            "state": {"dir": str(tmp_path)}}, source="test")
    figures = QueueFigures.from_stats(stats, now)
    status = DaemonStatus(pid=1, running=True, started_at=now, updated_at=now, queue=figures)
    found = {f.component: f for f in queue_findings(cfg, stats, now)}

    # the same numbers on both sides
    assert _metric(status, "scale_bridge_queue", state="pending") == 2 == found["queue"].perfdata["pending"].value
    assert _metric(status, "scale_bridge_queue", state="dead") == 1 == found["dead_letters"].perfdata["dead"].value
    staff = _metric(status, "scale_bridge_queue", state="unidentified") + _metric(
        status, "scale_bridge_queue", state="parked")
    assert staff == 2 == found["unidentified"].perfdata["waiting_for_staff"].value
    pending_age = _metric(status, "scale_bridge_oldest_pending_age_seconds")
    assert abs(pending_age - 1200.0) < 5 and abs(found["queue"].perfdata["oldest_pending"].value - pending_age) < 1
    staff_age = _metric(status, "scale_bridge_oldest_waiting_for_staff_age_seconds")
    assert abs(staff_age - 3 * DAY) < 5
    assert abs(found["unidentified"].perfdata["oldest_waiting_for_staff"].value - staff_age) < 1
    # the three-day-old unidentified weighing is not an upload backlog: 20 min pending is a WARNING
    # (>= 15 min), not the CRITICAL a 3-day "pending" age would give
    assert found["queue"].status is Status.WARNING
    # ... and the status file carries exactly these figures to `check` (round trip)
    assert DaemonStatus.from_json(status.to_json()).queue == figures
