"""Card sources against real I/O where the machine allows it.

- Serial: a real pty (``os.openpty`` + raw mode); the source opens the slave path through pyserial,
  exactly as it would open /dev/ttyUSB0.
- UNIX socket and stdin: real sockets and a real pipe.
- evdev: /dev/uinput does not exist on the CI machine (no uinput module, no modprobe), so a virtual
  keyboard cannot be created. The test injects a fake at the evdev boundary instead: an object with the
  ``grab``/``ungrab``/``close``/``async_read_loop`` surface of ``evdev.InputDevice`` yielding
  ``InputEvent``-shaped objects. Everything above that boundary (key mapping, grab, reconnect on
  ENODEV) is the production code. When /dev/uinput is writable, ``test_evdev_uinput`` runs the same
  check through the kernel.

No timed assertions: every wait is for an event, bounded only by a generous guard timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tty
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from drivers.cards import binary_frame, rdm6300
from drivers.cards.keymap import EV_KEY, KEY_DOWN, KEY_ENTER, KEY_UP, KEYMAP
from drivers.errors import LinkError
from drivers.events import EventKind, LinkEvent
from drivers.links.cards import EvdevCardSource, LineCardSource, SerialCardSource
from tests.helpers import wait_for_async

GUARD_S = 20.0
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, GUARD_S)

    return asyncio.run(guarded())


class StateWatch:
    """on_state callback that lets a test wait for a state."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._events: dict[str, asyncio.Event] = {}

    def event(self, state: str) -> asyncio.Event:
        return self._events.setdefault(state, asyncio.Event())

    def __call__(self, state: str, detail: str) -> None:
        self.seen.append((state, detail))
        self.event(state).set()


async def take(it: AsyncIterator[LinkEvent], n: int) -> list[LinkEvent]:
    out = []
    async for ev in it:
        out.append(ev)
        if len(out) == n:
            break
    return out


# ----------------------------------------------------------------------------------------------- serial


@pytest.fixture
def pty_pair() -> Any:
    master, slave = os.openpty()
    tty.setraw(master)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize("protocol", ["rdm6300", "binary"])
def test_serial_reader_over_pty_repeats_are_one_read(pty_pair: tuple[int, str], protocol: str) -> None:
    master, path = pty_pair
    card_a, card_b = bytes.fromhex("010063e9ae"), bytes.fromhex("06008e6d5d")
    build = rdm6300.build if protocol == "rdm6300" else (lambda uid: binary_frame.build(2, uid))

    async def scenario() -> list[LinkEvent]:
        watch = StateWatch()
        # hold_s far above the 50 ms repeat: a loaded machine cannot split one presentation in two
        source = SerialCardSource(path, protocol, scale="s1", hold_s=30.0, output_format="em4100", on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 2))
        await watch.event("connected").wait()
        os.write(master, b"\x00noise")
        for _ in range(20):  # the tag lies on the reader: a frame every 50 ms
            os.write(master, build(card_a))
            await asyncio.sleep(0.05)
        os.write(master, build(card_b)[:4])  # split frames are joined
        await asyncio.sleep(0.01)
        os.write(master, build(card_b)[4:])
        got = await reader
        await source.close()
        await events.aclose()
        assert source.state == "closed"
        return got

    got = run(scenario())
    assert [(e.kind, e.payload, e.scale) for e in got] == [
        (EventKind.CARD, b"0006547886", "s1"),
        (EventKind.CARD, b"0009334109", "s1"),
    ]
    assert got[0].received_at.tzinfo is not None


def test_serial_default_text_is_what_the_rdm6300_sends(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair

    async def scenario() -> LinkEvent:
        watch = StateWatch()
        source = SerialCardSource(path, "rdm6300", on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 1))
        await watch.event("connected").wait()
        bad = bytearray(rdm6300.build(bytes.fromhex("4500c5d1e9")))
        bad[11] = ord("0")  # wrong check digit: rejected, counted
        os.write(master, bytes(bad) + rdm6300.build(bytes.fromhex("4500c5d1e9")))
        (ev,) = await reader
        assert source.rejected == 1
        await source.close()
        await events.aclose()
        return ev

    assert run(scenario()).payload == b"4500C5D1E9"


def test_serial_reconnects_after_the_port_goes_away(tmp_path: Path) -> None:
    """The port does not exist at first (reader unplugged); it appears later; the source picks it up."""
    link_path = tmp_path / "ttyRFID"

    async def scenario() -> LinkEvent:
        watch = StateWatch()
        source = SerialCardSource(str(link_path), "rdm6300", reconnect_min_s=0.01, reconnect_max_s=0.05, on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 1))
        await watch.event("disconnected").wait()
        master, slave = os.openpty()
        tty.setraw(master)
        try:
            os.symlink(os.ttyname(slave), link_path)
            await watch.event("connected").wait()
            os.write(master, rdm6300.build(bytes.fromhex("010063e9ae")))
            (ev,) = await reader
        finally:
            await source.close()
            await events.aclose()
            os.close(master)
            os.close(slave)
        return ev

    assert run(scenario()).payload == b"010063E9AE"


def test_serial_unknown_protocol() -> None:
    with pytest.raises(LinkError):
        SerialCardSource("/dev/null", "wiegand")


# ------------------------------------------------------------------------------------------------ evdev


@dataclass
class FakeInputEvent:
    type: int
    code: int
    value: int
    t: float

    def timestamp(self) -> float:
        return self.t


class FakeInputDevice:
    """Boundary fake for ``evdev.InputDevice``: only the surface ``EvdevCardSource`` uses."""

    def __init__(self, *, ends_on_close: bool = True) -> None:
        self.ends_on_close = ends_on_close
        self.queue: asyncio.Queue[FakeInputEvent | OSError | None] = asyncio.Queue()
        self.grabbed = False
        self.closed = False
        self.t = 1000.0

    def grab(self) -> None:
        self.grabbed = True

    def ungrab(self) -> None:
        self.grabbed = False

    def close(self) -> None:
        self.closed = True
        if self.ends_on_close:
            self.queue.put_nowait(None)

    async def async_read_loop(self) -> AsyncIterator[FakeInputEvent]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, OSError):
                raise item
            yield item

    def type_card(self, text: str) -> None:
        code = {v: k for k, v in KEYMAP.items() if not 71 <= k <= 82}
        for c in [*(code[ch] for ch in text), KEY_ENTER]:
            for value in (KEY_DOWN, KEY_UP):
                self.queue.put_nowait(FakeInputEvent(EV_KEY, c, value, self.t))
                self.queue.put_nowait(FakeInputEvent(0, 0, 0, self.t))  # EV_SYN
                self.t += 0.008


def test_evdev_source_grabs_maps_scancodes_and_reopens_after_unplug() -> None:
    devices: list[FakeInputDevice] = []
    attempts: list[str] = []

    def open_device(path: str) -> FakeInputDevice:
        attempts.append(path)
        if len(attempts) == 1:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")  # not plugged in yet
        dev = FakeInputDevice()
        devices.append(dev)
        return dev

    async def scenario() -> list[LinkEvent]:
        watch = StateWatch()
        source = EvdevCardSource(
            "/dev/input/by-id/usb-reader-event-kbd",
            scale="s1",
            reconnect_min_s=0.01,
            reconnect_max_s=0.02,
            on_state=watch,
            open_device=open_device,
        )
        events = source.events()
        reader = asyncio.create_task(take(events, 2))
        await watch.event("connected").wait()
        first = devices[0]
        assert first.grabbed
        first.type_card("3220338716")
        first.queue.put_nowait(OSError(errno.ENODEV, "No such device"))  # unplugged
        await wait_for_async(lambda: len(devices) >= 2, "the reopened device", timeout_s=GUARD_S, interval_s=0.01)
        devices[1].type_card("1C78F2BF")
        got = await reader
        assert first.closed and not first.grabbed
        assert ("disconnected", "device not present") in watch.seen
        await source.close()
        await events.aclose()
        assert devices[1].closed
        return got

    got = run(scenario())
    assert [(e.kind, e.payload, e.scale) for e in got] == [
        (EventKind.CARD, b"3220338716", "s1"),
        (EventKind.CARD, b"1C78F2BF", "s1"),
    ]


def test_evdev_busy_device_is_retried() -> None:
    dev = FakeInputDevice()
    calls = 0

    def grab() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.EBUSY, "Device or resource busy")
        dev.grabbed = True

    dev.grab = grab  # type: ignore[method-assign]

    async def scenario() -> LinkEvent:
        watch = StateWatch()
        source = EvdevCardSource("/dev/input/event3", reconnect_min_s=0.01, on_state=watch, open_device=lambda _: dev)
        events = source.events()
        reader = asyncio.create_task(take(events, 1))
        await watch.event("connected").wait()
        dev.closed = False
        dev.type_card("0477688511")
        (ev,) = await reader
        assert any("busy" in d for _, d in watch.seen)
        await source.close()
        await events.aclose()
        return ev

    assert run(scenario()).payload == b"0477688511"


def test_evdev_close_ends_events_even_if_the_read_loop_never_wakes() -> None:
    """python-evdev's async read loop is not woken by close(); the source must end anyway."""
    dev = FakeInputDevice(ends_on_close=False)

    async def scenario() -> list[LinkEvent]:
        watch = StateWatch()
        source = EvdevCardSource("/dev/input/event3", on_state=watch, open_device=lambda _: dev)

        async def collect() -> list[LinkEvent]:
            return [ev async for ev in source.events()]

        task = asyncio.create_task(collect())
        await watch.event("connected").wait()
        dev.type_card("123")
        await wait_for_async(lambda: source.cards_read >= 1, "the card read", timeout_s=GUARD_S, interval_s=0.01)
        await source.close()
        got = await task
        assert dev.closed and not dev.grabbed
        assert source.state == "closed"
        return got

    assert [e.payload for e in run(scenario())] == [b"123"]


@pytest.mark.skipif(not os.access("/dev/uinput", os.W_OK), reason="/dev/uinput is not available on this machine")
def test_evdev_uinput() -> None:  # pragma: no cover - needs the uinput kernel module
    import evdev
    from evdev import ecodes

    ui = evdev.UInput({ecodes.EV_KEY: [*KEYMAP, KEY_ENTER]}, name="scale-bridge-test-reader")
    try:

        async def scenario() -> LinkEvent:
            watch = StateWatch()
            source = EvdevCardSource(ui.device.path, on_state=watch)
            events = source.events()
            reader = asyncio.create_task(take(events, 1))
            await watch.event("connected").wait()
            code = {v: k for k, v in KEYMAP.items() if not 71 <= k <= 82}
            for c in [*(code[ch] for ch in "3220338716"), KEY_ENTER]:
                ui.write(ecodes.EV_KEY, c, 1)
                ui.write(ecodes.EV_KEY, c, 0)
                ui.syn()
            (ev,) = await reader
            await source.close()
            await events.aclose()
            return ev

        assert run(scenario()).payload == b"3220338716"
    finally:
        ui.close()


# ------------------------------------------------------------------------------------------------ lines


def test_line_socket_two_clients(tmp_path: Path) -> None:
    sock = tmp_path / "cards.sock"
    sock.write_bytes(b"")  # a regular file in the way is an error, not something to delete
    with pytest.raises(LinkError, match="not a socket"):
        run(take(LineCardSource(str(sock)).events(), 1))
    sock.unlink()

    async def scenario() -> list[LinkEvent]:
        watch = StateWatch()
        source = LineCardSource(str(sock), scale="s2", on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 3))
        await watch.event("connected").wait()
        assert sock.stat().st_mode & 0o777 == 0o660
        _, w1 = await asyncio.open_unix_connection(str(sock))
        _, w2 = await asyncio.open_unix_connection(str(sock))
        w1.write(b"32203")
        await w1.drain()
        w2.write(b"0477688511\r\n\n")
        await w2.drain()
        w1.write(b"38716\n" + b"9" * 100 + b"\n")  # the over-long line is dropped
        w1.write(b"1C78F2BF\n")
        await w1.drain()
        got = await reader
        assert source.clients_served == 2
        assert source.rejected == 1
        for w in (w1, w2):
            w.close()
        await source.close()
        await events.aclose()
        assert not sock.exists()
        return got

    got = run(scenario())
    payloads = [e.payload for e in got]
    assert sorted(payloads) == [b"0477688511", b"1C78F2BF", b"3220338716"]
    # one client's lines keep their order
    assert payloads.index(b"3220338716") < payloads.index(b"1C78F2BF")
    assert {e.scale for e in got} == {"s2"}


def test_line_socket_never_replaces_a_socket_something_listens_on(tmp_path: Path) -> None:
    """Installer audit I2: a second bridge deleted the running one's card socket as "stale"."""
    import socket as socketlib

    sock = tmp_path / "cards.sock"
    live = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    live.bind(str(sock))
    live.listen()
    try:
        with pytest.raises(LinkError, match="another process is listening"):
            run(take(LineCardSource(str(sock)).events(), 1))
        probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
        probe.connect(str(sock))  # still there, still the first listener's
        probe.close()
    finally:
        live.close()
    # a socket nobody listens on any more (a killed run) is stale: replaced
    assert sock.exists()

    async def scenario() -> bytes:
        watch = StateWatch()
        source = LineCardSource(str(sock), on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 1))
        await watch.event("connected").wait()
        _, w = await asyncio.open_unix_connection(str(sock))
        w.write(b"3220338716\n")
        await w.drain()
        got = await reader
        w.close()
        await source.close()
        await events.aclose()
        return got[0].payload

    assert run(scenario()) == b"3220338716"


def test_line_socket_leaves_a_successors_socket_alone(tmp_path: Path) -> None:
    """On exit the source unlinks its own socket only, not one a new instance created in its place."""
    sock = tmp_path / "cards.sock"

    async def scenario() -> None:
        watch = StateWatch()
        source = LineCardSource(str(sock), on_state=watch)
        events = source.events()
        reader = asyncio.create_task(take(events, 1))
        await watch.event("connected").wait()
        sock.unlink()
        successor = await asyncio.start_unix_server(lambda r, w: None, path=str(sock))
        await source.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await events.aclose()
        assert sock.exists()
        successor.close()

    run(scenario())


def test_line_stdin_until_eof() -> None:
    r, w = os.pipe()

    async def scenario() -> list[LinkEvent]:
        with os.fdopen(r, "rb", buffering=0) as pipe:
            source = LineCardSource("-", stdin=pipe)
            os.write(w, b"3220338716\n\x01bad\n  0009334109  \n")
            os.close(w)
            return [ev async for ev in source.events()]

    got = run(scenario())
    assert [e.payload for e in got] == [b"3220338716", b"0009334109"]


def test_sources_are_read_only() -> None:
    with pytest.raises(LinkError):
        run(LineCardSource("-").send(b"x"))


def test_from_config() -> None:
    from drivers.links.cards import from_config

    assert isinstance(from_config("evdev", "/dev/input/event3"), EvdevCardSource)
    serial_source = from_config("serial", "/dev/ttyUSB1", format="em4100", protocol="binary", scale="s")
    assert isinstance(serial_source, SerialCardSource)
    assert (serial_source.protocol, serial_source.output_format, serial_source.scale) == ("binary", "em4100", "s")
    assert from_config("socket", "/run/scale-bridge/cards.sock").name == "socket:/run/scale-bridge/cards.sock"
    assert from_config("stdin", "").is_stdin  # type: ignore[union-attr]
    for bad in [("evdev", ""), ("serial", "/dev/ttyUSB1", "octal"), ("nfc", "x")]:
        with pytest.raises(LinkError):
            from_config(*bad[:2], **({"format": bad[2]} if len(bad) > 2 else {}))


def test_serial_close_ends_pending_events(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair

    async def scenario() -> list[LinkEvent]:
        watch = StateWatch()
        source = SerialCardSource(path, "rdm6300", on_state=watch)

        async def collect() -> list[LinkEvent]:
            return [ev async for ev in source.events()]

        task = asyncio.create_task(collect())
        await watch.event("connected").wait()
        await source.close()
        return await task

    assert run(scenario()) == []


def test_importing_card_modules_loads_no_foreign_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, drivers.cards, drivers.cards.explain, drivers.links.cards;"
        "bad = [m for m in ('serial', 'serial_asyncio_fast', 'evdev', 'bleak', 'httpx') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
