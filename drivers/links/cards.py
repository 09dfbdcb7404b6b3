"""Card sources: links that yield one ``LinkEvent(kind=CARD)`` per card presentation.

``payload`` is the card text as the reader produced it (ASCII); ``received_at`` is the host clock
(UTC). The daemon turns it into a platform query with ``drivers.cards.numbers.to_platform`` using the
configured ``[cards] format``.

- ``EvdevCardSource``: USB "keyboard wedge" readers through python-evdev (imported lazily). The device
  is grabbed (EVIOCGRAB) so the typed digits do not leak into a kiosk UI; the source reopens the
  device when it disappears (unplug, USB reset).
- ``SerialCardSource``: RDM6300/EM-18 ASCII frames or the binary ``STX len type SNR BCC ETX`` frames
  over a pyserial URL, reusing ``SerialLink`` (reconnect with capped backoff). One event per
  presentation (the RDM6300 repeats its frame every ~50 ms).
- ``LineCardSource``: kiosk software that already reads cards writes one card number per line to a
  local UNIX socket (several clients at once) or to our stdin.

Card numbers are personal data: nothing here logs them, and ``LinkError`` messages never hold one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import stat
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from ..cards import binary_frame, rdm6300
from ..cards.debounce import Debouncer
from ..cards.keymap import EV_KEY, KeyAccumulator
from ..cards.numbers import CardUid, ReaderFormat, render
from ..errors import FrameError, LinkError
from ..events import EventKind, LinkEvent
from ..framing import LineFramer
from .base import Link, StateCallback, StateReporter, says_why

#: longest card text accepted from a line source (a 10-byte UID as decimal is 25 digits)
MAX_LINE_BYTES = 64


def _now() -> datetime:
    return datetime.now(UTC)


class _SourceBase(StateReporter):
    """Name, state, close flag and capped exponential backoff shared by the card sources."""

    name: str

    def __init__(
        self,
        *,
        scale: str,
        reconnect_min_s: float,
        reconnect_max_s: float,
        on_state: StateCallback | None,
    ) -> None:
        self.scale = scale
        self._min = reconnect_min_s
        self._max = reconnect_max_s
        self._delay = reconnect_min_s
        self._on_state = on_state
        self._state = "connecting"
        self._closed = False
        self._wake = asyncio.Event()
        self.cards_read = 0
        self.rejected = 0

    async def _backoff(self) -> None:
        """Sleep before the next attempt (returns early on close)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._delay)
        self._delay = min(self._max, self._delay * 2)

    def _connected(self, detail: str) -> None:
        self._delay = self._min
        self._set_state("connected", detail)

    def _event(self, text: str, received_at: datetime | None = None) -> LinkEvent:
        self.cards_read += 1
        return LinkEvent(EventKind.CARD, text.encode("ascii"), received_at or _now(), scale=self.scale)

    async def send(self, data: bytes) -> None:
        raise LinkError(f"{self.name}: card readers are read-only", transient=False)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._set_state("closed")


# ------------------------------------------------------------------------------------------------ evdev


class InputDeviceLike(Protocol):
    """The part of ``evdev.InputDevice`` this source uses (tests inject a fake with this surface)."""

    def grab(self) -> None: ...

    def ungrab(self) -> None: ...

    def close(self) -> None: ...

    def async_read_loop(self) -> AsyncIterator[Any]: ...


def _open_evdev(path: str) -> InputDeviceLike:
    try:
        import evdev
    except ImportError:
        raise LinkError("python-evdev is not installed (pip install 'scale-bridge[cards]')", transient=False) from None
    device: InputDeviceLike = evdev.InputDevice(path)
    return device


class EvdevCardSource(_SourceBase):
    """A keyboard-wedge reader on ``/dev/input/...`` (prefer ``/dev/input/by-id/...-event-kbd``).

    Key codes go through ``KeyAccumulator`` (scancodes, so the keyboard layout does not matter);
    every finished line is one card. ``open_device`` is the boundary for tests (default: python-evdev).
    """

    def __init__(
        self,
        device_path: str,
        *,
        grab: bool = True,
        scale: str = "",
        key_timeout_s: float = 0.5,
        max_len: int = 32,
        reconnect_min_s: float = 0.25,
        reconnect_max_s: float = 5.0,
        on_state: StateCallback | None = None,
        open_device: Callable[[str], InputDeviceLike] = _open_evdev,
    ) -> None:
        super().__init__(
            scale=scale, reconnect_min_s=reconnect_min_s, reconnect_max_s=reconnect_max_s, on_state=on_state
        )
        self.name = f"evdev:{device_path}"
        self.device_path = device_path
        self.grab = grab
        self._open = open_device
        self._key_timeout_s = key_timeout_s
        self._max_len = max_len
        self._device: InputDeviceLike | None = None
        self.connects = 0

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        while not self._closed:
            device = self._open_grabbed()
            if device is None:
                await self._backoff()
                continue
            self._device = device
            self.connects += 1
            self._connected(self.device_path)
            acc = KeyAccumulator(timeout_s=self._key_timeout_s, max_len=self._max_len)
            try:
                async with contextlib.aclosing(self._until_closed(device.async_read_loop())) as stream:
                    async for ev in stream:
                        if ev.type != EV_KEY:
                            continue
                        stamp = ev.timestamp() if hasattr(ev, "timestamp") else time.monotonic()
                        text = acc.feed(ev.code, ev.value, stamp)
                        if text is not None:
                            yield self._event(text)
                if not self._closed:
                    self._set_state("disconnected", "device stopped sending")
            except OSError as exc:  # ENODEV when unplugged
                if not self._closed:
                    self._set_state("disconnected", _why(exc))
            finally:
                self._device = None
                self.rejected += acc.dropped_partials
                if self.grab:
                    with contextlib.suppress(OSError):
                        device.ungrab()
                with contextlib.suppress(OSError):
                    device.close()
            if not self._closed:
                await self._backoff()
        self._set_state("closed")

    def _open_grabbed(self) -> InputDeviceLike | None:
        """The device opened (and grabbed when asked), or None with the link's state saying why."""
        try:
            device = self._open(self.device_path)
        except OSError as exc:
            self._set_state("disconnected", _why(exc))
            return None
        try:
            if self.grab:
                device.grab()
        except OSError as exc:
            with contextlib.suppress(OSError):
                device.close()
            # EBUSY: another process (often a desktop session) holds the grab; keep trying
            self._set_state("disconnected", f"cannot grab: {_why(exc)}")
            return None
        return device

    async def _until_closed(self, events: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """The device's events until it ends or ``close()`` is called: python-evdev's read loop never
        wakes up once the device is closed under it, so each read races the close signal."""
        it = aiter(events)
        closing = asyncio.ensure_future(self._wake.wait())
        try:
            while not self._closed:
                nxt = asyncio.ensure_future(anext(it))
                await asyncio.wait((nxt, closing), return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, OSError):
                        await nxt
                    return
                try:
                    yield nxt.result()
                except StopAsyncIteration:
                    return
        finally:
            closing.cancel()

    async def close(self) -> None:
        await super().close()
        device = self._device
        if device is not None:
            with contextlib.suppress(OSError):
                device.close()


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (is the service user in the 'input' group?)"
    if exc.errno in (errno.ENOENT, errno.ENODEV):
        return "device not present"
    if exc.errno == errno.EBUSY:
        return "device busy (grabbed by another process)"
    return f"{type(exc).__name__}: {exc.strerror or exc}"


# ----------------------------------------------------------------------------------------------- serial


class _FramedParser(Protocol):
    def feed(self, data: bytes) -> list[bytes]: ...


class SerialCardSource(_SourceBase):
    """A serial RFID reader: ``protocol`` is ``rdm6300`` (ASCII frames) or ``binary``.

    ``output_format`` is how the card text is rendered: ``hex`` (default) is what an RDM6300 sends
    (the 10 hex digits, checksum removed); ``em4100`` gives the number printed on EM fobs, which is
    what the platform usually holds. Repeats of the same card within ``hold_s`` are one presentation.
    """

    def __init__(
        self,
        url: str,
        protocol: str = "rdm6300",
        baudrate: int = 9600,
        *,
        scale: str = "",
        hold_s: float = 1.0,
        output_format: ReaderFormat | str = ReaderFormat.HEX,
        reconnect_min_s: float = 0.25,
        reconnect_max_s: float = 5.0,
        on_state: StateCallback | None = None,
        link: Any = None,
    ) -> None:
        super().__init__(
            scale=scale, reconnect_min_s=reconnect_min_s, reconnect_max_s=reconnect_max_s, on_state=on_state
        )
        if protocol not in ("rdm6300", "binary"):
            raise LinkError(f"unknown serial card protocol {protocol!r} (rdm6300 | binary)", transient=False)
        self.name = f"serial-card:{url}"
        self.url = url
        self.protocol = protocol
        self.output_format = ReaderFormat(output_format)
        self._debounce = Debouncer(hold_s)
        if link is None:
            from ..registry import SerialSettings
            from .serial import SerialLink

            link = SerialLink(
                url,
                SerialSettings(baudrate=baudrate),
                scale=scale,
                reconnect_min_s=reconnect_min_s,
                reconnect_max_s=reconnect_max_s,
                on_state=self._set_state,
            )
        self._link = link
        self._framer_discarded = 0

    @property
    def discarded_bytes(self) -> int:
        return self._framer_discarded

    def _decode(self, frame: bytes) -> CardUid:
        if self.protocol == "rdm6300":
            return rdm6300.parse(frame)
        return binary_frame.parse(frame).uid

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        framer: rdm6300.Rdm6300Framer | binary_frame.BinaryFrameFramer = (
            rdm6300.Rdm6300Framer() if self.protocol == "rdm6300" else binary_frame.BinaryFrameFramer()
        )
        async for ev in self._link.events():
            if self._closed:
                break
            if ev.kind is not EventKind.RX:
                continue
            for frame in framer.feed(ev.payload):
                try:
                    uid = self._decode(frame)
                except FrameError:
                    self.rejected += 1
                    continue
                if not self._debounce.accept(uid.hex, time.monotonic()):
                    continue
                text = render(uid, self.output_format)
                if text is None:
                    self.rejected += 1  # e.g. em4100 asked for a 4-byte Mifare UID
                    continue
                yield self._event(text, ev.received_at)
            self._framer_discarded = framer.discarded_bytes
        self._set_state("closed")

    async def close(self) -> None:
        await super().close()
        await self._link.close()


# ------------------------------------------------------------------------------------------------ lines


def socket_is_live(path: str) -> bool:
    """Whether something accepts connections on the UNIX socket ``path`` (a connect() that succeeds
    or would wait). Refused, missing or not a socket: not live."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except (BlockingIOError, InterruptedError):
        return True  # the listener's backlog is full: it is alive
    except OSError:
        return False
    finally:
        probe.close()
    return True


class LineCardSource(_SourceBase):
    """One card number per line from kiosk software: ``path`` is a UNIX socket to listen on (created
    with mode 0660; several clients may be connected at once) or ``-`` / ``stdin``.

    Lines are stripped; empty lines, non-printable text and lines longer than ``MAX_LINE_BYTES`` are
    rejected (counted). On stdin, end of file ends ``events()``.
    """

    def __init__(
        self,
        path_or_stdin: str = "-",
        *,
        scale: str = "",
        socket_mode: int = 0o660,
        on_state: StateCallback | None = None,
        stdin: Any = None,
    ) -> None:
        super().__init__(scale=scale, reconnect_min_s=0.25, reconnect_max_s=5.0, on_state=on_state)
        self.path = path_or_stdin
        self.is_stdin = path_or_stdin in ("-", "stdin")
        self.name = "stdin" if self.is_stdin else f"socket:{path_or_stdin}"
        self._mode = socket_mode
        self._stdin = stdin
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self.clients_served = 0
        self._stdin_task: asyncio.Task[None] | None = None
        self._inode = -1

    def _accept_line(self, line: bytes) -> str | None:
        text = line.strip()
        if not text:
            return None
        if not text.isascii() or not all(0x20 < b < 0x7F for b in text):
            self.rejected += 1
            return None
        return text.decode("ascii")

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        framer = LineFramer(max_line_bytes=MAX_LINE_BYTES, cr_terminates=True)
        while not self._closed:
            data = await reader.read(4096)
            if not data:
                break
            before = framer.discarded_bytes
            for line in framer.feed(data):
                text = self._accept_line(line)
                if text is not None:
                    try:
                        self._queue.put_nowait(text)
                    except asyncio.QueueFull:  # nobody is consuming: drop, but count it
                        self.rejected += 1
            if framer.discarded_bytes != before:
                self.rejected += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        self.clients_served += 1
        try:
            await self._pump(reader)
        except OSError:
            pass  # a client that went away mid-line: its partial line is dropped
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _start_socket(self) -> None:
        path = self.path
        try:
            if os.path.lexists(path):
                if not stat.S_ISSOCK(os.lstat(path).st_mode):
                    raise LinkError(f"{path}: exists and is not a socket", transient=False)
                if socket_is_live(path):
                    raise LinkError(
                        f"{path}: another process is listening on this socket (another scale-bridge?); "
                        "not replacing it",
                        transient=False,
                    )
                os.unlink(path)  # stale: nobody answers on it (a previous run that was killed)
            self._server = await asyncio.start_unix_server(self._client, path=path)
            os.chmod(path, self._mode)
            self._inode = os.lstat(path).st_ino
        except OSError as exc:
            raise LinkError(f"{path}: cannot listen: {exc.strerror or exc}", transient=False) from None
        self._connected(path)

    async def _start_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = self._stdin if self._stdin is not None else sys.stdin
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        except (OSError, ValueError) as exc:
            raise LinkError(f"stdin: cannot read: {exc}", transient=False) from None
        self._connected("stdin")

        async def pump() -> None:
            try:
                await self._pump(reader)
            finally:
                self._queue.put_nowait(None)

        self._stdin_task = asyncio.create_task(pump())

    @says_why
    async def events(self) -> AsyncIterator[LinkEvent]:
        if self.is_stdin:
            await self._start_stdin()
        else:
            await self._start_socket()
        try:
            while not self._closed:
                text = await self._queue.get()
                if text is None:
                    break
                yield self._event(text)
        finally:
            await self._shutdown()
        self._set_state("closed")

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._clients):
                w.close()
            with contextlib.suppress(OSError):
                if os.lstat(self.path).st_ino == self._inode:  # still ours, not a successor's
                    os.unlink(self.path)
            self._server = None

    async def close(self) -> None:
        await super().close()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


# ----------------------------------------------------------------------------------------------- config


class DeviceKind(StrEnum):
    """What ``[cards] device`` names for a card source (what ``validate`` checks on the machine)."""

    NONE = "none"  # no device (stdin)
    PATH = "path"  # a device file that must exist (an evdev node)
    PORT = "port"  # a pyserial URL: a device path (must exist) or socket:// / rfc2217://
    SOCKET = "socket"  # a UNIX socket the source creates (its directory must be writable)


@dataclass(frozen=True, slots=True)
class CardSourceArgs:
    """What every card source may use from ``[cards]`` (each takes what it needs)."""

    device: str
    scale: str = ""
    format: str = "hex"
    protocol: str = "rdm6300"
    baudrate: int = 9600
    on_state: StateCallback | None = None


@dataclass(frozen=True, slots=True)
class CardSourceKind:
    """One kind of card source: the table below is the only place that lists them, so a new card
    reader is one entry here (and its class in this module), nothing in ``bridge/``."""

    name: str
    summary: str
    device: DeviceKind
    build: Callable[[CardSourceArgs], Link]
    #: an optional Python module the source needs, its pip requirement and the scale-bridge extra
    #: that installs it
    python_module: str | None = None
    requirement: str | None = None
    extra: str | None = None
    example: str = ""

    @property
    def device_file(self) -> bool:
        """``[cards] device`` names a device file that must exist (not a socket, not a URL's host)."""
        return self.device in (DeviceKind.PATH, DeviceKind.PORT)


def _evdev(a: CardSourceArgs) -> Link:
    return EvdevCardSource(a.device, scale=a.scale, on_state=a.on_state)


def _serial(a: CardSourceArgs) -> Link:
    try:
        output = ReaderFormat(a.format)
    except ValueError:
        raise LinkError(f"cards.format: unknown card format {a.format!r}", transient=False) from None
    return SerialCardSource(a.device, a.protocol, a.baudrate, scale=a.scale, output_format=output, on_state=a.on_state)


def _socket(a: CardSourceArgs) -> Link:
    return LineCardSource(a.device, scale=a.scale, on_state=a.on_state)


def _stdin(a: CardSourceArgs) -> Link:
    return LineCardSource("-", scale=a.scale, on_state=a.on_state)


CARD_SOURCES: Mapping[str, CardSourceKind] = MappingProxyType(
    {
        k.name: k
        for k in (
            CardSourceKind(
                "evdev",
                "USB keyboard-wedge RFID reader (python-evdev)",
                DeviceKind.PATH,
                _evdev,
                python_module="evdev",
                requirement="evdev>=1.7",
                extra="cards",
                example="/dev/input/by-id/...-event-kbd",
            ),
            CardSourceKind(
                "serial",
                "RDM6300 / binary-frame reader on a serial port",
                DeviceKind.PORT,
                _serial,
                example="/dev/serial/by-id/... (a pyserial URL)",
            ),
            CardSourceKind(
                "socket",
                "kiosk software writing card lines to a UNIX socket",
                DeviceKind.SOCKET,
                _socket,
                example="/run/scale-bridge/cards.sock",
            ),
            CardSourceKind("stdin", "card lines on standard input (tests, pipes)", DeviceKind.NONE, _stdin),
        )
    }
)
SOURCES = tuple(CARD_SOURCES)


def from_config(
    source: str,
    device: str,
    *,
    scale: str = "",
    format: str = "hex",
    protocol: str = "rdm6300",
    baudrate: int = 9600,
    on_state: StateCallback | None = None,
) -> Link:
    """The card source for ``[cards] source / device``. ``format`` is the configured ``[cards]
    format``: serial readers deliver bytes, and the source renders them in that format so the text
    reads back the same way as a keyboard reader's. Raises ``LinkError(transient=False)`` for a bad
    combination."""
    kind = CARD_SOURCES.get(source)
    if kind is None:
        raise LinkError(f"cards.source: no card link for {source!r} (one of {', '.join(SOURCES)})", transient=False)
    if kind.device is not DeviceKind.NONE and not device:
        hint = f" ({kind.example})" if kind.example else ""
        raise LinkError(f"cards.device: required for source = {source}{hint}", transient=False)
    return kind.build(CardSourceArgs(device, scale, format, protocol, baudrate, on_state))
