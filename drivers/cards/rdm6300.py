"""RDM6300 / EM-18 style serial RFID readers (9600 8N1), scales.md §C.

Frame, 14 bytes: ``0x02`` + 10 ASCII hex digits (version byte + 4 ID bytes) + 2 ASCII hex digits (XOR
of the 5 bytes) + ``0x03``. Example ``02 "010063E9AE" "25" 03`` -> card 0006547886 (em4100 form).
The reader repeats the frame about every 50 ms while the tag is in range: debounce with
``drivers.cards.debounce.Debouncer``. Sans-I/O: ``Rdm6300Framer.feed`` and ``parse`` never block.
"""

from __future__ import annotations

from ..errors import ChecksumError, FrameError
from ..framing import BufferedFramer
from .numbers import CardUid

STX = 0x02
ETX = 0x03
FRAME_BYTES = 14
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Rdm6300Framer(BufferedFramer):
    """Bytes -> whole 14-byte frames. Holds at most one frame's worth of bytes; anything that is not a
    frame is discarded (counted) and the framer resyncs on the next STX."""

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        self._buf += data
        while self._buf:
            start = self._buf.find(STX)
            if start < 0:
                self._discarded += len(self._buf)
                self._buf.clear()
                break
            if start:
                self._skip(start)
            # a frame's body is hex digits only: an early non-hex byte means this STX was not a start
            body_end = min(len(self._buf), FRAME_BYTES - 1)
            bad = next((i for i in range(1, body_end) if self._buf[i] not in _HEX), None)
            if bad is not None:
                self._skip(bad)
                continue
            if len(self._buf) < FRAME_BYTES:
                break
            if self._buf[FRAME_BYTES - 1] != ETX:
                self._skip(1)
                continue
            out.append(bytes(self._buf[:FRAME_BYTES]))
            del self._buf[:FRAME_BYTES]
        return out


def parse(frame: bytes) -> CardUid:
    """One 14-byte frame -> the 5-byte ID (version byte first). Raises only ``FrameError``."""
    if len(frame) != FRAME_BYTES or frame[0] != STX or frame[-1] != ETX:
        raise FrameError(f"not an RDM6300 frame: expected STX + 12 hex digits + ETX ({len(frame)} bytes given)")
    body = frame[1:-1]
    if any(b not in _HEX for b in body):
        raise FrameError("not an RDM6300 frame: the body is not hex digits")
    data = bytes.fromhex(body[:10].decode("ascii"))
    stated = body[10:].decode("ascii").upper()
    computed = 0
    for b in data:
        computed ^= b
    if int(stated, 16) != computed:
        raise ChecksumError(f"{computed:02X}", stated)
    return CardUid(data)


def text(frame: bytes) -> str:
    """The card as the reader sends it: the 10 hex digits, uppercase (checksum and framing removed)."""
    return parse(frame).hex.upper()


def build(uid: bytes) -> bytes:
    """A frame for a 5-byte ID (for tests, the scan command's self-check and simulators)."""
    if len(uid) != 5:
        raise ValueError("an RDM6300 ID is 5 bytes")
    check = 0
    for b in uid:
        check ^= b
    return bytes([STX]) + f"{uid.hex().upper()}{check:02X}".encode("ascii") + bytes([ETX])
