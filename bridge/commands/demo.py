"""``scale-bridge demo``: the built-in platform simulator plus the daemon on a shipped capture; prints
each weighing's journey (captured -> member -> benefit -> posted, with the simulator's answer)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import config_from_dict
from ..logs import configure, mask_card
from ..outbox import Job, JobState, Outbox

DEMO_CAPTURE = "demo-tanita.capture.jsonl"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the simulator and the daemon on a shipped capture, show each journey")
    p.add_argument("--capture", default=None, help="capture file to replay (default: the shipped Tanita demo)")
    p.add_argument("--driver", default=None, help="driver (default: from the capture header)")
    p.add_argument(
        "--usage",
        choices=("weighing", "endpoint"),
        default="weighing",
        help="how the benefit is used (default: benefitKey on the weighing)",
    )
    p.add_argument("--verbose", action="store_true", help="also print the daemon's log lines")
    p.set_defaults(func=cmd_demo)


def demo_capture_path() -> Path:
    return Path(str(resources.files("bridge") / "data" / DEMO_CAPTURE))


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    capture = Path(args.capture) if args.capture else demo_capture_path()
    driver = args.driver
    if driver is None:
        from drivers.links.replay import ReplayLink

        header, _ = ReplayLink(capture).open()
        driver = header.driver
    from ..simulator import SimulatorThread

    configure("info" if args.verbose else "critical", "console")
    with tempfile.TemporaryDirectory(prefix="scale-bridge-demo-") as state_dir, SimulatorThread() as sim:
        cfg = config_from_dict(
            {
                "platform": {
                    "base_url": sim.url,
                    "api_key": sim.api_key(1),
                    "benefit_key": "BODY_SCAN",
                    "usage": args.usage,
                    "timeout_s": 10,
                },
                "scale": {"name": "demo-scale", "driver": driver, "capture": str(capture)},
                "cards": {"source": "capture"},
                "pairing": {"window_s": 120},
                "state": {"dir": state_dir},
            },
            source="demo",
        )
        _print(f"platform simulator on {sim.url} (studio A key), benefit key BODY_SCAN, usage={args.usage}")
        _print(f"replaying {capture.name} through driver {driver}\n")
        from ..daemon import Daemon

        def captured(cap: Any, wid: int) -> None:
            who = f"card {mask_card(cap.card)} ({cap.card_source})" if cap.card else "no member card"
            _print(
                f"#{wid} captured  {cap.reading.measurement.weight_kg} kg, {cap.reading.model or driver}, "
                f"device time {cap.reading.device_time or '-'} -> {who}"
            )

        def delivered(job: Job) -> None:
            _print(f"#{job.id} delivered {_journey(job)}")

        daemon = Daemon(cfg, exit_when_replayed=True, drain_timeout_s=60, on_captured=captured, on_delivered=delivered)
        code = asyncio.run(daemon.run())
        outbox = Outbox(cfg.outbox_path)
        try:
            jobs = outbox.jobs(limit=1000)
            _print("")
            for job in jobs:
                if job.state is not JobState.DELIVERED:
                    _print(f"#{job.id} {job.state.value}: {job.note or job.last_error or ''}".rstrip())
            if any(j.state is JobState.UNIDENTIFIED for j in jobs):
                _print("   (attach a member later: scale-bridge queue assign ID --card NUMBER)")
            st = outbox.stats()
        finally:
            outbox.close()
        weighings = sim.call(lambda: list(sim.state.weighings))
        _print(f"\nthe simulator accepted {len(weighings)} weighing(s):")
        for w in weighings:
            fields = sorted(k for k in w["body"] if k != "rawResults")
            _print(
                f"  customer {w['customerId']} (home studio {w['homeStudioId']}) via studio {w['studioId']}: "
                f"weight {w['body'].get('weight')} kg, benefitKey={w['benefitKey'] or '-'}, "
                f"{len(fields)} measured fields + rawResults"
            )
        left = sim.call(lambda: {k: v for k, v in sim.state.usage.items()})
        _print(f"benefit uses recorded this month: {sum(left.values())}")
        _print(
            f"\nqueue: {st.delivered} delivered, {st.pending} pending, {st.unidentified} unidentified, "
            f"{st.parked} parked, {st.dead} dead"
        )
        if code != 0 or st.pending or st.dead:
            print("demo: not every weighing reached the simulator", file=sys.stderr)
            return code or 1
        return 0


def _journey(job: Job) -> str:
    parts = [f"member {job.customer_id}"]
    if job.note and "cross-studio" in job.note:
        parts.append(job.note)
    if job.benefit_valid is True:
        parts.append("benefit valid")
    elif job.benefit_valid is False:
        parts.append("benefit not valid -> uploaded without it")
    parts.append(f"posted HTTP {job.last_status}" + (" with benefitKey" if job.benefit_attached else ""))
    if job.benefit_used and not job.benefit_attached:
        parts.append("benefit used via /use")
    return " -> ".join(parts)
