"""Eufy Smart Scale P2 (T9148) and P2 Pro (T9149): service 0xFFF0, write 0xFFF1, weight notify
0xFFF2, handshake notify 0xFFF4, and an AES-128-CBC handshake before any weight is sent. See
shared/reference/ble-families.md §5.3(b) and docs/ble.md "Eufy P2 / P2 Pro". Sources (facts only):
bdr99/eufylife-ble-client (MIT), ble-scale-sync ``eufy-p2.ts`` and its issues #98 / #289 / PR #292,
openScale EufyP2Handler. Each fact below is marked VERIFIED (on real frames), INFERENCE or UNKNOWN.

**Weight frame** (FFF2, 16 bytes): ``CF 0E 00 CF <b4 b5> <weight u16 LE> <b8 b9 b10> <b11> <final>
<b13 b14> <check>``. VERIFIED on the real T9149 notifications of ble-scale-sync#289 (2026-08-08):
byte 1 = 0x0E is the length of bytes 2..15, the check (byte 15) is the XOR of bytes 2..14, weight =
bytes 6-7 / 100 kg (e.g. ``cf 0e 00 cf 00 00 72 1a 00 00 00 00 01 00 00 a6`` = 67.70 kg, live), byte
12 = 01 while the weight settles and 00 on the final frames (``... d0 07 ... 00 00 00 18`` = 20.00 kg,
final, after six live frames of the same weight). UNKNOWN: bytes 4-5 (the reference's "impedance / 10";
0 in every real frame we have, and no app value to match) and bytes 8-10 (ble-scale-sync read them as
impedance and got millions of ohm on real hardware, PR #292): both are kept raw in ``fields``
(``b4_5_raw``, ``b8_10_raw``) and no impedance is ever posted. Bytes 11, 13, 14 are kept as
``extra_hex``. Only the frame kind seen on real scales (``00 CF`` at bytes 2-3) is accepted.

**Weighings**: a final frame with a weight is the weighing, once per run of final frames (the scale
repeats it; a live frame starts a new run); live frames are readings with ``stable=False``.

**Handshake** (VERIFIED only indirectly: ble-scale-sync logs "authentication successful" with a real
T9149 in #289, doing what is described here; no byte of a real C0-C3 exchange is in our sources):

- key = MD5 of the MAC as 12 uppercase hex digits without separators (ASCII); IV = sixteen ASCII ``0``;
  AES-128-CBC with PKCS#7 padding (done here: the injected cipher is block-only).
- Segments, all directions: ``<kind> <count> <index from 0> <total> <up to 15 data bytes> <XOR>``;
  ``total`` = the length of the whole base64 text (all segments), the XOR covers every byte before it
  (kind included). The data is the base64 text (ASCII) of the ciphertext.
- C0 (host, FFF1): the encrypted client id, one segment a second (both sources; shorter gaps dropped
  some T9149s per ble-scale-sync). The client id is 15 characters shaped like the start of a random
  UUID (``xxxxxxxx-xxxx-4``), as both sources send it (INFERENCE that any 15 characters would do).
- C1 (scale, FFF4): the scale's id, segmented the same way; its XOR and total length are checked (as
  ble-scale-sync does; bdr99 checks neither).
- C2 (host, FFF1): the encryption of ``<client id>_<scale id>``; one segment a second (INFERENCE:
  ble-scale-sync paces C2 like C0, bdr99 sends it back to back).
- C3 (scale, FFF4): ``C3 01 00 01 <status> <XOR>``; status 0 = authenticated, anything else ends the
  session (ExchangeError naming the status). Its XOR is not checked (neither source does; no real C3).
- Writes are with response (ble-scale-sync, openScale). Subscriptions: FFF4 and FFF2, before C0.
  No answer within ``ANSWER_TIMEOUT_S`` (our choice, INFERENCE) ends the session.

**Adverts**: the P2's manufacturer data (company 0xFF48 per ble-scale-sync) is said to carry the weight
too, but no real P2 advert with a known weight is in our sources: adverts are not decoded (the matcher
goes by name only).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid as uuidlib
from enum import StrEnum
from types import MappingProxyType

from ._vendor_frames import VendorFramer, channel_uuid, check, require, u16le, xor8
from .bleuuid import full_uuid
from .gatt import Action, BlockCipher, ExchangeContext, ExchangeError, Subscribe, Write, offered
from .model import DeviceReport, Measurement, ParseResult, Reading
from .registry import BleMatcher, BleMode, DriverSpec, LinkKind

NAME = "eufy_p2"
SERVICE = full_uuid("fff0")
WRITE = full_uuid("fff1")
WEIGHT = full_uuid("fff2")
AUTH = full_uuid("fff4")
START = 0xCF
LENGTH = 0x0E  # bytes 2..15
KIND = b"\x00\xcf"  # bytes 2-3 of every real weight frame
FRAME_SIZE = 16
FINAL = 0x00
NAMES = ("eufy T9148", "eufy T9149")

IV = b"0" * 16
C0, C1, C2, C3 = 0xC0, 0xC1, 0xC2, 0xC3
SEGMENT_DATA = 15
CLIENT_ID_LENGTH = 15
#: gap between two handshake segments written by the host (s)
WRITE_GAP_S = 1.0
#: how long the scale may take to answer C0 with C1, or C2 with C3 (s)
ANSWER_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- weight frames


def _valid(frame: bytes) -> bool:
    return (
        len(frame) == FRAME_SIZE
        and frame[0] == START
        and frame[1] == LENGTH
        and frame[2:4] == KIND
        and xor8(frame[2:15]) == frame[15]
    )


def make_framer() -> VendorFramer:
    return VendorFramer(starts=bytes([START]), valid=_valid, size=FRAME_SIZE)


def _check_frame(data: bytes) -> None:
    require(len(data) == FRAME_SIZE, f"Eufy P2 frame must be {FRAME_SIZE} bytes, got {len(data)}", data)
    require(data[0] == START, f"Eufy P2 frame must start with 0xcf, got 0x{data[0]:02x}", data)
    require(data[1] == LENGTH, f"Eufy P2 frame length byte must be 0x0e, got 0x{data[1]:02x}", data)
    check(xor8(data[2:15]), data[15], data)
    require(data[2:4] == KIND, f"Eufy P2 frame kind {data[2:4].hex()} UNKNOWN (only 00cf is known)", data)


def _reading(frame: bytes, *, weighing: bool, repeat: bool = False) -> Reading:
    raw = u16le(frame, 6)
    weight_kg = raw / 100
    fields = {
        "weight_raw": str(raw),
        "weight_kg": f"{weight_kg:.2f}",
        "final": "1" if frame[12] == FINAL else "0",
        "b4_5_raw": str(u16le(frame, 4)),  # UNKNOWN (the reference's impedance / 10: unconfirmed)
        "b8_10_raw": str(int.from_bytes(frame[8:11], "little")),  # UNKNOWN (not an impedance, PR #292)
        "extra_hex": (frame[11:12] + frame[13:15]).hex(),
    }
    if repeat:
        fields["repeat"] = "1"
    measurement = Measurement(weight_kg=weight_kg) if weighing else Measurement()
    return Reading(NAME, measurement, weighing, frame.hex(), fields=MappingProxyType(fields))


def _is_handshake(data: bytes, channel: str) -> bool:
    """FFF4 carries the handshake (the exchange's, never a reading); so do C0-C3 bytes in a capture
    replayed without channels."""
    uuid = channel_uuid(channel)
    return uuid == AUTH or (uuid in ("", WRITE) and bool(data) and data[0] in (C0, C1, C2, C3))


def parse(frame: bytes, channel: str = "") -> ParseResult:
    """Stateless view of one notification: a final frame is a weighing (the flag is in the frame)."""
    data = bytes(frame)
    if _is_handshake(data, channel):
        return None
    _check_frame(data)
    return _reading(data, weighing=data[12] == FINAL and u16le(data, 6) > 0)


class EufyP2Decoder:
    """One weighing per run of final frames; every other frame is a live reading."""

    def __init__(self) -> None:
        self._in_final_run = False

    def decode(self, frame: bytes, channel: str = "") -> list[Reading | DeviceReport]:
        data = bytes(frame)
        if _is_handshake(data, channel):
            return []
        _check_frame(data)
        if data[12] != FINAL:
            self._in_final_run = False
            return [_reading(data, weighing=False)]
        if self._in_final_run or u16le(data, 6) == 0:
            return [_reading(data, weighing=False, repeat=self._in_final_run)]
        self._in_final_run = True
        return [_reading(data, weighing=True)]


# --------------------------------------------------------------------------- handshake pieces


def key_for(address: str) -> bytes:
    """MD5 of the MAC as 12 uppercase hex digits, no separators; ValueError for anything else."""
    digits = address.replace(":", "").replace("-", "").upper()
    if len(digits) != 12 or any(c not in "0123456789ABCDEF" for c in digits):
        raise ValueError(f"needs the scale's MAC address (6 hex octets), not {address!r}")
    return hashlib.md5(digits.encode("ascii"), usedforsecurity=False).digest()


def pad(data: bytes) -> bytes:
    n = 16 - len(data) % 16
    return data + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not data or not 1 <= n <= 16 or data[-n:] != bytes([n]) * n:
        raise ValueError("bad PKCS#7 padding")
    return data[:-n]


def segments(kind: int, text: bytes) -> list[bytes]:
    """``text`` (base64, ASCII) cut into ``<kind> <count> <index> <total> <data> <XOR>`` segments."""
    parts = [text[i : i + SEGMENT_DATA] for i in range(0, len(text), SEGMENT_DATA)] or [b""]
    if len(text) > 0xFF or len(parts) > 0xFF:
        raise ValueError(f"handshake text of {len(text)} bytes does not fit the segment header")
    out = []
    for index, part in enumerate(parts):
        body = bytes([kind, len(parts), index, len(text)]) + part
        out.append(body + bytes([xor8(body)]))
    return out


class SegmentAssembler:
    """The scale's segments of one kind (C1), checked (XOR, order, count, total) and joined."""

    def __init__(self, kind: int) -> None:
        self._kind = kind
        self._data = b""
        self._count = 0
        self._next = 0

    def feed(self, segment: bytes) -> bytes | None:
        """The whole text once the last segment is in, else None; ValueError on a bad segment."""
        name = f"C{self._kind - C0}"
        if len(segment) < 5:
            raise ValueError(f"{name} segment of {len(segment)} bytes is too short")
        if (want := xor8(segment[:-1])) != segment[-1]:
            raise ValueError(f"{name} segment check: frame says 0x{segment[-1]:02x}, content gives 0x{want:02x}")
        count, index, total = segment[1], segment[2], segment[3]
        if count == 0 or index != self._next or (self._count and count != self._count):
            raise ValueError(f"{name} segment {index} of {count} out of order (expected {self._next})")
        self._count, self._next = count, index + 1
        self._data += segment[4:-1]
        if index + 1 < count:
            return None
        if len(self._data) != total:
            raise ValueError(f"{name} text is {len(self._data)} bytes, its header says {total}")
        return self._data


def encrypt_text(encrypt: BlockCipher, key: bytes, text: str) -> bytes:
    """``text`` encrypted (PKCS#7, AES-128-CBC) as base64 ASCII."""
    return base64.b64encode(encrypt(key, IV, pad(text.encode("utf-8"))))


def decrypt_text(decrypt: BlockCipher, key: bytes, b64: bytes) -> str:
    """The inverse of :func:`encrypt_text`; ValueError when the text is not one."""
    try:
        cipher = base64.b64decode(b64, validate=True)
    except binascii.Error:
        raise ValueError("text is not base64") from None
    if not cipher or len(cipher) % 16:
        raise ValueError(f"ciphertext of {len(cipher)} bytes is no whole number of AES blocks")
    try:
        return unpad(decrypt(key, IV, cipher)).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("decrypted text is not UTF-8 (wrong key?)") from None


def client_id(random_bytes: bytes) -> str:
    """15 characters shaped like the start of a random UUID, as the sources send."""
    return str(uuidlib.UUID(bytes=random_bytes[:16], version=4))[:CLIENT_ID_LENGTH]


# --------------------------------------------------------------------------- the exchange


class Phase(StrEnum):
    C0 = "sending C0"
    C1 = "waiting for C1"
    C2 = "sending C2"
    C3 = "waiting for C3"
    DONE = "authenticated"


class EufyP2Exchange:
    """Subscribe FFF4 + FFF2, C0 one segment a second, C1 -> C2 one segment a second, C3 status.
    Timing only through ``deadline_s`` / ``on_timeout``; no clock, no randomness of its own."""

    def __init__(self, context: ExchangeContext) -> None:
        self._context = context
        self._phase = Phase.C0
        self._pending: list[bytes] = []
        self._deadline: float | None = None
        self._c1 = SegmentAssembler(C1)
        self._key = b""
        self._client = ""
        self.scale_id: str | None = None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def deadline_s(self) -> float | None:
        return self._deadline

    def start(self, *, now_s: float) -> list[Action]:
        ctx = self._context
        if ctx.aes_cbc_encrypt is None or ctx.aes_cbc_decrypt is None:
            raise ExchangeError("the Eufy P2 handshake needs AES-128-CBC: install the cryptography package")
        if ctx.random_bytes is None:
            raise ExchangeError("the Eufy P2 handshake needs a random source (ExchangeContext.random_bytes)")
        try:
            self._key = key_for(ctx.address)
        except ValueError as exc:
            raise ExchangeError(f"the Eufy P2 handshake {exc}") from None
        self._client = client_id(ctx.random_bytes(16))
        self._pending = segments(C0, encrypt_text(ctx.aes_cbc_encrypt, self._key, self._client))
        actions: list[Action] = [Subscribe(u) for u in offered(ctx, (AUTH, WEIGHT))]
        return actions + self._write_next(now_s)

    def _write_next(self, now_s: float) -> list[Action]:
        segment = self._pending.pop(0)
        self._deadline = now_s + (WRITE_GAP_S if self._pending else ANSWER_TIMEOUT_S)
        if not self._pending:
            self._phase = Phase.C1 if self._phase is Phase.C0 else Phase.C3
        return [Write(WRITE, segment, with_response=True)]

    def on_timeout(self, *, now_s: float) -> list[Action]:
        if self._phase is Phase.DONE or self._deadline is None or now_s < self._deadline:
            return []
        if self._pending:
            return self._write_next(now_s)
        raise ExchangeError(f"no {self._phase.value.split()[-1]} answer from the scale within {ANSWER_TIMEOUT_S:g} s")

    def on_read(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        return []

    def on_notify(self, uuid: str, data: bytes, *, now_s: float) -> list[Action]:
        if uuid.lower() != AUTH or not data or self._phase is Phase.DONE:
            return []
        if data[0] == C1 and self._phase in (Phase.C0, Phase.C1):
            return self._on_c1(data, now_s)
        if data[0] == C3 and self._phase in (Phase.C2, Phase.C3):
            return self._on_c3(data)
        return []  # anything else on FFF4 (or a late duplicate) is not ours to judge

    def _on_c1(self, data: bytes, now_s: float) -> list[Action]:
        try:
            text = self._c1.feed(data)
            if text is None:
                return []
            if self._pending:
                raise ValueError("C1 came before the whole C0 was written")
            assert self._context.aes_cbc_decrypt is not None and self._context.aes_cbc_encrypt is not None
            self.scale_id = decrypt_text(self._context.aes_cbc_decrypt, self._key, text)
            combined = f"{self._client}_{self.scale_id}"
            self._pending = segments(C2, encrypt_text(self._context.aes_cbc_encrypt, self._key, combined))
        except ValueError as exc:
            raise ExchangeError(f"Eufy P2 handshake: {exc}") from None
        self._phase = Phase.C2
        return self._write_next(now_s)

    def _on_c3(self, data: bytes) -> list[Action]:
        if len(data) < 5:
            raise ExchangeError(f"Eufy P2 handshake: C3 of {len(data)} bytes has no status")
        status = data[4]
        if status != 0:
            raise ExchangeError(f"the scale refused the Eufy P2 handshake: C3 status 0x{status:02x}")
        self._phase = Phase.DONE
        self._pending = []
        self._deadline = None
        return []


def make_exchange(context: ExchangeContext) -> EufyP2Exchange:
    return EufyP2Exchange(context)


SPEC = DriverSpec(
    name=NAME,
    summary="Eufy P2 / P2 Pro (T9148/T9149): AES-128-CBC handshake, then weight frames on 0xFFF2",
    link=LinkKind.BLE,
    parse=parse,
    make_framer=make_framer,
    make_decoder=EufyP2Decoder,
    make_exchange=make_exchange,
    models=("Eufy Smart Scale P2 T9148", "Eufy Smart Scale P2 Pro T9149"),
    ble=BleMatcher(mode=BleMode.GATT, name_prefixes=NAMES, characteristics=(AUTH, WEIGHT), requires_connectable=True),
    notes={
        "frames": "CF 0E 00 CF .. .. weight(LE /100) .. .. .. .. final(00) .. .. XOR(2..14); weight only",
        "weighing": "the first final frame of a run (byte 12 = 00)",
        "exchange": "C0 client id -> C1 scale id -> C2 both -> C3 status, AES-128-CBC keyed by MD5(MAC)",
        "needs": "the cryptography package (AES) on the host",
        "matching": "by name only: 0xFFF0 is shared with QN and the other Eufy scales",
    },
)
