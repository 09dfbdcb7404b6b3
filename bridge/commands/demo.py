"""``scale-bridge demo``: the built-in platform simulator plus the daemon on a shipped capture.

It prints one block per weighing (captured -> member -> benefit -> posted, with the simulator's
answer), takes the platform down for a few seconds mid-demo so that a weighing waits in the durable
queue and then drains, and checks itself: the capture's header declares the journeys
(``expect.journeys``); if what happened differs, the demo says which weighing and exits 70.

The replay runs on the capture's own clock, so the demo tells the same story whatever the date.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from drivers.errors import CaptureError, LinkError
from drivers.links.replay import read_header

from ..config import Config, config_from_dict
from ..journeys import block as _block
from ..journeys import simulator_answer
from ..journeys import weight as _weight
from ..logs import configure
from ..outbox import Job, JobState, Outbox

DEMO_CAPTURE = "demo-tanita.capture.jsonl"
#: a pause this long in the recording is "the next member walks up": the demo lets the journeys
#: in flight finish first, so that the blocks come out in order
SCENE_GAP_S = 1.0
SETTLE_TIMEOUT_S = 60.0
SETTLED = frozenset({JobState.DELIVERED, JobState.UNIDENTIFIED, JobState.PARKED, JobState.DEAD})
EXIT_SELF_CHECK = 70


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the simulator and the daemon on a shipped capture, show each journey",
        description=(
            "Replays a capture through the real daemon against the built-in platform simulator and prints "
            "each weighing's journey. Mid-demo the platform goes down for a few seconds: the weighing waits "
            f"in the queue, then drains. Exits {EXIT_SELF_CHECK} if a journey differs from what the capture "
            "declares, 66 if the capture does not exist, 65 if it is not a capture."
        ),
        epilog="example: scale-bridge demo --state-dir /tmp/demo && scale-bridge queue list --state-dir /tmp/demo",
    )
    p.add_argument("--capture", default=None, help="capture file to replay (default: the shipped Tanita demo)")
    p.add_argument("--driver", default=None, help="driver (default: from the capture header)")
    p.add_argument(
        "--usage",
        choices=("weighing", "endpoint"),
        default="weighing",
        help="how the benefit is used (default: benefitKey on the weighing)",
    )
    p.add_argument("--state-dir", default=None, metavar="DIR", help="keep the demo's queue here (default: temporary)")
    p.add_argument(
        "--outage-s", type=float, default=3.0, metavar="S", help="how long the platform is down mid-demo (0: none)"
    )
    p.add_argument("--verbose", action="store_true", help="also print the daemon's log lines")
    p.set_defaults(func=cmd_demo)


def demo_capture_path() -> Path:
    return Path(str(resources.files("bridge") / "data" / DEMO_CAPTURE))


def _print(*parts: Any) -> None:
    print(*parts, flush=True)


@contextmanager
def _state_dir(wanted: str | None) -> Iterator[str]:
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        yield wanted
        return
    with tempfile.TemporaryDirectory(prefix="scale-bridge-demo-") as tmp:
        yield tmp


def _demo_config(sim: Any, args: argparse.Namespace, driver: str, capture: Path, state_dir: str) -> Config:
    return config_from_dict(
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
            "queue": {"backoff_base_s": 0.5, "backoff_cap_s": 2.0},
            "state": {"dir": state_dir},
        },
        source="demo",
    )


def _print_assign_hint(jobs: list[Job], kept_dir: str | None) -> None:
    """How to attach a member to the first unidentified weighing (``kept_dir``: ``--state-dir``)."""
    parked = [j.id for j in jobs if j.state is JobState.UNIDENTIFIED]
    if parked and kept_dir:
        hint = f"scale-bridge queue assign {parked[0]} --card NUMBER --state-dir {kept_dir}"
        _print(f"attach a member later: {hint}")
    elif parked:
        _print("attach a member later: run the demo with --state-dir DIR to keep its queue, then")
        _print(f"  scale-bridge queue assign {parked[0]} --card NUMBER --state-dir DIR")


def _verdict(code: int, st: Any, mismatches: list[str]) -> int:
    """The exit code: 70 for a journey that differs, the daemon's (or 1) if a weighing did not arrive."""
    if mismatches:
        return EXIT_SELF_CHECK
    if code != 0 or st.pending or st.dead:
        print("demo: not every weighing reached the simulator", file=sys.stderr)
        return code or 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    capture = Path(args.capture) if args.capture else demo_capture_path()
    try:
        header = read_header(capture)
    except LinkError as exc:
        print(f"scale-bridge demo: {exc}", file=sys.stderr)
        return 66
    except CaptureError as exc:
        print(f"scale-bridge demo: {exc}", file=sys.stderr)
        return 65
    driver = args.driver or header.driver
    expected = _expected_journeys(header.extra)
    from ..simulator import SimulatorThread

    configure("info" if args.verbose else "critical", "console")
    with _state_dir(args.state_dir) as state_dir, SimulatorThread() as sim:
        cfg = _demo_config(sim, args, driver, capture, state_dir)
        _print(f"platform simulator on {sim.url}: studio 1, benefit BODY_SCAN, usage={args.usage}")
        _print(f"replaying {capture.name} through driver {driver} (on the capture's own clock)")
        if header.note:
            _print(f"  {header.note}")
        _print("")
        show = _Show(sim, cfg, args.outage_s)
        code = show.run()
        jobs, st = _final(cfg)
        show.print_settled(jobs)
        _print_assign_hint(jobs, state_dir if args.state_dir else None)
        uses = sim.call(lambda: sum(sim.state.usage.values()))
        _print(f"benefit uses recorded this month: {uses}")
        _print(f"frames rejected by the driver (noise, bad checksums): {show.rejected_frames}")
        mismatches = _compare(expected, jobs, args.usage)
        for line in mismatches:
            print(f"demo: {line}", file=sys.stderr)
        _print(
            f"\nqueue: {st.delivered} delivered, {st.pending} pending, {st.unidentified} unidentified, "
            f"{st.parked} parked, {st.dead} dead"
        )
        return _verdict(code, st, mismatches)


def _final(cfg: Config) -> tuple[list[Job], Any]:
    outbox = Outbox(cfg.outbox_path)
    try:
        return outbox.jobs(limit=1000), outbox.stats()
    finally:
        outbox.close()


@dataclass
class _Show:
    """Runs the daemon and narrates: one block per settled weighing, the outage as it happens."""

    sim: Any
    cfg: Config
    outage_s: float
    printed: set[int] = field(default_factory=set)
    announced_wait: set[int] = field(default_factory=set)
    outage_done: bool = False
    outage_ends_at: float | None = None
    rejected_frames: int = 0
    _daemon: Any = None

    def run(self) -> int:
        from ..daemon import Daemon

        daemon = Daemon(self.cfg, exit_when_replayed=True, drain_timeout_s=SETTLE_TIMEOUT_S)
        daemon.replay_pause = (SCENE_GAP_S, self._scene)
        self._daemon = daemon
        code: int = asyncio.run(self._run(daemon))
        self.rejected_frames = daemon.stats.rejected_frames
        return code

    async def _run(self, daemon: Any) -> int:
        task = asyncio.create_task(daemon.run())
        watcher = asyncio.create_task(self._watch_outage())
        try:
            return int(await task)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self._platform_up()

    async def _scene(self, _t_s: float) -> None:
        """Between two scenes of the recording: let the journeys in flight finish (printing them)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            jobs = self._jobs()
            self.print_settled(jobs)
            self._announce_waiting(jobs)
            if all(j.state in SETTLED for j in jobs):
                break
            await asyncio.sleep(0.05)
        if not self.outage_done and self.outage_s > 0 and any(j.state is JobState.DELIVERED for j in self._jobs()):
            self._platform_down()

    async def _watch_outage(self) -> None:
        while True:
            if self.outage_ends_at is not None and time.monotonic() >= self.outage_ends_at:
                self._platform_up()
                _print("--- the platform is back: the queue drains ---\n")
            self._announce_waiting(self._jobs())
            await asyncio.sleep(0.05)

    def _jobs(self) -> list[Job]:
        outbox = self._daemon.outbox if self._daemon is not None else None
        return [] if outbox is None else list(outbox.jobs(limit=1000))

    def _platform_down(self) -> None:
        def down() -> None:
            self.sim.state.faults.rate = 1.0
            self.sim.state.faults.kinds = ("reset_before",)

        self.sim.call(down)
        self.outage_done = True
        self.outage_ends_at = time.monotonic() + self.outage_s
        _print(f"--- the platform goes down: the simulator drops every connection for {self.outage_s:g} s ---\n")

    def _platform_up(self) -> None:
        if self.outage_ends_at is None:
            return
        self.outage_ends_at = None

        def up() -> None:
            self.sim.state.faults.rate = 0.0
            self.sim.state.faults.kinds = ()

        self.sim.call(up)

    def _announce_waiting(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.id in self.announced_wait or job.state is not JobState.PENDING or not job.last_error:
                continue
            self.announced_wait.add(job.id)
            retry_in_s = max(0.0, job.next_attempt_at - time.time())
            _print(
                f"weighing #{job.id} ({_weight(job)} kg) waits in the durable queue: {job.last_error}"
                f" (attempt {job.attempts}, next try in {retry_in_s:.1f} s)\n"
            )

    def print_settled(self, jobs: list[Job]) -> None:
        """Blocks in id order: a weighing is printed once it and every earlier one has settled."""
        for job in sorted(jobs, key=lambda j: j.id):
            if job.id in self.printed:
                continue
            if job.state not in SETTLED:
                return
            self.printed.add(job.id)
            for line in _block(job, self._answer(job), self.cfg.platform.benefit_key):
                _print(line)
            _print("")

    def _answer(self, job: Job) -> Mapping[str, Any] | None:
        return simulator_answer(self.sim, job)


def _expected_journeys(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    expect = extra.get("expect")
    journeys = expect.get("journeys") if isinstance(expect, dict) else None
    return [j for j in journeys if isinstance(j, dict)] if isinstance(journeys, list) else []


_CHECKS: Mapping[str, Callable[[Job], Any]] = {
    "state": lambda j: j.state.value,
    "member": lambda j: j.customer_id,
    "identified_by": lambda j: j.card_source,
    "benefit_valid": lambda j: j.benefit_valid,
    "cross_studio": lambda j: bool(j.note and "cross-studio" in j.note),
}


def _compare(expected: list[dict[str, Any]], jobs: list[Job], usage: str) -> list[str]:
    """What differs between the capture's declared journeys and what happened, one line each."""
    if not expected:
        return []
    by_id = {j.id: j for j in jobs}
    out: list[str] = []
    for want in expected:
        wid = want.get("weighing")
        job = by_id.get(wid) if isinstance(wid, int) else None
        if job is None:
            out.append(f"weighing #{wid}: expected {want.get('state', 'a weighing')}, but it was never captured")
            continue
        out += _differences(want, job, usage)
    extra = sorted(set(by_id) - {w.get("weighing") for w in expected})
    if extra:
        out.append(f"weighings {', '.join(f'#{i}' for i in extra)} were captured but the capture declares none")
    return out


def _differences(want: Mapping[str, Any], job: Job, usage: str) -> list[str]:
    """How one weighing differs from its declared journey."""
    out: list[str] = []
    for key, value in want.items():
        getter = _CHECKS.get(key)
        if getter is not None and getter(job) != value:
            out.append(f"weighing #{job.id}: expected {key} {value!r}, got {getter(job)!r}")
    if want.get("benefit_valid") is True and job.state is JobState.DELIVERED:
        used = job.benefit_attached if usage == "weighing" else job.benefit_used
        if not used:
            out.append(f"weighing #{job.id}: the valid benefit was not used (usage={usage})")
    return out
