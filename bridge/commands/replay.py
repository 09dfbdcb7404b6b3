"""``scale-bridge replay FILE``: run a capture through the same framer/parser/pairing/outbox as a live
link. Without ``--upload`` nothing leaves the machine: it prints each weighing it would capture. With
``--upload`` it posts to the platform of ``--config``, or with ``--simulator`` to the built-in one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from drivers.errors import CaptureError, LinkError
from drivers.links.replay import ReplayLink

from ..config import Config, config_from_dict, load_config
from ..logs import configure, mask_card
from ..outbox import Outbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="replay a capture file through the bridge (for tests and support)")
    p.add_argument("file", help="capture file (scale-bridge-capture JSONL)")
    p.add_argument(
        "--config",
        "-c",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="use this config (platform, cards, pairing); the scale link is replaced by the capture",
    )
    p.add_argument("--driver", help="override the driver named in the capture header")
    p.add_argument("--upload", action="store_true", help="upload the weighings (platform from --config)")
    p.add_argument("--simulator", action="store_true", help="upload to the built-in platform simulator")
    p.add_argument("--state-dir", help="keep the outbox here (default: a temporary directory)")
    p.add_argument("--realtime", action="store_true", help="honour the recorded timing")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)


def _progress(link: ReplayLink, total: int, done: asyncio.Event) -> asyncio.Task[None]:
    async def run() -> None:
        while not done.is_set():
            n = link.replayed
            width = 30
            filled = int(width * n / total) if total else width
            sys.stderr.write(f"\rreplaying [{'#' * filled}{'.' * (width - filled)}] {n}/{total} events")
            sys.stderr.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2)
        sys.stderr.write(f"\rreplayed {link.replayed}/{total} events{' ' * 30}\n")

    return asyncio.create_task(run())


def _bad_capture(exc: CaptureError | LinkError) -> int:
    """A capture that is missing (66) or malformed (65): one line naming the file and line."""
    print(f"scale-bridge: {exc}", file=sys.stderr)
    return 65 if isinstance(exc, CaptureError) else 66


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        with ReplayLink(path).opened() as (header, events):
            # every event is checked before the daemon runs: a malformed line ends the replay with 65
            # and its line number instead of a link failure mid-run
            total = sum(1 for _ in events)
    except (CaptureError, LinkError) as exc:
        return _bad_capture(exc)
    driver = args.driver or header.driver
    upload = args.upload or args.simulator
    sim = None
    tmp = None if args.state_dir else tempfile.TemporaryDirectory(prefix="scale-bridge-replay-")
    state_dir = args.state_dir or tmp.name  # type: ignore[union-attr]
    try:
        if getattr(args, "config", None):
            base = load_config(args.config)
            doc: dict[str, Any] = msgspec.to_builtins(base)
        else:
            if args.upload and not args.simulator:
                from ..errors import UsageError

                raise UsageError("--upload needs --config (the platform to upload to), or use --simulator")
            doc = {"platform": {"base_url": "http://127.0.0.1:9", "api_key": "-"}, "cards": {"source": "capture"}}
        if args.simulator:
            from ..simulator import SimulatorThread

            sim = SimulatorThread().start()
            doc["platform"].update(
                {
                    "base_url": sim.url,
                    "api_key": sim.api_key(1),
                    "benefit_key": doc["platform"].get("benefit_key") or "BODY_SCAN",
                }
            )
        doc["scale"] = {
            **doc.get("scale", {}),
            "driver": driver,
            "capture": str(path),
            "port": "",
            "address": "",
            "replay_realtime": bool(args.realtime),
        }
        doc.setdefault("state", {})["dir"] = state_dir
        cfg: Config = config_from_dict(doc, source=getattr(args, "config", "replay"))
        configure(cfg.log.level if upload else "warning", cfg.log.format.value)
        return _run(cfg, args, total, upload)
    finally:
        if sim is not None:
            sim.stop()
        if tmp is not None:
            tmp.cleanup()


def _run(cfg: Config, args: argparse.Namespace, total: int, upload: bool) -> int:
    from ..daemon import Daemon

    captured: list[dict[str, Any]] = []

    def on_captured(cap: Any, wid: int) -> None:
        doc = {
            "id": wid,
            "state": cap.state.value,
            "card": mask_card(cap.card) if cap.card else None,
            "device_time": cap.reading.device_time,
            **{k: v for k, v in cap.body.items() if k != "rawResults"},
        }
        captured.append(doc)
        if not upload:
            print(json.dumps(doc), flush=True)

    async def main() -> int:
        daemon = Daemon(cfg, upload=upload, exit_when_replayed=True, on_captured=on_captured)
        done = asyncio.Event()
        task = asyncio.create_task(daemon.run())
        progress = None
        while not daemon.links and not task.done():
            await asyncio.sleep(0.01)
        if daemon.links and not args.quiet and sys.stderr.isatty():
            progress = _progress(daemon.links[0], total, done)  # type: ignore[arg-type]
        code = await task
        done.set()
        if progress is not None:
            await progress
        return code

    code = asyncio.run(main())
    ob = Outbox(cfg.outbox_path)
    try:
        st = ob.stats()
    finally:
        ob.close()
    print(
        f"replay: {len(captured)} weighing(s) captured; {st.delivered} delivered, {st.pending} pending, "
        f"{st.unidentified} unidentified, {st.parked} parked, {st.dead} dead",
        file=sys.stderr,
    )
    return code
