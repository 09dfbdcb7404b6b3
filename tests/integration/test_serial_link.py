"""SerialLink against live fakes (no daemon): a pty by device path and behind a by-id symlink,
``socket://`` (raw TCP, like ser2net), ``rfc2217://`` (pyserial's PortManager over a pty), unplug and
replug, garbage streams, and polling for command/response scales. Only 127.0.0.1 and ptys."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.events import EventKind, LinkEvent
from drivers.links.serial import SerialLink
from drivers.model import Reading
from drivers.registry import get
from tests.fakes.serial_fakes import PtyDevice, Rfc2217Server, TcpDevice, mt_sics_line, tanita_line

#: failure guard, not a performance target: the link must be back well before this
RECONNECT_DEADLINE_S = 15.0


class Run:
    """Pumps a link's events in a task and decodes them with a driver, as the daemon would."""

    def __init__(self, link: SerialLink, driver: str = "tanita") -> None:
        self.link = link
        self.spec = get(driver)
        self.framer = self.spec.make_framer()
        self.decoder = self.spec.new_decoder()
        self.events: list[LinkEvent] = []
        self.readings: list[Reading] = []
        self.max_buffered = 0
        self.task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        async for ev in self.link.events():
            self.events.append(ev)
            if ev.kind is not EventKind.RX:
                continue
            for frame in self.framer.feed(ev.payload):
                try:
                    results = self.decoder.decode(frame, "")
                except Exception:  # noqa: BLE001 - garbage frames are expected here
                    continue
                self.readings.extend(r for r in results if isinstance(r, Reading))
            self.max_buffered = max(self.max_buffered, getattr(self.framer, "buffered_bytes", 0))

    async def __aenter__(self) -> Run:
        self.task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.link.close()
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def weights(r: Run) -> list[float | None]:
    return [x.measurement.weight_kg for x in r.readings]


@pytest.fixture
def pty_device():  # type: ignore[no-untyped-def]
    dev = PtyDevice()
    yield dev
    dev.close()


@pytest.fixture
def by_id_device(tmp_path: Path):  # type: ignore[no-untyped-def]
    by_id = tmp_path / "dev" / "serial" / "by-id"
    by_id.mkdir(parents=True)
    dev = PtyDevice(symlink=by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0")
    yield dev
    dev.close()


def _tanita_settings() -> Any:
    return get("tanita").serial


@pytest.mark.parametrize("via", ["device_path", "by_id_symlink"])
def test_pty_by_path_and_by_id_symlink(via: str, pty_device: PtyDevice, by_id_device: PtyDevice) -> None:
    dev = pty_device if via == "device_path" else by_id_device
    if via == "by_id_symlink":
        assert Path(dev.path).is_symlink() and os.path.realpath(dev.path) == dev.slave_path

    async def main() -> None:
        link = SerialLink(dev.path, _tanita_settings())
        async with Run(link) as r:
            await wait_until(lambda: link.state == "connected", 10, "the link to open the port")
            dev.write(tanita_line(weight_kg=81.2), chunk=7, pause_s=0.002)  # as a USB adapter delivers it
            await wait_until(lambda: r.readings, 10, "the reading")
        assert weights(r) == [81.2]
        assert link.connects == 1

    run(main)


def test_socket_url_against_raw_tcp_device() -> None:
    device = TcpDevice()  # sends as soon as the connection is accepted: nothing is flushed on open

    async def main() -> None:
        link = SerialLink(device.url, _tanita_settings())
        async with Run(link) as r:
            await wait_until(lambda: link.state == "connected", 10, "the TCP connection")
            await asyncio.to_thread(device.send, tanita_line(weight_kg=72.5) + tanita_line(weight_kg=73.0))
            await wait_until(lambda: len(r.readings) == 2, 10, "two readings")
            await link.send(b"M1\r\n")  # the write path reaches the device as well
            got = await asyncio.to_thread(device.clients[-1].recv, 64)
        assert weights(r) == [72.5, 73.0]
        assert got == b"M1\r\n"

    try:
        run(main)
    finally:
        device.close()


def test_rfc2217_url_against_port_manager_server(pty_device: PtyDevice) -> None:
    server = Rfc2217Server(pty_device.slave_path)
    tx: list[LinkEvent] = []

    async def main() -> None:
        link = SerialLink(server.url, _tanita_settings(), on_tx=tx.append)
        async with Run(link) as r:
            await wait_until(lambda: link.state == "connected", 15, "the RFC 2217 negotiation")
            pty_device.write(tanita_line(weight_kg=64.4), chunk=16)
            await wait_until(lambda: r.readings, 10, "the reading over RFC 2217")
            await link.send(b"D11\r\n")
            echoed = await asyncio.to_thread(pty_device.read_available, 2.0)
        assert weights(r) == [64.4]
        assert echoed == b"D11\r\n"
        assert [e.payload for e in tx] == [b"D11\r\n"] and tx[0].kind is EventKind.TX

    try:
        run(main)
    finally:
        server.close()
    assert not server.errors, server.errors


def test_rfc2217_session_dropped_by_the_server_reconnects(pty_device: PtyDevice) -> None:
    """ser2net restarted or the network cut: the link reconnects with the same backoff as an unplug."""
    server = Rfc2217Server(pty_device.slave_path)

    async def main() -> None:
        link = SerialLink(server.url, _tanita_settings(), reconnect_min_s=0.25, reconnect_max_s=5.0)
        async with Run(link) as r:
            await wait_until(lambda: link.state == "connected", 15, "the first session")
            pty_device.write(tanita_line(weight_kg=64.4))
            await wait_until(lambda: r.readings, 10, "the first reading")
            server.drop()
            await wait_until(
                lambda: link.connects == 2 and link.state == "connected", RECONNECT_DEADLINE_S, "the second session"
            )
            # no pause: the link does not purge the server's buffer when it opens (test_lines_written_while...)
            pty_device.write(tanita_line(weight_kg=64.9))
            await wait_until(lambda: len(r.readings) == 2, 10, "the reading after the reconnect")
        assert weights(r) == [64.4, 64.9]
        assert server.sessions == 2

    try:
        run(main)
    finally:
        server.close()


def test_unplug_replug_reconnects_and_next_weighing_arrives(
    by_id_device: PtyDevice, record_property: Callable[[str, object], None]
) -> None:
    dev = by_id_device
    states: list[tuple[float, str, str]] = []
    measured: dict[str, float] = {}

    async def main() -> None:
        link = SerialLink(
            dev.path,
            _tanita_settings(),
            reconnect_min_s=0.25,
            reconnect_max_s=5.0,
            on_state=lambda s, d: states.append((time.monotonic(), s, d)),
        )
        async with Run(link) as r:
            await wait_until(lambda: link.state == "connected", 10, "the first connection")
            dev.write(tanita_line(weight_kg=70.1))
            await wait_until(lambda: len(r.readings) == 1, 10, "the first weighing")

            dev.unplug()  # EIO on the open port, and the by-id link disappears
            await wait_until(lambda: link.state == "disconnected", 10, "the link to notice the unplug")
            await asyncio.sleep(1.5)  # the device stays away for a while: backoff grows
            assert link.connects == 1

            dev.replug()
            back_at = time.monotonic()
            await wait_until(
                lambda: link.connects == 2 and link.state == "connected", RECONNECT_DEADLINE_S, "the reconnect"
            )
            measured["reconnect_s"] = time.monotonic() - back_at
            dev.write(tanita_line(weight_kg=70.9))
            await wait_until(lambda: len(r.readings) == 2, 10, "the weighing after replug")
        assert weights(r) == [70.1, 70.9]

    run(main)
    print(f"\nreconnect after replug: {measured['reconnect_s']:.3f} s")
    record_property("reconnect_s", round(measured["reconnect_s"], 3))  # the deadline above is the guard
    kinds = [s for _, s, _ in states]
    assert kinds.index("disconnected") < len(kinds) - 1 - kinds[::-1].index("connected")


@pytest.mark.parametrize("driver", ["tanita", "mt_sics"])
def test_garbage_without_terminator_stays_bounded_then_resyncs(driver: str, pty_device: PtyDevice) -> None:
    spec = get(driver)
    cap = spec.make_framer()._max  # type: ignore[attr-defined]
    rng = random.Random(1234)
    garbage = bytes(b for b in rng.randbytes(64 * 1024) if b not in (0x0A, 0x0D))
    valid = tanita_line(weight_kg=90.5) if driver == "tanita" else mt_sics_line(90.5)

    async def main() -> None:
        link = SerialLink(pty_device.slave_path, spec.serial or _tanita_settings())
        async with Run(link, driver) as r:
            await wait_until(lambda: link.state == "connected", 10, "the link")
            for i in range(0, len(garbage), 997):
                # from a thread: a blocking write into a full pty buffer must not stall the loop that reads it
                await asyncio.to_thread(pty_device.write, garbage[i : i + 997])
            received = lambda: sum(len(e.payload) for e in r.events if e.kind is EventKind.RX)  # noqa: E731
            await wait_until(lambda: received() >= len(garbage), 20, "all garbage to be read")
            assert r.readings == []
            assert r.framer.discarded_bytes > 0  # type: ignore[attr-defined]
            if driver == "mt_sics":
                pty_device.write(b"\r\n")  # a line-based protocol resyncs at the next terminator
            pty_device.write(valid)
            await wait_until(lambda: r.readings, 10, "the valid frame after the garbage")
        assert r.max_buffered <= cap
        assert weights(r) == [90.5]

    run(main)


def test_polling_sends_while_connected_and_waits_for_replies(pty_device: PtyDevice) -> None:
    """MT-SICS: the link writes ``S`` every poll interval; a silent balance is not flooded."""
    spec = get("mt_sics")
    tx: list[LinkEvent] = []

    async def main() -> None:
        link = SerialLink(
            pty_device.slave_path,
            spec.serial or _tanita_settings(),
            poll_command=spec.poll_command,
            poll_interval_s=0.1,
            poll_reply_timeout_s=1.0,
            on_tx=tx.append,
        )
        async with Run(link, "mt_sics") as r:
            await wait_until(lambda: link.state == "connected", 10, "the link")
            # a balance that answers each poll
            answered = 0
            while answered < 3:
                got = await asyncio.to_thread(pty_device.read_available, 0.5)
                for _ in range(got.count(b"S\r\n")):
                    pty_device.write(mt_sics_line(75.0 + answered))
                    answered += 1
            await wait_until(lambda: len(r.readings) >= 3, 10, "three polled readings")
            # now the balance goes silent: polls stop piling up (one per reply timeout)
            await asyncio.to_thread(pty_device.read_available, 0.3)
            before = link.polls_sent
            silent = await asyncio.to_thread(pty_device.read_available, 1.5)
            assert 1 <= silent.count(b"S\r\n") <= 3
            assert link.polls_sent - before <= 3
        assert weights(r)[:3] == [75.0, 76.0, 77.0]
        assert all(e.kind is EventKind.TX and e.payload == b"S\r\n" for e in tx)
        assert len(tx) == link.polls_sent

    run(main)


# ---- opening: bytes kept, the port not shared (issue 14: "a restart loses what the kernel buffered") ----


class ClosedPty:
    """A pty whose device side nobody has open: the "scale" (the master) keeps writing, as a scale does
    while the daemon restarts; the kernel keeps what it wrote for the next opener."""

    def __init__(self) -> None:
        import tty

        self.master, slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        os.close(self.master)


@pytest.fixture
def closed_pty():  # type: ignore[no-untyped-def]
    dev = ClosedPty()
    yield dev
    dev.close()


def test_lines_written_while_nothing_has_the_port_open_are_read_once_the_link_opens(closed_pty: ClosedPty) -> None:
    """pyserial's open() flushes the input buffer; the link must not: a weighing sent while the daemon
    was down is still in the kernel's buffer, and is read, once, by the next opener."""

    async def main() -> None:
        closed_pty.write(tanita_line(weight_kg=61.5))  # before anything ever opened the port
        first = SerialLink(closed_pty.path, _tanita_settings())
        async with Run(first) as r1:
            await wait_until(lambda: r1.readings, 10, "the line written before the port was opened")
        assert weights(r1) == [61.5]
        # the "daemon" is gone (the port closed: its lock released); the scale sends two more weighings
        closed_pty.write(tanita_line(weight_kg=62.5) + tanita_line(weight_kg=63.5))
        second = SerialLink(closed_pty.path, _tanita_settings())
        async with Run(second) as r2:
            await wait_until(lambda: len(r2.readings) >= 2, 10, "the lines written while nothing had the port open")
            closed_pty.write(tanita_line(weight_kg=64.5))
            await wait_until(lambda: len(r2.readings) >= 3, 10, "a line written after the open")
        assert weights(r2) == [62.5, 63.5, 64.5]  # each exactly once, in order

    run(main)


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # what pyserial's exclusive=True does
print("held", flush=True)
sys.stdin.read()                                  # until the test closes our stdin
"""


def test_a_port_held_by_another_process_is_not_shared_and_the_error_names_it(closed_pty: ClosedPty) -> None:
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, closed_pty.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    states: list[tuple[str, str]] = []

    async def main() -> None:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        link = SerialLink(
            closed_pty.path, _tanita_settings(), reconnect_max_s=0.5, on_state=lambda s, d: states.append((s, d))
        )
        async with Run(link) as r:
            await wait_until(lambda: states, 10, "the first open attempt")
            closed_pty.write(tanita_line(weight_kg=70.5))  # sent while the other program has the port
            await wait_until(lambda: len(states) >= 3, 10, "a few retries")
            assert link.connects == 0 and link.state == "disconnected"
            state, detail = states[0]
            assert state == "disconnected"
            assert detail.startswith(f"{closed_pty.path}: the port is in use: pid {holder.pid} (python")
            assert "holds its lock" in detail and "retrying" in detail
            assert holder.stdin is not None
            holder.stdin.close()  # the other program lets go
            await asyncio.to_thread(holder.wait, 10)
            await wait_until(lambda: link.state == "connected", RECONNECT_DEADLINE_S, "the open once it is free")
            await wait_until(lambda: r.readings, 10, "the weighing sent while the port was held")
        assert weights(r) == [70.5]

    try:
        run(main)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(5)
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()


def test_two_links_on_one_port_the_second_waits_naming_this_process(closed_pty: ClosedPty) -> None:
    second_states: list[tuple[str, str]] = []

    async def main() -> None:
        first = SerialLink(closed_pty.path, _tanita_settings())
        second = SerialLink(closed_pty.path, _tanita_settings(), on_state=lambda s, d: second_states.append((s, d)))
        async with Run(first):
            await wait_until(lambda: first.state == "connected", 10, "the first link")
            async with Run(second):
                await wait_until(lambda: second_states, 10, "the second link's first attempt")
                assert second.connects == 0
        assert second_states[0][0] == "disconnected"
        assert f"pid {os.getpid()} (this process) holds its lock" in second_states[0][1]

    run(main)


# ---- a link that dies says why ------------------------------------------------------------------------


def test_an_unexpected_error_inside_events_ends_as_a_link_error_with_the_cause(closed_pty: ClosedPty) -> None:
    """Anything events() did not expect (here: the state callback raising) ends the stream as a
    LinkError that names the link, the exception type and where it was raised; the original is chained."""
    from drivers.errors import LinkError

    def on_state(state: str, detail: str) -> None:
        if state == "connected":
            raise RuntimeError("callback broke")

    async def main() -> None:
        link = SerialLink(closed_pty.path, _tanita_settings(), on_state=on_state)
        with pytest.raises(LinkError) as caught:
            async for _ in link.events():
                pass
        err = caught.value
        assert err.transient is False
        assert str(err).startswith(f"serial:{closed_pty.path}: stopped by an unexpected RuntimeError at test_")
        assert str(err).endswith(": callback broke")
        assert isinstance(err.__cause__, RuntimeError)
        again = SerialLink(closed_pty.path, _tanita_settings())  # the dead link closed the port: it is free
        async with Run(again):
            await wait_until(lambda: again.state == "connected", 10, "the port to be free again")

    run(main)


def test_a_poller_that_dies_ends_the_stream_with_the_cause(closed_pty: ClosedPty) -> None:
    """MT-SICS: a balance that is no longer polled sends nothing; a dead poller must not leave the link
    looking connected and silent."""
    from drivers.errors import LinkError

    spec = get("mt_sics")

    def on_tx(ev: LinkEvent) -> None:
        raise ValueError("tx hook broke")

    async def main() -> None:
        link = SerialLink(
            closed_pty.path, spec.serial or _tanita_settings(), poll_command=spec.poll_command, poll_interval_s=0.05,
            on_tx=on_tx,
        )
        with pytest.raises(LinkError) as caught:
            async for _ in link.events():
                pass
        assert "stopped by an unexpected ValueError" in str(caught.value)
        assert str(caught.value).endswith(": tx hook broke")
        assert link.polls_sent == 0

    run(main)
