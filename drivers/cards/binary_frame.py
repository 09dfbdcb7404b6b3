"""Binary serial RFID frames, scales.md §C (USB-serial reader listing; 9600 8N1).

Frame: ``STX len type SNR[n] BCC ETX`` with ``len`` = total frame length (10 for a 5-byte SNR),
``type`` 0x01 Mifare Classic / 0x02 EM4100, BCC = XOR of ``len`` .. last SNR byte. Example
``02 0A 02 06 00 8E 6D 5D B0 03`` -> EM card 0009334109. How a 4-byte Mifare UID fills the 5-byte SNR
is not documented (UNKNOWN): the bytes are kept as sent. Sans-I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import ChecksumError, FrameError
from ..framing import BufferedFramer
from .numbers import CardUid

STX = 0x02
ETX = 0x03
#: STX, len, type, BCC, ETX around the SNR
OVERHEAD = 5
MIN_FRAME = OVERHEAD + 1
MAX_FRAME = OVERHEAD + 10


class CardType(IntEnum):
    MIFARE_CLASSIC = 0x01
    EM4100 = 0x02


@dataclass(frozen=True, slots=True)
class BinaryCardRead:
    card_type: CardType | int
    uid: CardUid


class BinaryFrameFramer(BufferedFramer):
    """Bytes -> whole frames, resync on the next STX when the length byte or ETX do not fit; the
    buffer never holds more than ``MAX_FRAME`` bytes."""

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._buf += data
        while self._buf:
            start = self._buf.find(STX)
            if start < 0:
                self._skip(len(self._buf))
                break
            if start:
                self._skip(start)
            if len(self._buf) < 2:
                break
            length = self._buf[1]
            if not MIN_FRAME <= length <= MAX_FRAME:
                self._skip(1)
                continue
            if len(self._buf) < length:
                break
            frame = bytes(self._buf[:length])
            if frame[-1] != ETX or _bcc(frame[1:-2]) != frame[-2]:
                self._skip(1)
                continue
            out.append(frame)
            del self._buf[:length]
        return out


def _bcc(data: bytes) -> int:
    check = 0
    for b in data:
        check ^= b
    return check


def parse(frame: bytes) -> BinaryCardRead:
    """One frame -> card type and SNR bytes. Raises only ``FrameError``."""
    if len(frame) < MIN_FRAME or frame[0] != STX or frame[-1] != ETX:
        raise FrameError(f"not a binary RFID frame: expected STX len type SNR BCC ETX ({len(frame)} bytes)")
    if frame[1] != len(frame):
        raise FrameError(f"binary RFID frame says {frame[1]} bytes, has {len(frame)}")
    if len(frame) > MAX_FRAME:
        raise FrameError(f"binary RFID frame too long ({len(frame)} bytes)")
    computed = _bcc(frame[1:-2])
    if computed != frame[-2]:
        raise ChecksumError(f"{computed:02X}", f"{frame[-2]:02X}")
    kind = frame[2]
    card_type: CardType | int = CardType(kind) if kind in CardType._value2member_map_ else kind
    return BinaryCardRead(card_type, CardUid(frame[3:-2]))


def build(card_type: int, snr: bytes) -> bytes:
    """A frame for tests and simulators."""
    body = bytes([len(snr) + OVERHEAD, card_type]) + snr
    return bytes([STX]) + body + bytes([_bcc(body), ETX])
