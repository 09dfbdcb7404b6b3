"""Property checks shared by the serial drivers' tests (framer + parser)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from drivers import DeviceReport, FrameError, Reading
from drivers.registry import DriverSpec


def decode_stream(spec: DriverSpec, chunks: Sequence[bytes]) -> tuple[list[Reading | DeviceReport], int]:
    """Frame + decode; anything but FrameError propagates (and fails the property)."""
    framer = spec.make_framer()
    decoder = spec.new_decoder()
    out: list[Reading | DeviceReport] = []
    rejected = 0
    for chunk in chunks:
        for frame in framer.feed(chunk):
            try:
                out.extend(decoder.decode(frame, ""))
            except FrameError:
                rejected += 1
    return out, rejected


def parse_only_frame_error(spec: DriverSpec, data: bytes) -> None:
    with contextlib.suppress(FrameError):
        spec.parse(data, "")


def robust(spec: DriverSpec, data: bytes) -> None:
    """Any bytes, framed and decoded or parsed directly, raise nothing but FrameError."""
    decode_stream(spec, [data])
    parse_only_frame_error(spec, data)


def check_chunking(spec: DriverSpec, frames_wire: Sequence[bytes], cuts: Sequence[int]) -> None:
    """The frames of a stream do not depend on how it is split into chunks; one frame per item."""
    stream = b"".join(frames_wire)
    whole = frames(spec, [stream])
    assert frames(spec, split_at(stream, cuts)) == whole
    assert len(whole) == len(frames_wire)


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks: list[bytes] = []
    last = 0
    for p in points:
        chunks.append(data[last:p])
        last = p
    chunks.append(data[last:])
    return chunks


def frames(spec: DriverSpec, chunks: Sequence[bytes]) -> list[bytes]:
    framer = spec.make_framer()
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def garbage_then_frame(
    spec: DriverSpec, garbage: Sequence[bytes], frame: bytes, cap: int, *, separator: bytes = b""
) -> list[bytes]:
    """Feed terminator-free garbage; the buffer never exceeds ``cap``; return what the good frame gave."""
    framer = spec.make_framer()
    for chunk in garbage:
        framer.feed(chunk)
        assert framer.buffered_bytes <= cap  # type: ignore[attr-defined]
    out = framer.feed(separator + frame)
    assert framer.buffered_bytes <= cap  # type: ignore[attr-defined]
    return out


def no_terminators(exclude: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes without CR, LF and the given bytes (e.g. a start byte)."""
    banned = b"\r\n" + exclude
    return st.binary(min_size=1, max_size=300).map(lambda b: b.translate(None, banned) or b"x")


#: settings for the heavier properties (big garbage streams, multi-frame chunking)
HEAVY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
