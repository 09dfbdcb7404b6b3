"""``scale-bridge replay FILE``: run a capture through the same framer/parser/pairing/outbox as a live
link, and print each weighing's journey (as ``demo`` does; ``--json``: one JSON document per weighing).

Without ``--upload`` nothing leaves the machine: each weighing the daemon would send is shown as "would
upload". ``--simulator`` uploads to the built-in platform simulator (``--seed FILE``: its members,
studios and benefits, e.g. the site's pseudonymous members for a redacted capture). ``--upload`` posts
to the platform of ``--config``: real weighings, benefits used a second time, so it asks first
(``--yes`` to skip; without a terminal and without ``--yes`` it refuses, exit 64).

``--config`` takes the site's platform, pairing and card format, never its live parts: the cards come
from the capture, no metrics port is opened, no flight recorder runs, and the outbox is a temporary
one unless ``--state-dir`` names one (which is then locked like a daemon's)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import msgspec

from drivers.errors import CaptureError, LinkError
from drivers.links.replay import ReplayLink

from ..cli import HELP_FORMATTER, examples
from ..config import Config, config_from_dict, load_config
from ..errors import UsageError
from ..logs import BarStream, configure, mask_card, silence
from ..outbox import Job, JobState, Outbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="replay a capture file through the bridge (for tests and support)",
        description="Replay a capture through the bridge's decoders, pairing and queue and print each "
        "weighing's journey. Nothing is uploaded unless --upload or --simulator is given.",
        epilog=examples(
            "scale-bridge replay site.capture.jsonl",
            "scale-bridge replay --simulator --seed site-members.toml site.capture.jsonl",
            "scale-bridge replay --config /etc/scale-bridge/config.toml --upload --yes site.capture.jsonl",
        )
        + "\n\nexit codes: 0 ok, 64 usage (also: --upload refused), 65 not a capture / bad seed, 66 missing file",
        formatter_class=HELP_FORMATTER,
    )
    p.add_argument("file", help="capture file (scale-bridge-capture JSONL)")
    p.add_argument(
        "--config",
        "-c",
        default=argparse.SUPPRESS,
        metavar="FILE",
        help="use this config (platform, pairing, card format); the scale and card links are the capture's",
    )
    p.add_argument("--driver", help="override the driver named in the capture header")
    up = p.add_argument_group("uploading")
    up.add_argument("--upload", action="store_true", help="upload the weighings (platform from --config)")
    up.add_argument("--yes", "-y", action="store_true", help="--upload: do not ask for confirmation")
    up.add_argument("--simulator", action="store_true", help="upload to the built-in platform simulator")
    up.add_argument("--seed", metavar="FILE", help="--simulator: its seed (TOML: studios, members, cards, benefits)")
    p.add_argument("--state-dir", help="keep the outbox here (default: a temporary directory)")
    p.add_argument("--realtime", action="store_true", help="honour the recorded timing")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="one JSON document per weighing instead of the journeys")
    p.set_defaults(func=cmd_replay)


def _bad_capture(exc: CaptureError | LinkError) -> int:
    """A capture that is missing (66) or malformed (65): one line naming the file and line."""
    print(f"scale-bridge: {exc}", file=sys.stderr)
    return 65 if isinstance(exc, CaptureError) else 66


def _load_seed(path: str) -> tuple[Any, int]:
    """The simulator's state from ``--seed`` and the studio whose key the replay uses (the first)."""
    import tomllib

    from ..errors import InputError
    from ..simulator import PlatformState

    try:
        state = PlatformState.from_file(path)
    except FileNotFoundError:
        raise LinkError(f"--seed {path}: no such file", transient=False) from None
    except OSError as exc:
        raise LinkError(f"--seed {path}: {exc.strerror or exc}", transient=False) from None
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"--seed {path}: not a simulator seed ({type(exc).__name__}: {exc})") from None
    if not state.studios:
        raise InputError(f"--seed {path}: no [[studios]] (the replay needs one studio's API key)")
    return state, min(state.studios)


def confirm_upload(base_url: str, source: str, events: int, *, yes: bool, stdin: TextIO, err: TextIO) -> None:
    """Ask before posting a capture's weighings to a real platform. ``UsageError`` (64) if refused."""
    if yes:
        return
    what = f"replay: upload the weighings of this capture ({events} events) to {base_url} (from {source})?"
    if not stdin.isatty():
        raise UsageError(
            f"{what} Refusing without a terminal to ask on: this posts real weighings and may use benefits "
            "a second time. Give --yes to upload, or use --simulator."
        )
    err.write(f"{what}\n  This posts real weighings and may use members' benefits a second time. Type yes: ")
    err.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("replay: upload not confirmed; nothing was sent")


def site_free(doc: dict[str, Any], state_dir: str) -> dict[str, Any]:
    """A site's config with its live parts taken out (pure): cards from the capture, no metrics port,
    no flight recorder, the given state dir."""
    out = dict(doc)
    out["cards"] = {k: v for k, v in doc.get("cards", {}).items() if k not in ("source", "device")}
    out["cards"]["source"] = "capture"
    out["metrics"] = {**doc.get("metrics", {}), "listen": ""}
    out["state"] = {**doc.get("state", {}), "dir": state_dir}
    return out


def _check_flags(args: argparse.Namespace) -> None:
    """The flag combinations refused (64)."""
    if args.seed and not args.simulator:
        raise UsageError("--seed seeds the built-in simulator: give --simulator too")
    if args.upload and args.simulator:
        raise UsageError("--upload posts to --config's platform, --simulator to the built-in one: give one")
    if args.upload and not getattr(args, "config", None):
        raise UsageError("--upload needs --config (the platform to upload to), or use --simulator")


def _state_dir(stack: contextlib.ExitStack, args: argparse.Namespace) -> str:
    """``--state-dir``, locked like a daemon's (75 if a daemon or another replay uses it), else a
    temporary directory removed when ``stack`` closes."""
    if not args.state_dir:
        return stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-bridge-replay-"))
    from ..statelock import acquire
    from .run import prepare_state_dir

    prepare_state_dir(args.state_dir, "--state-dir")
    stack.enter_context(acquire(args.state_dir))
    return str(args.state_dir)


def _base_doc(config_path: str | None, state_dir: str) -> dict[str, Any]:
    if config_path:
        return site_free(msgspec.to_builtins(load_config(config_path)), state_dir)
    return {
        "platform": {"base_url": "http://127.0.0.1:9", "api_key": "-"},
        "cards": {"source": "capture"},
        "state": {"dir": state_dir},
    }


def _start_simulator(stack: contextlib.ExitStack, doc: dict[str, Any], args: argparse.Namespace, seed: Any) -> Any:
    """The built-in simulator, started, with ``doc``'s platform pointed at it (the seed's first studio)."""
    from ..simulator import SimulatorThread

    sim = SimulatorThread(args.seed) if seed is not None else SimulatorThread()
    stack.enter_context(sim)
    studio = seed[1] if seed is not None else 1
    doc["platform"].update(
        {
            "base_url": sim.url,
            "api_key": sim.api_key(studio),
            "benefit_key": doc["platform"].get("benefit_key") or "BODY_SCAN",
        }
    )
    return sim


def _capture_scale(doc: dict[str, Any], driver: str, path: Path, *, realtime: bool) -> dict[str, Any]:
    """``[scale]`` reading the capture (the site's live link and flight recorder off)."""
    return {
        **doc.get("scale", {}),
        "driver": driver,
        "capture": str(path),
        "port": "",
        "address": "",
        "replay_realtime": realtime,
        "record_dir": "",
    }


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        with ReplayLink(path).opened() as (header, events):
            # every event is checked before the daemon runs: a malformed line ends the replay with 65
            # and its line number instead of a link failure mid-run
            total = sum(1 for _ in events)
    except (CaptureError, LinkError) as exc:
        return _bad_capture(exc)
    _check_flags(args)
    upload = args.upload or args.simulator
    seed: tuple[Any, int] | None = None
    if args.seed:
        try:
            seed = _load_seed(args.seed)
        except LinkError as exc:
            return _bad_capture(exc)
    config_path = getattr(args, "config", None)
    with contextlib.ExitStack() as stack:
        doc = _base_doc(config_path, _state_dir(stack, args))
        sim = _start_simulator(stack, doc, args, seed) if args.simulator else None
        doc["scale"] = _capture_scale(doc, args.driver or header.driver, path, realtime=bool(args.realtime))
        cfg: Config = config_from_dict(doc, source=config_path or "replay")
        if args.upload:
            confirm_upload(
                cfg.platform.base_url, str(config_path), total, yes=args.yes, stdin=sys.stdin, err=sys.stderr
            )
        with _log_stream(args) as stream:
            configure(cfg.log.level if upload else "warning", cfg.log.format.value, stream)
            return _run(cfg, args, total, upload, sim=sim, stream=stream)


@contextlib.contextmanager
def _log_stream(args: argparse.Namespace) -> Iterator[Any]:
    """stderr, or on a terminal with a progress bar, stderr through the bar (bridge.logs.BarStream:
    a log line clears the bar's line first and the bar is drawn again below it)."""
    if args.quiet or not sys.stderr.isatty():
        yield sys.stderr
        return
    yield BarStream(sys.stderr)


def _progress(link: ReplayLink, total: int, done: asyncio.Event, bar: BarStream) -> asyncio.Task[None]:
    async def run() -> None:
        while not done.is_set():
            n = link.replayed
            width = 30
            filled = int(width * n / total) if total else width
            bar.bar(f"replaying [{'#' * filled}{'.' * (width - filled)}] {n}/{total} events")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.2)
        bar.done(f"replayed {link.replayed}/{total} events")

    return asyncio.create_task(run())


def _run(cfg: Config, args: argparse.Namespace, total: int, upload: bool, *, sim: Any, stream: Any) -> int:
    from ..daemon import Daemon

    captured: list[dict[str, Any]] = []
    running: list[Daemon] = []
    reader_gone = False

    def on_captured(cap: Any, wid: int) -> None:
        nonlocal reader_gone
        doc = {
            "id": wid,
            "state": cap.state.value,
            "card": mask_card(cap.card) if cap.card else None,
            "device_time": cap.reading.device_time,
            **{k: v for k, v in cap.body.items() if k != "rawResults"},
        }
        if not upload and cap.state is JobState.PENDING:
            doc["would_upload"] = True
        captured.append(doc)
        if args.json and not upload and not reader_gone:
            try:
                print(json.dumps(doc), flush=True)
            except BrokenPipeError:  # `| head`: the reader has what it wanted; stop, quietly
                reader_gone = True
                silence(sys.stdout)
                for daemon in running:
                    daemon.request_stop()

    async def main() -> int:
        daemon = Daemon(cfg, upload=upload, exit_when_replayed=True, on_captured=on_captured)
        running.append(daemon)
        done = asyncio.Event()
        task = asyncio.create_task(daemon.run())
        progress = None
        while not daemon.links and not task.done():
            await asyncio.sleep(0.01)
        if daemon.links and isinstance(stream, BarStream):
            progress = _progress(daemon.links[0], total, done, stream)  # type: ignore[arg-type]
        code = await task
        done.set()
        if progress is not None:
            await progress
        return code

    code = asyncio.run(main())
    if reader_gone:
        return 0
    ob = Outbox(cfg.outbox_path)
    try:
        st = ob.stats()
        jobs = sorted(ob.jobs(limit=100_000), key=lambda j: j.id)
    finally:
        ob.close()
    if args.json:
        if upload:
            for job in jobs:
                print(json.dumps(_job_doc(job)), flush=True)
    else:
        _print_journeys(jobs, cfg, upload=upload, sim=sim)
    pending = f"{st.pending} pending" if upload else f"{st.pending} would upload"
    print(
        f"replay: {len(captured)} weighing(s) captured; {st.delivered} delivered, {pending}, "
        f"{st.unidentified} unidentified, {st.parked} parked, {st.dead} dead",
        file=sys.stderr,
    )
    return code


def _print_journeys(jobs: list[Job], cfg: Config, *, upload: bool, sim: Any) -> None:
    from ..journeys import block, simulator_answer

    platform = "the simulator" if sim is not None else "the platform"
    for job in jobs:
        answer = simulator_answer(sim, job) if sim is not None else None
        for line in block(job, answer, cfg.platform.benefit_key, uploaded=upload, platform=platform):
            print(line)
        print("", flush=True)


def _job_doc(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "card": mask_card(job.card) if job.card else None,
        "member": job.customer_id,
        "benefit_valid": job.benefit_valid,
        "status": job.last_status,
        "error": job.last_error,
        **{k: v for k, v in job.body.items() if k != "rawResults"},
    }
