"""Protocol knowledge: pure framers and parsers per wire-protocol family, plus links (I/O) in
``drivers.links``. Importing this package loads neither pyserial nor bleak nor httpx."""

from .errors import CaptureError, ChecksumError, DriverError, FrameError, LinkError
from .model import DeviceReport, Measurement, ParseResult, Reading, Segment, SegmentValues
from .registry import DriverSpec, LinkKind, get, registry

__all__ = [
    "CaptureError",
    "ChecksumError",
    "DeviceReport",
    "DriverError",
    "DriverSpec",
    "FrameError",
    "LinkError",
    "LinkKind",
    "Measurement",
    "ParseResult",
    "Reading",
    "Segment",
    "SegmentValues",
    "get",
    "registry",
]
