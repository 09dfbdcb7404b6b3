"""Shared pieces of the consumer BLE vendor drivers (not a driver: no SPEC, skipped by the registry).

Most vendor scales notify self-delimiting frames: a start byte, a length (at a fixed index, or a fixed
size) and a one-byte check. ``VendorFramer`` cuts such frames out of a byte stream (a capture joined
into one string, notifications coalesced by a stack, a replay fed byte by byte): one frame per item,
bounded buffer, resync on the next start byte after garbage or a frame whose check fails. A BLE link
hands each notification to the decoder whole; the framer is what ``decode`` and replays of raw byte
streams use, and the decoders accept exactly the frames the framer cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

from .bleuuid import full_uuid
from .errors import ChecksumError, FrameError
from .framing import BufferedFramer


def xor8(data: bytes) -> int:
    return reduce(lambda acc, b: acc ^ b, data, 0)


def sum8(data: bytes) -> int:
    return sum(data) & 0xFF


class VendorFramer(BufferedFramer):
    """Frames ``start ... check``: the length is ``data[length_index]`` (the whole frame's size) or a
    fixed ``size``; ``valid(frame)`` says whether the frame's check byte is right."""

    def __init__(
        self,
        *,
        starts: bytes,
        valid: Callable[[bytes], bool],
        length_index: int | None = None,
        size: int | None = None,
        min_size: int = 3,
        max_size: int = 64,
    ) -> None:
        if (length_index is None) == (size is None):
            raise ValueError("give exactly one of length_index and size")
        super().__init__()
        self._starts = frozenset(starts)
        self._valid = valid
        self._length_index = length_index
        self._size = size
        self._min = min_size
        self._max = max_size

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while self._buf:
            if self._buf[0] not in self._starts:
                self._skip_to_start()
                continue
            if self._size is not None:
                need = self._size
            else:
                assert self._length_index is not None
                if len(self._buf) <= self._length_index:
                    break
                need = self._buf[self._length_index]
                if not self._min <= need <= self._max:
                    self._skip(1)
                    continue
            if len(self._buf) < need:
                break
            frame = bytes(self._buf[:need])
            if self._valid(frame):
                del self._buf[:need]
                out.append(frame)
            else:
                self._skip(1)  # not a frame after all: look for the next start byte
        return out

    def _skip_to_start(self) -> None:
        for i, b in enumerate(self._buf):
            if b in self._starts:
                self._skip(i)
                return
        self._skip(len(self._buf))


def channel_uuid(channel: str) -> str:
    """A channel as the full lowercase UUID when it is one (``ae02`` -> ``0000ae02-...``), else as given."""
    try:
        return full_uuid(channel) if channel else ""
    except ValueError:
        return channel


def require(condition: bool, reason: str, frame: bytes) -> None:
    if not condition:
        raise FrameError(reason, frame)


def check(expected: int, actual: int, frame: bytes) -> None:
    if expected != actual:
        raise ChecksumError(f"0x{expected:02x}", f"0x{actual:02x}", frame)


def u16be(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "big")


def u16le(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def u32be(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "big")


def u32le(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")
