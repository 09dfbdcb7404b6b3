"""Sans-I/O framers: ``feed(bytes) -> list[bytes]``, bounded buffers, resync on garbage."""

from __future__ import annotations

from typing import Protocol


class Framer(Protocol):
    def feed(self, data: bytes) -> list[bytes]: ...

    @property
    def discarded_bytes(self) -> int: ...


class BufferedFramer:
    """Bookkeeping shared by the byte-stream framers: the buffer, and what was thrown away."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarded = 0

    @property
    def discarded_bytes(self) -> int:
        return self._discarded

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def _skip(self, n: int) -> None:
        """Discard the first ``n`` buffered bytes (garbage, or a start byte that was not a start)."""
        self._discarded += n
        del self._buf[:n]


class LineFramer(BufferedFramer):
    """Split a byte stream into lines.

    A line ends at LF (CR LF or bare CR are accepted too when ``cr_terminates``). The terminator is not
    part of the frame; empty lines are skipped. If no terminator arrives within ``max_line_bytes`` the
    buffered bytes are discarded (counted in ``discarded_bytes``); when ``start`` is given the framer
    then resyncs on the next occurrence of that start byte, so memory stays bounded under garbage.
    """

    def __init__(self, *, max_line_bytes: int = 4096, start: bytes | None = None, cr_terminates: bool = False):
        if max_line_bytes < 8:
            raise ValueError("max_line_bytes must be at least 8")
        super().__init__()
        self._max = max_line_bytes
        self._start = start
        self._cr = cr_terminates

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr:
            data = data.replace(b"\r", b"\n")
        out: list[bytes] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._buf[:nl]).rstrip(b"\r")
            del self._buf[: nl + 1]
            if len(line) > self._max:
                line = self._salvage(line)
            if line:
                out.append(line)
        if len(self._buf) > self._max:
            self._overflow()
        return out

    def _salvage(self, line: bytes) -> bytes:
        """An over-long line: keep its tail from the last start byte if that fits (resync), else drop it."""
        keep = -1 if self._start is None else line.rfind(self._start)
        if keep > 0 and len(line) - keep <= self._max:
            self._discarded += keep
            return line[keep:]
        self._discarded += len(line)
        return b""

    def _overflow(self) -> None:
        keep = -1
        if self._start is not None:
            keep = self._buf.rfind(self._start)
            # a start byte at position 0 is the very frame that overflowed: drop it too
            if keep == 0:
                keep = -1
        if keep > 0 and len(self._buf) - keep <= self._max:
            self._discarded += keep
            del self._buf[:keep]
        else:
            self._discarded += len(self._buf)
            self._buf.clear()


class PassthroughFramer:
    """For message-oriented links (BLE): each payload is one frame."""

    def __init__(self) -> None:
        self._discarded = 0

    @property
    def discarded_bytes(self) -> int:
        return self._discarded

    def feed(self, data: bytes) -> list[bytes]:
        return [bytes(data)] if data else []
