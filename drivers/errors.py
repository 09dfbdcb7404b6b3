"""The drivers' exception tree. Parsers raise nothing else; links translate foreign errors into it."""

from __future__ import annotations


class DriverError(Exception):
    """Root of every error raised by the drivers package."""


class FrameError(DriverError):
    """A frame could not be decoded. The frame is rejected; the stream goes on with the next one."""

    def __init__(self, reason: str, frame: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.frame = frame


class ChecksumError(FrameError):
    """The frame's checksum does not match its content."""

    def __init__(self, expected: str, actual: str, frame: bytes = b"") -> None:
        super().__init__(f"checksum mismatch: frame says {actual}, content gives {expected}", frame)
        self.expected = expected
        self.actual = actual


class LinkError(DriverError):
    """A link (serial port, BLE adapter, capture file) failed. ``transient`` says whether to retry."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class CaptureError(DriverError):
    """A capture file is not in the scale-bridge capture format."""

    def __init__(self, message: str, line_no: int = 0) -> None:
        super().__init__(f"line {line_no}: {message}" if line_no else message)
        self.line_no = line_no
