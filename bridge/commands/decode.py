"""``scale-bridge decode [--driver NAME] [FILE|-]``: print, one JSON object per line, the weighing body
the bridge would post for each measurement (plus ``driver``, ``stable`` and ``weighing``). Rejected
frames, device reports, implausible readings and discarded bytes go to stderr. Serial drivers read
raw bytes; BLE drivers read one payload per line as hex, optionally preceded by the service or
characteristic UUID (``181b 0226...``, ``2a9c 1e06...``). A capture file (scale-bridge-capture JSONL)
and a test-vector file (shared/vectors, one ``{"driver", "text"|"hex", ...}`` object per line) are
recognised for any driver; ``--driver`` then defaults to the file's own (a mismatch is warned about).

The input is streamed (memory stays bounded whatever its size). Exit 0; 65 if any frame or reading
was rejected, bytes were discarded or the capture is malformed (with its line number); 66 if the
file is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from drivers.capture import FORMAT, read_capture_bytes
from drivers.errors import CaptureError, FrameError
from drivers.events import EventKind
from drivers.model import DeviceReport, Reading
from drivers.registry import Decoder, DriverSpec, LinkKind, flush_decoder, get, registry

from ..body import weighing_body
from ..errors import EX_DATAERR, EX_NOINPUT, UsageError
from ..plausibility import park_reason
from ..printable import printable

CHUNK = 64 * 1024
#: a capture or vector line longer than this is refused (a 30 MB event is legal; 64 MB is not)
MAX_RECORD_LINE = 64 * 1024 * 1024
#: a hex line (BLE) longer than this is skipped and counted as discarded
MAX_HEX_LINE = 1024 * 1024


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("decode", help="decode raw scale output to the weighing bodies the bridge would post")
    p.add_argument(
        "--driver",
        "-d",
        help=f"driver name ({', '.join(sorted(registry()))}); default: the capture's or vector file's own",
    )
    p.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    p.set_defaults(func=cmd_decode)


def reading_json(reading: Reading, received_at: datetime) -> dict[str, Any]:
    doc = weighing_body(reading, received_at=received_at)
    doc["driver"] = reading.driver
    doc["stable"] = reading.stable
    doc["weighing"] = reading.is_weighing
    if reading.measurement.impedance_ohm is not None:
        doc["impedance_ohm"] = reading.measurement.impedance_ohm
    if reading.device_id:
        doc["device_id"] = reading.device_id
    return doc


def _err(text: str) -> None:
    print(text, file=sys.stderr)


class _Printer:
    def __init__(self) -> None:
        self.rejected = 0
        self.printed = 0
        self.weighings = 0
        self.discarded_bytes = 0
        self.tag: dict[str, Any] = {}

    def results(self, results: list[Reading | DeviceReport], at: datetime) -> None:
        for r in results:
            if isinstance(r, DeviceReport):
                _err(f"device report {printable(r.code)}: {printable(r.message)}")
                continue
            if r.is_weighing:
                why = park_reason(r.measurement)
                if why is not None:  # the bridge parks it and never posts it: no body is printed
                    self.rejected += 1
                    _err(f"rejected reading: {why}")
                    continue
                self.weighings += 1
            doc = reading_json(r, at)
            if not r.is_weighing:
                doc["note"] = "not a weighing (unstable, or no positive weight): the bridge would not post it"
            print(json.dumps({**self.tag, **doc}, ensure_ascii=False), flush=False)
            self.printed += 1

    def error(self, exc: FrameError, where: str = "") -> None:
        self.rejected += 1
        _err(f"rejected frame{where}: {printable(exc.reason, max_chars=300)}")


def _open(path: str) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


def _lines(fh: BinaryIO, first: bytes, limit: int) -> Iterator[bytes | None]:
    """Lines of ``first`` + the rest of ``fh``, read in chunks; a line over ``limit`` bytes is given
    as ``None`` (its bytes are skipped up to the next newline, never held)."""
    buf = bytearray(first)
    skipping = False
    while True:
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            if skipping:
                skipping = False
                continue
            yield line if len(line) <= limit else None
        if len(buf) > limit:
            if not skipping:
                yield None
            skipping = True
            buf.clear()
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        buf += chunk
    if buf and not skipping:
        yield bytes(buf) if len(buf) <= limit else None


def _kind(first: bytes) -> str:
    head = first.lstrip()[:4096].split(b"\n", 1)[0]
    if not head.startswith(b"{"):
        return "raw"
    if FORMAT.encode() in head:
        return "capture"
    try:
        doc = json.loads(head)
    except (ValueError, RecursionError):
        return "raw"
    if isinstance(doc, dict) and "driver" in doc and ("text" in doc or "hex" in doc):
        return "vectors"
    return "raw"


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        fh = _open(args.file)
    except FileNotFoundError:
        _err(f"scale-bridge: {args.file}: no such file")
        return EX_NOINPUT
    except OSError as exc:
        _err(f"scale-bridge: {args.file}: {exc.strerror}")
        return EX_NOINPUT
    out = _Printer()
    with fh:
        first = fh.read(CHUNK)
        kind = _kind(first)
        try:
            if kind == "capture":
                _decode_capture(args.driver, fh, first, out)
            elif kind == "vectors":
                _decode_vectors(args.driver, fh, first, out)
            else:
                spec = _spec(args.driver)
                if spec.link is LinkKind.SERIAL:
                    _decode_serial(spec, fh, first, out)
                else:
                    _decode_hex_lines(spec, fh, first, out)
        except CaptureError as exc:
            sys.stdout.flush()
            _err(f"scale-bridge: {args.file}: {printable(exc, max_chars=300)}")
            _summary(out)
            return EX_DATAERR
    sys.stdout.flush()
    _summary(out)
    return EX_DATAERR if out.rejected or out.discarded_bytes else 0


def _summary(out: _Printer) -> None:
    if out.discarded_bytes:
        _err(f"discarded {out.discarded_bytes} bytes that were not frames (over-long or unterminated)")
    if out.weighings == 0:
        _err("0 weighings")


def _spec(name: str | None) -> DriverSpec:
    if not name:
        raise UsageError("--driver is required for raw input (only captures and vector files name their driver)")
    try:
        return get(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def _from_file(given: str | None, named: str, what: str) -> DriverSpec:
    if given and given != named:
        _err(f"warning: the {what} says driver {printable(named)!r}; decoding with --driver {given!r}")
    return _spec(given or named)


def _decode_serial(spec: DriverSpec, fh: BinaryIO, first: bytes, out: _Printer) -> None:
    framer, decoder = spec.make_framer(), spec.new_decoder()
    now = datetime.now(UTC)
    chunk = first
    while chunk:
        for frame in framer.feed(chunk):
            _decode_one(decoder, frame, "", now, out)
        chunk = fh.read(CHUNK)
    for frame in framer.feed(b"\n"):
        _decode_one(decoder, frame, "", now, out)
    out.discarded_bytes += framer.discarded_bytes


def _decode_one(
    decoder: Decoder, frame: bytes, channel: str, at: datetime, out: _Printer, *, where: str = ""
) -> None:
    try:
        out.results(decoder.decode(frame, channel), at)
    except FrameError as exc:
        out.error(exc, where)


def _decode_hex_lines(spec: DriverSpec, fh: BinaryIO, first: bytes, out: _Printer) -> None:
    from drivers.bleuuid import parse_hex_line

    decoder = spec.new_decoder()
    now = datetime.now(UTC)
    for n, raw in enumerate(_lines(fh, first, MAX_HEX_LINE), start=1):
        if raw is None:
            out.rejected += 1
            _err(f"rejected frame (line {n}): longer than {MAX_HEX_LINE} bytes")
            continue
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        try:
            channel, payload = parse_hex_line(line)
        except FrameError as exc:
            out.error(exc, f" (line {n})")
            continue
        _decode_one(decoder, payload, channel, now, out, where=f" (line {n})")
    out.results(flush_decoder(decoder), now)  # end of input: what a multi-packet decoder still holds


def _record_lines(fh: BinaryIO, first: bytes) -> Iterator[bytes]:
    for n, line in enumerate(_lines(fh, first, MAX_RECORD_LINE), start=1):
        if line is None:
            raise CaptureError(f"line longer than {MAX_RECORD_LINE} bytes", n)
        yield line


def _decode_capture(driver: str | None, fh: BinaryIO, first: bytes, out: _Printer) -> None:
    header, events = read_capture_bytes(_record_lines(fh, first))
    spec = _from_file(driver, header.driver, "capture header")
    framer = spec.make_framer()
    decoders: dict[str, Decoder] = {}
    for ce in events:
        ev = ce.event
        if ev.kind in (EventKind.CARD, EventKind.TX):
            continue
        if ev.kind is EventKind.SESSION_END:  # a GATT session ended: its decoder releases what it holds
            ended = decoders.pop(ev.address or "", None)
            if ended is not None:
                out.results(flush_decoder(ended), ev.received_at)
            continue
        frames = framer.feed(ev.payload) if ev.kind is EventKind.RX else [ev.payload]
        dec = decoders.setdefault(ev.address or "", spec.new_decoder())
        for frame in frames:
            _decode_one(dec, frame, ev.channel, ev.received_at, out)
    for dec in decoders.values():
        out.results(flush_decoder(dec), datetime.now(UTC))
    if spec.link is LinkKind.SERIAL:
        dec = decoders.setdefault("", spec.new_decoder())
        for frame in framer.feed(b"\n"):
            _decode_one(dec, frame, "", datetime.now(UTC), out)
    out.discarded_bytes += framer.discarded_bytes


def _decode_vectors(driver: str | None, fh: BinaryIO, first: bytes, out: _Printer) -> None:
    """shared/vectors: each line one vector, decoded on its own (fresh framer and decoder)."""
    _err("input is a test-vector file: each vector is decoded on its own; output lines carry its name")
    now = datetime.now(UTC)
    warned: set[str] = set()
    for n, raw in enumerate(_record_lines(fh, first), start=1):
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        vec = _vector(text, n)
        named = vec["driver"]
        if driver and driver != named and named not in warned:
            warned.add(named)
            _err(f"warning: line {n}: the vector says driver {printable(named)!r}; decoding with --driver {driver!r}")
        spec = _spec(driver or named)
        out.tag = {"vector": printable(str(vec.get("name", f"line {n}")), max_chars=100)}
        _decode_vector(vec, spec, n, now, out)
    out.tag = {}


def _vector(text: str, n: int) -> dict[str, Any]:
    """Line ``n`` of a vector file as a vector (a JSON object with a string ``driver``)."""
    try:
        vec = json.loads(text)
    except (ValueError, RecursionError):
        raise CaptureError("vector is not JSON", n) from None
    if not isinstance(vec, dict) or not isinstance(vec.get("driver"), str):
        raise CaptureError('vector needs a string "driver"', n)
    return vec


def _decode_vector(vec: dict[str, Any], spec: DriverSpec, n: int, now: datetime, out: _Printer) -> None:
    """One vector through a fresh decoder: its ``text`` (serial drivers) or its ``hex`` payload."""
    dec = spec.new_decoder()
    where = f" (line {n})"
    if isinstance(vec.get("text"), str) and spec.link is LinkKind.SERIAL:
        framer = spec.make_framer()
        for frame in framer.feed(vec["text"].encode("latin-1", "replace") + b"\n"):
            _decode_one(dec, frame, "", now, out, where=where)
    elif isinstance(vec.get("hex"), str):
        channel = vec.get("characteristic") or vec.get("service_uuid") or ""
        try:
            payload = bytes.fromhex(vec["hex"])
        except ValueError:
            out.error(FrameError('"hex" is not hexadecimal'), where)
            return
        _decode_one(dec, payload, str(channel).lower(), now, out, where=where)
        out.results(flush_decoder(dec), now)
    else:
        out.error(FrameError(f"no input for a {spec.link.value} driver in this vector"), where)
