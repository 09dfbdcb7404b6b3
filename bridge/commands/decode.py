"""``scale-bridge decode --driver NAME [FILE|-]``: print, one JSON object per line, the weighing body
the bridge would post for each measurement (plus ``driver`` and ``stable``). Rejected frames and
device reports go to stderr. Serial drivers read raw bytes; BLE drivers read one payload per line as
hex, optionally preceded by the service or characteristic UUID (``181b 0226...``, ``2a9c 1e06...``).
A capture file (scale-bridge-capture JSONL) is accepted for any driver. Exit 0, or 65 if any frame was
rejected."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any, BinaryIO

from drivers.capture import FORMAT, read_capture
from drivers.errors import FrameError
from drivers.events import EventKind
from drivers.model import DeviceReport, Reading
from drivers.registry import Decoder, DriverSpec, LinkKind, flush_decoder, get, registry

from ..body import weighing_body
from ..errors import EX_DATAERR, UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("decode", help="decode raw scale output to the weighing bodies the bridge would post")
    p.add_argument("--driver", "-d", required=True, help=f"driver name ({', '.join(sorted(registry()))})")
    p.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    p.set_defaults(func=cmd_decode)


def reading_json(reading: Reading, received_at: datetime) -> dict[str, Any]:
    doc = weighing_body(reading, received_at=received_at)
    doc["driver"] = reading.driver
    doc["stable"] = reading.stable
    if reading.measurement.impedance_ohm is not None:
        doc["impedance_ohm"] = reading.measurement.impedance_ohm
    if reading.device_id:
        doc["device_id"] = reading.device_id
    return doc


class _Printer:
    def __init__(self) -> None:
        self.rejected = 0
        self.printed = 0

    def results(self, results: list[Reading | DeviceReport], at: datetime) -> None:
        for r in results:
            if isinstance(r, DeviceReport):
                print(f"device report {r.code}: {r.message}", file=sys.stderr)
            else:
                print(json.dumps(reading_json(r, at), ensure_ascii=False), flush=False)
                self.printed += 1

    def error(self, exc: FrameError, where: str = "") -> None:
        self.rejected += 1
        print(f"rejected frame{where}: {exc.reason}", file=sys.stderr)


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        spec = get(args.driver)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    with _open(args.file) as fh:
        data = fh.read()
    out = _Printer()
    first = data.lstrip()[:200]
    if first.startswith(b"{") and FORMAT.encode() in first.split(b"\n", 1)[0]:
        _decode_capture(spec, data, out)
    elif spec.link is LinkKind.SERIAL:
        _decode_serial(spec, data, out)
    else:
        _decode_hex_lines(spec, data, out)
    sys.stdout.flush()
    return EX_DATAERR if out.rejected else 0


def _decode_serial(spec: DriverSpec, data: bytes, out: _Printer) -> None:
    framer, decoder = spec.make_framer(), spec.new_decoder()
    now = datetime.now(UTC)
    for frame in framer.feed(data + b"\n"):
        try:
            out.results(decoder.decode(frame, ""), now)
        except FrameError as exc:
            out.error(exc)


def _decode_hex_lines(spec: DriverSpec, data: bytes, out: _Printer) -> None:
    from drivers.bleuuid import parse_hex_line

    decoder = spec.new_decoder()
    now = datetime.now(UTC)
    for n, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            channel, payload = parse_hex_line(line)
            out.results(decoder.decode(payload, channel), now)
        except FrameError as exc:
            out.error(exc, f" (line {n})")
    out.results(flush_decoder(decoder), now)  # end of input: what a multi-packet decoder still holds


def _decode_capture(spec: DriverSpec, data: bytes, out: _Printer) -> None:
    _header, events = read_capture(data.decode("utf-8").splitlines())
    framer = spec.make_framer()
    decoders: dict[str, Decoder] = {}
    for ce in events:
        ev = ce.event
        if ev.kind in (EventKind.CARD, EventKind.TX):
            continue
        frames = framer.feed(ev.payload) if ev.kind is EventKind.RX else [ev.payload]
        dec = decoders.setdefault(ev.address or "", spec.new_decoder())
        for frame in frames:
            try:
                out.results(dec.decode(frame, ev.channel), ev.received_at)
            except FrameError as exc:
                out.error(exc)
    for dec in decoders.values():
        out.results(flush_decoder(dec), datetime.now(UTC))
    if spec.link is LinkKind.SERIAL:
        dec = decoders.setdefault("", spec.new_decoder())
        for frame in framer.feed(b"\n"):
            try:
                out.results(dec.decode(frame, ""), datetime.now(UTC))
            except FrameError as exc:
                out.error(exc)
