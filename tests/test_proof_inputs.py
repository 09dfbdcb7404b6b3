"""Proof (issue 14): every driver, random and structured inputs through ``decode``'s parse path and
through the daemon's intake path: no exception other than a clean rejection, no NaN/inf in a body,
bounded memory.

- decode path: the driver's framer (serial: fed in random chunk sizes, one stream) or
  ``parse_hex_line`` (BLE hex lines), then decode's own ``_decode_one`` with its ``_Printer`` (output to
  a null sink) - so plausibility, ``reading_json`` and the printing run too; ``flush_decoder`` at the end.
- intake path: ``bridge.intake.Intake.feed`` (framer, decoder per address, dedupe key, pairing, body)
  with real ``LinkEvent``s of the driver's link kind (RX / ADV / NOTIFY / HTTP), 10 % CARD events,
  addresses from a small pool and now and then a new one, ``tick`` every 64 events; every
  ``Capture.body`` must serialise with ``allow_nan=False``.

Inputs (seeded, reproducible): 30 % random bytes, 35 % mutated real vectors (tests/vectors,
shared/vectors: flips, inserts, deletes, splices, truncations; Tanita re-checksummed half the time so
the values get parsed), 25 % structured extremes (numbers in text frames replaced by 1e308, nan, -0,
99999999999, ...; binary frames with fields forced to 00/FF/7F/80), 10 % pathological (NUL floods,
emoji, ``{`` x 5000, CR/LF floods, 100 kB without a terminator).

Default profile: ``DEFAULT_N`` inputs per driver and path, in-process (seconds). The long profile
(``-m slow``) runs ``SLOW_N`` = 1,000,000 per driver and path, each in its own subprocess
(``python -m tests.test_proof_inputs DRIVER PATH N``) so its max RSS is its own; figures in
docs/reliability.md. Memory: the growth of RSS from 10 % to 100 % of the inputs must stay under
``MAX_GROWTH_MB`` (a per-input leak of 50 bytes would be 45 MB at 1M)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bridge.commands.decode import _decode_one, _Printer  # noqa: E402 - decode's own parse path
from bridge.intake import Capture, Intake  # noqa: E402
from bridge.pairing import Pairing  # noqa: E402
from drivers.bleuuid import parse_hex_line  # noqa: E402
from drivers.errors import FrameError  # noqa: E402
from drivers.events import EventKind, LinkEvent  # noqa: E402
from drivers.registry import BleMode, DriverSpec, LinkKind, flush_decoder, get, registry  # noqa: E402
from drivers.tanita import checksum as tanita_checksum  # noqa: E402

DEFAULT_N = 3_000
SLOW_N = 1_000_000
MAX_GROWTH_MB = 24.0
DRIVERS = sorted(registry())
#: a fixed base time: nothing here depends on today's date
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)

EXTREME_NUMBERS = [
    "1e308", "-1e308", "nan", "NaN", "inf", "-inf", "-0", "0", "0.0", "0.0004", "99999999999", "-2000",
    "1" * 40, "1e-9", "1_000", "0x10", "\u0663\u0664", "+-1", "1.2.3", "", " ", "9" * 400,
]
PATHOLOGICAL = [
    b"\x00" * 5000, "\U0001f600\u202e".encode() * 200, b"\xff\xfe" * 500, b"{" * 5000, b"\r\n" * 3000,
    b"A" * 100_000, b"\xc0\xaf\xed\xa0\x80" * 100, b"[" * 5000 + b"]" * 5000, b"\r" * 5000, b"\n",
]
NUMBER = re.compile(rb"[-+]?\d+(?:\.\d+)?")


# ---- seeds: the drivers' real vectors ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    payload: bytes
    channel: str


def _vector_files(driver: str) -> Iterator[Path]:
    yield from sorted((ROOT / "tests" / "vectors" / driver).glob("*.jsonl"))
    shared = ROOT.parent / "shared" / "vectors" / f"{driver}.jsonl"
    if shared.is_file():
        yield shared


def _seed_of(doc: dict[str, Any]) -> Seed | None:
    channel = str(doc.get("characteristic") or doc.get("service_uuid") or doc.get("channel") or "").lower()
    if isinstance(doc.get("hex"), str):
        try:
            return Seed(bytes.fromhex(doc["hex"]), channel)
        except ValueError:
            return None
    if isinstance(doc.get("text"), str):
        return Seed(doc["text"].encode("latin-1", "replace"), channel)
    return None


def seeds(driver: str) -> list[Seed]:
    out: list[Seed] = []
    for path in _vector_files(driver):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            doc = json.loads(line)
            if doc.get("driver", driver) != driver:
                continue
            items = doc.get("frames") if isinstance(doc.get("frames"), list) else [doc]
            for item in items:
                seed = _seed_of(item if isinstance(item, dict) else {})
                if seed is not None:
                    out.append(seed)
    return out


def channels(spec: DriverSpec, pool: list[Seed]) -> list[str]:
    known = {s.channel for s in pool if s.channel}
    if spec.ble is not None:
        known |= set(spec.ble.service_uuids)
        known |= {f"manufacturer:{m}" for m in getattr(spec.ble, "manufacturer_ids", ())}
    return [*sorted(known), "", "ffff", "2a9c", "2a9d", "181b", "0000fff4-0000-1000-8000-00805f9b34fb", "zz"]


# ---- inputs ----------------------------------------------------------------------------------------


class Inputs:
    """The input generator for one driver (seeded; ``next()`` gives ``(payload, channel)``)."""

    def __init__(self, spec: DriverSpec, seed: int) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.pool = seeds(spec.name) or [Seed(b"0", "")]
        self.channels = channels(spec, self.pool)
        self.text = spec.link is not LinkKind.BLE

    def _channel(self, seed: Seed) -> str:
        rng = self.rng
        return seed.channel if rng.random() < 0.8 else rng.choice(self.channels)

    def _mutate(self, data: bytes) -> bytes:
        rng = self.rng
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            pos = rng.randrange(len(b) + 1)
            if op == 0 and b:
                b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                b[pos:pos] = rng.randbytes(rng.randint(1, 8))
            elif op == 2 and b:
                del b[pos : pos + rng.randint(1, 8)]
            elif op == 3:
                other = rng.choice(self.pool).payload
                cut = rng.randrange(len(other) + 1)
                b = b[:pos] + bytearray(other[cut:])
            elif op == 4:
                b = b[:pos]
            else:
                b[pos:pos] = b[max(0, pos - 16) : pos]
        return bytes(b)

    def _extreme(self, data: bytes) -> bytes:
        rng = self.rng
        if self.text:
            nums = list(NUMBER.finditer(data))
            if not nums:
                return data
            out = data
            for m in sorted(rng.sample(nums, min(len(nums), rng.randint(1, 3))), key=lambda m: -m.start()):
                out = out[: m.start()] + rng.choice(EXTREME_NUMBERS).encode() + out[m.end() :]
            return out
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if not b:
                break
            pos = rng.randrange(len(b))
            width = rng.choice((1, 2, 4))
            fill = rng.choice((0x00, 0xFF, 0x7F, 0x80))
            b[pos : pos + width] = bytes([fill]) * len(b[pos : pos + width])
        return bytes(b)

    def _tanita_resum(self, data: bytes) -> bytes:
        """A mutated Tanita record with a valid checksum again, so its values are parsed, not refused."""
        i = data.rfind(b"CS,")
        if i < 0:
            return data
        body = data[:i]
        return body + b"CS," + tanita_checksum(body).encode() + b"\r\n"

    def next(self) -> tuple[bytes, str]:
        rng = self.rng
        roll = rng.random()
        seed = rng.choice(self.pool)
        if roll < 0.30:
            return rng.randbytes(rng.randint(0, 120)), rng.choice(self.channels)
        if roll < 0.65:
            data = self._mutate(seed.payload)
        elif roll < 0.90:
            data = self._extreme(seed.payload)
        else:
            return rng.choice(PATHOLOGICAL), self._channel(seed)
        if self.spec.name == "tanita" and rng.random() < 0.5:
            data = self._tanita_resum(data)
        return data, self._channel(seed)


# ---- the two paths -----------------------------------------------------------------------------------


class _Null(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


@dataclass
class Result:
    driver: str
    path: str
    inputs: int = 0
    frames: int = 0
    rejected: int = 0
    weighings: int = 0
    other: int = 0
    examples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    rss_at_10pct_mb: float = 0.0
    rss_end_mb: float = 0.0
    max_rss_mb: float = 0.0

    def failed(self, what: str, data: bytes, channel: str) -> None:
        self.other += 1
        if len(self.examples) < 5:
            tb = traceback.format_exc(limit=-3)
            self.examples.append(f"{what} channel={channel!r} input={data[:200].hex()}\n{tb}")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _chunks(rng: random.Random, data: bytes) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        n = rng.choice((1, 2, 7, 16, 64, 4096))
        yield data[i : i + n]
        i += n


def _hex_line(rng: random.Random, data: bytes, channel: str, out: _Printer) -> tuple[str, bytes] | None:
    """One input as decode reads a BLE hex line (sometimes without its channel, sometimes not hex at
    all): its channel and payload, or None when the line is rejected before decoding."""
    line = f"{channel} {data.hex()}" if channel and rng.random() < 0.9 else data.hex()
    if rng.random() < 0.05:
        line = data.decode("utf-8", "replace")  # not hex at all
    try:
        return parse_hex_line(line)
    except FrameError:
        out.rejected += 1
        return None


def _decode_stream(
    framer: Any, pieces: Iterator[bytes], decoder: Any, at: datetime, *, out: _Printer, res: Result
) -> None:
    """Serial: the pieces through the framer, each frame decoded as decode decodes a file's."""
    for piece in pieces:
        for frame in framer.feed(piece):
            res.frames += 1
            _decode_one(decoder, frame, "", at, out)


def run_decode(driver: str, n: int, seed: int = 14) -> Result:
    spec = get(driver)
    gen = Inputs(spec, seed)
    rng = random.Random(seed + 1)
    res = Result(driver, "decode")
    out = _Printer()
    framer = spec.make_framer() if spec.link is LinkKind.SERIAL else None
    decoder = spec.new_decoder()
    at = T0
    start = time.perf_counter()
    with contextlib.redirect_stdout(_Null()), contextlib.redirect_stderr(_Null()):
        for i in range(n):
            if i == n // 10:
                res.rss_at_10pct_mb = _rss_mb()
            data, channel = gen.next()
            res.inputs += 1
            try:
                if framer is not None:  # serial: one stream, as decode reads a file
                    _decode_stream(framer, _chunks(rng, data), decoder, at, out=out, res=res)
                elif spec.link is LinkKind.BLE:  # one hex line, as decode reads them
                    parsed = _hex_line(rng, data, channel, out)
                    if parsed is None:
                        continue
                    res.frames += 1
                    _decode_one(decoder, parsed[1], parsed[0], at, out)
                else:  # cloud: one answer envelope per event, as decode reads a capture
                    res.frames += 1
                    _decode_one(decoder, data, channel, at, out)
                if i % 4096 == 4095:
                    out.results(flush_decoder(decoder), at)
            except Exception:  # noqa: BLE001 - what the proof counts
                res.failed("decode", data, channel)
        try:
            out.results(flush_decoder(decoder), at)
            if framer is not None:
                for frame in framer.feed(b"\n"):
                    _decode_one(decoder, frame, "", at, out)
        except Exception:  # noqa: BLE001
            res.failed("flush", b"", "")
    res.rejected = out.rejected
    res.weighings = out.weighings
    res.elapsed_s = time.perf_counter() - start
    res.rss_end_mb = _rss_mb()
    res.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def _event_kind(spec: DriverSpec) -> EventKind:
    if spec.link is LinkKind.SERIAL:
        return EventKind.RX
    if spec.link is LinkKind.CLOUD:
        return EventKind.HTTP
    assert spec.ble is not None
    return EventKind.ADV if spec.ble.mode is BleMode.BROADCAST else EventKind.NOTIFY


def run_intake(driver: str, n: int, seed: int = 14) -> Result:
    spec = get(driver)
    gen = Inputs(spec, seed)
    rng = random.Random(seed + 2)
    res = Result(driver, "intake")
    intake = Intake(spec, Pairing(60.0), scale="proof")
    kind = _event_kind(spec)
    addresses = [f"C4:DD:57:00:00:{i:02X}" for i in range(8)]
    at = T0
    start = time.perf_counter()
    for i in range(n):
        if i == n // 10:
            res.rss_at_10pct_mb = _rss_mb()
        at += timedelta(seconds=rng.random() * 5)
        data, channel = gen.next()
        res.inputs += 1
        if rng.random() < 0.10:
            text = rng.choice((b"0003220338716", b"04A1B2C3D4E5F607", rng.randbytes(rng.randint(0, 40)), b" \r\n"))
            events = [LinkEvent(EventKind.CARD, text, at, scale="proof")]
        elif kind is EventKind.RX:
            events = [LinkEvent(EventKind.RX, piece, at, scale="proof") for piece in _chunks(rng, data)]
        else:
            address = rng.choice(addresses) if rng.random() < 0.95 else f"{rng.getrandbits(48):012X}"
            events = [LinkEvent(kind, data, at, channel=channel, address=address, scale="proof")]
        try:
            for ev in events:
                for outcome in intake.feed(ev):
                    if isinstance(outcome, Capture):
                        res.weighings += 1
                        json.dumps(outcome.body, allow_nan=False)
            if i % 64 == 63:
                intake.tick(at)
        except Exception:  # noqa: BLE001 - what the proof counts
            res.failed("intake", data, channel)
    try:
        intake.flush(at)
        intake.tick(at + intake.pairing.horizon)
    except Exception:  # noqa: BLE001
        res.failed("flush", b"", "")
    res.frames = intake.frames
    res.rejected = intake.rejected
    res.elapsed_s = time.perf_counter() - start
    res.rss_end_mb = _rss_mb()
    res.max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


RUNNERS: dict[str, Callable[[str, int], Result]] = {"decode": run_decode, "intake": run_intake}


def _check(res: Result, *, memory: bool) -> None:
    assert res.other == 0, f"{res.driver}/{res.path}: {res.other} exceptions beyond a clean rejection:\n" + "\n".join(
        res.examples
    )
    assert res.inputs > 0 and res.frames > 0
    if memory:
        growth = res.rss_end_mb - res.rss_at_10pct_mb
        assert growth < MAX_GROWTH_MB, f"{res.driver}/{res.path}: RSS grew {growth:.1f} MB from 10 % to 100 %"


# ---- the tests ---------------------------------------------------------------------------------------


def test_every_registered_driver_has_seeds() -> None:
    assert set(DRIVERS) == set(registry()) and len(DRIVERS) >= 13
    for driver in DRIVERS:
        assert seeds(driver), f"{driver}: no vectors to mutate"


@pytest.mark.parametrize("path", sorted(RUNNERS))
@pytest.mark.parametrize("driver", DRIVERS)
def test_inputs_default_profile(driver: str, path: str) -> None:
    _check(RUNNERS[path](driver, DEFAULT_N), memory=False)


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
def test_inputs_long_profile(tmp_path: Path) -> None:
    """1,000,000 inputs per driver and path, one subprocess each (sequential: the machine is shared);
    the figures are printed as a Markdown table for docs/reliability.md."""
    import subprocess

    rows: list[dict[str, Any]] = []
    for driver in DRIVERS:
        for path in sorted(RUNNERS):
            proc = subprocess.run(
                [sys.executable, "-m", "tests.test_proof_inputs", driver, path, str(SLOW_N)],
                cwd=ROOT, capture_output=True, text=True, timeout=3 * 3600, check=False,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            rows.append(json.loads(proc.stdout.splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| driver | path | inputs | frames | rejected | weighings | other exceptions | inputs/s | max RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['driver']} | {r['path']} | {r['inputs']:,} | {r['frames']:,} | {r['rejected']:,} | "
            f"{r['weighings']:,} | {r['other']} | {r['inputs'] / r['elapsed_s']:,.0f} | {r['max_rss_mb']:.1f} |"
        )
    for r in rows:
        _check(Result(**r), memory=True)


if __name__ == "__main__":  # python -m tests.test_proof_inputs DRIVER PATH N
    name, which, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(RUNNERS[which](name, count).as_dict()))


# ---- what the proof found (each first failed here) -----------------------------------------------------


def _inbody_envelope(answer: str) -> bytes:
    doc = {
        "format": "scale-bridge-lookinbody", "kind": "test", "account": "gym",
        "answers": {"/inbody/GetInBodyDataByID": answer}, "test": {"user_id": "1", "datetimes": "20261122103000"},
    }
    return json.dumps(doc).encode("utf-8")


def test_found_an_inbody_envelope_with_non_ascii_bytes_is_a_rejected_frame() -> None:
    """UnicodeDecodeError from ``frame.decode("ascii")``: the link writes ASCII envelopes only."""
    seed = next(s for s in seeds("inbody") if b'"kind":"test"' in s.payload or b'"kind": "test"' in s.payload)
    frame = seed.payload.replace(b'"account":"', '"account":"\u0663'.encode())
    assert not frame.isascii()
    with pytest.raises(FrameError):
        get("inbody").new_decoder().decode(frame, "")


def test_found_an_inbody_integer_too_large_for_a_float_is_not_a_number() -> None:
    """OverflowError from ``float(10**400)``: a JSON integer may have hundreds of digits."""
    seed = next(s for s in seeds("inbody") if b"Weight" in s.payload or b"WT" in s.payload)
    frame = re.sub(rb'(\\"(?:Weight|WT)\\": )[0-9.]+', lambda m: m.group(1) + b"9" * 400, seed.payload, count=1)
    assert b"9" * 400 in frame
    try:
        results = get("inbody").new_decoder().decode(frame, "")
    except FrameError:
        return  # a clean rejection is fine
    assert all(getattr(r, "measurement", None) is None or r.measurement.weight_kg != float("inf") for r in results)


@pytest.mark.parametrize("height", ["1e308", "1e-320"])
def test_found_an_inbody_absurd_height_beside_a_bmi_does_not_overflow(height: str) -> None:
    """OverflowError from ``(h / 100) ** 2`` in the BMI unit check (and a height that squares to 0)."""
    answer = '{"WT": 70.5, "HT": ' + height + ', "BMI": 24.6, "PBF": 20.0}'
    seed = next(s for s in seeds("inbody") if b"WT" in s.payload)
    doc = json.loads(seed.payload)
    doc["answers"] = {next(iter(doc["answers"])): answer}
    frame = json.dumps(doc).encode("ascii")
    with contextlib.suppress(FrameError):  # a clean rejection is fine
        get("inbody").new_decoder().decode(frame, "")


def test_found_intake_memory_is_bounded_whatever_the_number_of_ble_addresses() -> None:
    """Found by the long profile: Intake kept one decoder per BLE address for ever; a neighbour
    cycling addresses grew the daemon without bound (fixed: a bounded decoder cache, the evicted
    decoder flushed through pairing)."""
    import tracemalloc

    spec = get("ble_standard")
    payload = next(s for s in seeds("ble_standard") if s.channel.startswith("2a9d"))
    intake = Intake(spec, Pairing(60.0), scale="proof")

    def feed(first: int, count: int) -> None:
        for n in range(first, first + count):
            at = T0 + timedelta(seconds=n)
            intake.feed(LinkEvent(EventKind.NOTIFY, payload.payload, at, channel=payload.channel,
                                  address=f"{n:012X}", scale="proof"))
            if n % 64 == 0:
                intake.tick(at)

    tracemalloc.start()
    try:
        feed(0, 1000)
        before = tracemalloc.get_traced_memory()[0]
        feed(1000, 20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 2 * 1024 * 1024, f"20,000 more addresses kept {grown / 1e6:.1f} MB"
