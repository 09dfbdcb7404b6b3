"""``scale-bridge record --port URL --driver NAME OUT``: write what a scale sends to a capture file
(DESIGN.md §3), for support, test vectors and ``replay``.

The header names the driver, the link, ``--note`` and ``started_at``; then one event per line, as the
link yields them: ``rx`` chunks exactly as the bytes arrived (``t`` = seconds from ``started_at`` by
the host clock at arrival), ``tx`` for what the bridge wrote (MT-SICS polls: the link polls while
recording, as the daemon does), ``adv`` / ``notify`` for BLE drivers (``--address`` / ``--adapter``).
Every event is flushed when written, so a crash leaves a valid file (at worst without its last line);
the file is fsynced when the recording ends. Stops on Ctrl-C / SIGTERM or after ``--seconds``.

``--cards SRC`` (``evdev:/dev/input/...``, ``serial:URL``, ``socket:PATH``, ``stdin``; as ``scan
--cards --source``) records the card reader beside the scale: its taps are ``card`` events in the same
file, on the same host clock, so ``replay`` pairs them as the daemon did (``[cards] source =
"capture"``). The header names the reader (``cards``).

``--redact``: for sending to support. Tanita ``ID`` / ``CC`` / ``SN`` values become pseudonyms of the
same length (keyed with a random per-recording key: stable within the file, not reversible by trying
card numbers) and the checksum is recomputed, so the capture still decodes; ``card`` events are
masked the same way, and a ``D5`` member number among the ``tx`` commands too. To rewrite whole
records, ``rx`` bytes are held until the end of their line: a redacted capture keeps the timing of
each line's last chunk, not every chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from drivers.capture import CaptureHeader, event_to_json
from drivers.events import EventKind, LinkEvent
from drivers.registry import DriverSpec, LinkKind, SerialSettings, get, registry

from ..errors import UsageError

#: longest run of bytes held back without a line end in --redact mode
REDACT_HOLD_BYTES = 8192


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("record", help="record what a scale sends to a capture file (for support, replay, vectors)")
    p.add_argument("out", metavar="OUT", help="capture file to write (JSON Lines)")
    p.add_argument("--driver", "-d", required=True, help=f"driver name ({', '.join(sorted(registry()))})")
    p.add_argument("--port", help="serial drivers: pyserial URL (/dev/serial/by-id/..., socket://, rfc2217://)")
    p.add_argument("--address", help="BLE drivers: only this device address")
    p.add_argument("--adapter", help="BLE drivers: adapter, e.g. hci1")
    p.add_argument("--seconds", type=float, default=0.0, metavar="S", help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--redact", action="store_true", help="replace member/card IDs by pseudonyms (to send to support)")
    p.add_argument("--note", default="", help="free text for the header (site, model, what was done)")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument("--no-poll", action="store_true", help="do not send the driver's poll command (MT-SICS)")
    p.add_argument("--baudrate", type=int, help="serial: override the driver's baud rate")
    p.add_argument("--bytesize", type=int, choices=(5, 6, 7, 8), help="serial: data bits")
    p.add_argument("--parity", choices=("N", "E", "O", "M", "S"), help="serial: parity")
    p.add_argument("--stopbits", type=float, choices=(1, 1.5, 2), help="serial: stop bits")
    p.add_argument("--config", help="inbody: the config file with the [lookinbody] section (docs/inbody.md)")
    p.add_argument(
        "--cards",
        metavar="SRC",
        help="also record the card reader: evdev:/dev/input/..., serial:URL, socket:PATH or stdin",
    )
    p.add_argument("--cards-protocol", choices=("rdm6300", "binary"), help="--cards serial: reader protocol")
    p.add_argument("--cards-baudrate", type=int, help="--cards serial: baud rate (default 9600)")
    p.set_defaults(func=cmd_record)


def serial_settings(spec: DriverSpec, args: argparse.Namespace) -> SerialSettings:
    base = spec.serial or SerialSettings()
    return SerialSettings(
        baudrate=args.baudrate or base.baudrate,
        bytesize=args.bytesize or base.bytesize,
        parity=args.parity or base.parity,
        stopbits=args.stopbits or base.stopbits,
        xonxoff=base.xonxoff,
        rtscts=base.rtscts,
    )


class Redactor:
    """Rewrites events for --redact. Pure apart from the key it is given."""

    def __init__(self, key: bytes) -> None:
        from drivers.redact import pseudonym

        self._key = key
        self._pseudonym = pseudonym
        self._held = bytearray()
        self._held_event: LinkEvent | None = None

    def value(self, text: str) -> str:
        return self._pseudonym(text, self._key)

    def line(self, data: bytes) -> bytes:
        from drivers.tanita import redact_line

        return redact_line(data, self.value)

    def event(self, ev: LinkEvent) -> list[LinkEvent]:
        if ev.kind is EventKind.CARD:
            text = ev.payload.decode("ascii", "replace").strip()
            return [_with_payload(ev, self.value(text).encode("ascii", "replace"))]
        if ev.kind is EventKind.TX:
            text = ev.payload.decode("ascii", "replace")
            if text.startswith("D5") and text[2:].strip().isdigit():
                digits = text[2:].strip()
                return [_with_payload(ev, ("D5" + self.value(digits) + text[2 + len(digits) :]).encode("ascii"))]
            return [ev]
        if ev.kind is EventKind.HTTP:  # LookinBody answers: UserID, phone, names (drivers/inbody.py)
            from drivers.inbody import redact_envelope

            return [_with_payload(ev, redact_envelope(ev.payload, self.value))]
        if ev.kind is not EventKind.RX:
            return [ev]
        self._held += ev.payload
        end = self._held.rfind(b"\n")
        if end < 0 and len(self._held) <= REDACT_HOLD_BYTES:
            return []
        cut = len(self._held) if end < 0 else end + 1
        chunk = bytes(self._held[:cut])
        del self._held[:cut]
        out = b"".join(self.line(part) for part in chunk.splitlines(keepends=True))
        return [_with_payload(ev, out)]

    def flush(self, at: datetime) -> list[LinkEvent]:
        if not self._held:
            return []
        data = bytes(self._held)
        self._held.clear()
        return [LinkEvent(EventKind.RX, self.line(data), at)]


def _with_payload(ev: LinkEvent, payload: bytes) -> LinkEvent:
    return LinkEvent(ev.kind, payload, ev.received_at, ev.channel, ev.address, ev.rssi, ev.name, ev.scale)


class CaptureWriter:
    """One JSON line per event, flushed at once; ``t`` never goes backwards (host clock steps)."""

    def __init__(self, fh: IO[str], started_at: datetime) -> None:
        self.fh = fh
        self.started_at = started_at
        self.last_t = 0.0
        self.counts: dict[str, int] = {}
        self.bytes: dict[str, int] = {}

    def write(self, ev: LinkEvent) -> None:
        t = max(self.last_t, (ev.received_at - self.started_at).total_seconds())
        self.last_t = t
        self.fh.write(event_to_json(ev, t) + "\n")
        self.fh.flush()
        self.counts[ev.kind.value] = self.counts.get(ev.kind.value, 0) + 1
        self.bytes[ev.kind.value] = self.bytes.get(ev.kind.value, 0) + len(ev.payload)


def _say(text: str) -> None:
    print(f"record: {text}", file=sys.stderr, flush=True)


def build_link(spec: DriverSpec, args: argparse.Namespace, on_tx: Callable[[LinkEvent], None]) -> Any:
    def on_state(state: str, detail: str) -> None:
        _say(f"link {state}" + (f": {detail}" if detail else ""))

    if spec.link is LinkKind.CLOUD:  # InBody via LookinBody Web: what the API answered
        if not args.config:
            raise UsageError(f"driver {spec.name} reads a cloud API: give --config FILE (its [lookinbody] section)")
        from drivers.links.lookinbody import LookinBodyLink

        from ..config import load_config

        return LookinBodyLink(load_config(args.config).lookinbody.settings(), on_state=on_state)
    if spec.link is LinkKind.SERIAL:
        if not args.port:
            raise UsageError(f"driver {spec.name} is a serial driver: give --port URL")
        from drivers.links.serial import SerialLink

        from ..portcheck import check_port

        check_port(args.port)  # 66 if it does not exist, 69 if the daemon reads it

        poll = None if args.no_poll else spec.poll_command
        return SerialLink(
            args.port,
            serial_settings(spec, args),
            on_state=on_state,
            poll_command=poll,
            poll_interval_s=spec.poll_interval_s,
            on_tx=on_tx,
        )
    if args.port:
        raise UsageError(f"driver {spec.name} is a BLE driver: use --address/--adapter, not --port")
    try:
        from drivers.links.ble import BleLink
    except ImportError as exc:  # pragma: no cover - bleak is a Linux dependency
        raise UsageError(f"BLE support is not installed ({exc})") from None
    return BleLink([spec], adapter=args.adapter, address=args.address, on_state=on_state)


def open_output(out: Path) -> IO[str]:
    """The capture file, opened by us (L3, issue 14): a new one with O_EXCL, an existing regular file
    truncated with O_NOFOLLOW, both at most 0640 (a capture can hold card numbers). A symbolic link is
    never followed to a file (a dangling one would create its target); a device or a pipe (/dev/null,
    /dev/stdout) is opened as it is, nothing to clobber there."""
    import stat

    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    try:
        here = out.lstat()
    except FileNotFoundError:
        here = None
    try:
        if here is None:
            flags |= os.O_EXCL | os.O_NOFOLLOW
        elif stat.S_ISREG(here.st_mode):
            flags |= os.O_TRUNC | os.O_NOFOLLOW
        elif stat.S_ISLNK(here.st_mode) and not _is_device(out):
            raise UsageError(f"{out} is a symbolic link: not followed (give the file's real path)")
        fd = os.open(out, flags, 0o640)
    except FileExistsError:
        raise UsageError(f"{out} appeared while opening it (not overwritten; use --force)") from None
    except OSError as exc:
        raise UsageError(f"{out}: cannot write ({exc.strerror})") from None
    return os.fdopen(fd, "w", encoding="utf-8")


def _is_device(path: Path) -> bool:
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def build_card_link(args: argparse.Namespace) -> Any:
    """The card reader of ``--cards SRC`` (None without it); the source syntax is ``scan --cards``'s.
    A reader that does not exist is 66, one the daemon holds 69 (before anything is written)."""
    if not args.cards:
        return None
    from drivers.links.cards import from_config

    from .scan import _card_source_spec

    spec = argparse.Namespace(
        source=args.cards, protocol=args.cards_protocol, baudrate=args.cards_baudrate, config=None
    )
    source, device, protocol, baudrate = _card_source_spec(spec)
    if source == "serial":
        from ..portcheck import check_port

        check_port(device)

    def on_state(state: str, detail: str) -> None:
        _say(f"card reader {state}" + (f": {detail}" if detail else ""))

    return from_config(source, device, protocol=protocol, baudrate=baudrate, on_state=on_state)


def cmd_record(args: argparse.Namespace) -> int:
    try:
        spec = get(args.driver)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    if args.seconds < 0:
        raise UsageError("--seconds must not be negative")
    out = Path(args.out)
    if out.exists() and out.stat().st_size > 0 and not args.force:
        raise UsageError(f"{out} exists (use --force to overwrite)")
    redactor = Redactor(os.urandom(32)) if args.redact else None
    return asyncio.run(_record(spec, args, out, redactor))


def _stop_on_signals() -> asyncio.Event:
    """Set on SIGINT/SIGTERM (where the loop supports signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def _announcement(spec: DriverSpec, link: Any, cards: Any, out: Path, seconds: float) -> str:
    return (
        f"recording {link.name} ({spec.name})"
        + (f" and the card reader {cards.name}" if cards is not None else "")
        + f" to {out}"
        + (f" for {seconds:g} s" if seconds else "")
        + " (Ctrl-C to stop)"
    )


async def _pump(link: Any, emit: Callable[[LinkEvent], None]) -> None:
    async for ev in link.events():
        emit(ev)


async def _close(link: Any, cards: Any, tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """Close the links, end the tasks; what each task ended with."""
    await link.close()
    if cards is not None:
        await cards.close()
    for t in tasks:
        t.cancel()
    return await asyncio.gather(*tasks, return_exceptions=True)


def _finish_file(fh: IO[str], writer: CaptureWriter, redactor: Redactor | None) -> None:
    """The redactor's held-back events written, the file flushed to disk."""
    if redactor is not None:
        for ev in redactor.flush(datetime.now(UTC)):
            writer.write(ev)
    fh.flush()
    with contextlib.suppress(OSError):
        os.fsync(fh.fileno())


def _raise_failure(results: list[Any]) -> None:
    for failure in results:
        if isinstance(failure, BaseException) and not isinstance(failure, asyncio.CancelledError):
            raise failure


async def _record(spec: DriverSpec, args: argparse.Namespace, out: Path, redactor: Redactor | None) -> int:
    started_at = datetime.now(UTC)
    writer: CaptureWriter | None = None

    def emit(ev: LinkEvent) -> None:
        assert writer is not None
        for e in redactor.event(ev) if redactor is not None else [ev]:
            writer.write(e)

    link = build_link(spec, args, emit)
    cards = build_card_link(args)
    extra: dict[str, Any] = {"redacted": True} if redactor is not None else {}
    if cards is not None:
        extra["cards"] = cards.name
    header = CaptureHeader(spec.name, link.name, args.note, started_at, extra)
    fh = open_output(out)
    stop = _stop_on_signals()
    began = time.monotonic()
    with fh:
        fh.write(header.to_json() + "\n")
        fh.flush()
        writer = CaptureWriter(fh, started_at)
        _say(_announcement(spec, link, cards, out, args.seconds))
        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(_pump(link, emit))]
        if cards is not None:
            tasks.append(asyncio.create_task(_pump(cards, emit)))
        tasks.append(asyncio.create_task(stop.wait()))
        try:
            await asyncio.wait(set(tasks), timeout=args.seconds or None, return_when=asyncio.FIRST_COMPLETED)
        finally:
            results = await _close(link, cards, tasks)
            _finish_file(fh, writer, redactor)
        _raise_failure(results[:-1])  # the scale's pump, then the card reader's
    counts = ", ".join(f"{n} {k} ({writer.bytes[k]} bytes)" for k, n in sorted(writer.counts.items())) or "no events"
    _say(f"stopped after {time.monotonic() - began:.1f} s: {counts}")
    return 0
