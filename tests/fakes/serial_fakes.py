"""Fake serial devices for link-level tests: a pty (optionally behind a ``/dev/serial/by-id``-style
symlink that can be "unplugged" and "replugged"), a raw TCP device (``socket://``, like ser2net raw) and
an RFC 2217 server (``rfc2217://``, like ser2net telnet) built on pyserial's ``PortManager`` over a pty.

Everything listens on 127.0.0.1 only. Synthetic data only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import tty
from pathlib import Path

from drivers.tanita import checksum


def tanita_line(
    member_id: str = "0000000000000000",
    weight_kg: float = 80.0,
    fat_pct: float = 20.0,
    time_hhmm: str = "10:00",
    serial_no: str = "",
) -> bytes:
    sn = f'SN,"{serial_no}",' if serial_no else ""
    # the masses follow from the weight and fat %, as on a real analyser (a plausibility check would
    # park a fat-free mass above the weight)
    fat_kg = round(weight_kg * fat_pct / 100, 1)
    ffm_kg = round(weight_kg - fat_kg, 1)
    fields = (
        f'MO,"MC-780",{sn}ID,"{member_id}",St,0,Da,"22/11/2026",TI,"{time_hhmm}",Bt,0,GE,1,AG,36,'
        f"Hm,181.0,Wk,{weight_kg:.1f},FW,{fat_pct:.1f},fW,{fat_kg:.1f},MW,{ffm_kg:.1f},mW,{ffm_kg * 0.95:.1f},"
        f"wW,{ffm_kg * 0.73:.1f},MI,25.7,IF,9,"
    )
    body = "{0,16,~0,1,~1,1,~2,1," + fields
    return (body + "CS," + checksum(body.encode()) + "\r\n").encode()


def mt_sics_line(weight_kg: float) -> bytes:
    return f"S S {weight_kg:10.2f} kg\r\n".encode()


class PtyDevice:
    """A serial device on a pty. ``path`` is what the bridge opens: the slave itself, or a symlink
    (``/dev/serial/by-id``-style) that ``replug`` re-points at a fresh pty, as udev does."""

    def __init__(self, symlink: Path | None = None) -> None:
        self.symlink = symlink
        self.master = -1
        self.slave = -1
        self.slave_path = ""
        self.plug()

    @property
    def path(self) -> str:
        return str(self.symlink) if self.symlink is not None else self.slave_path

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self.master, self.slave, self.slave_path = master, slave, os.ttyname(slave)
        if self.symlink is not None:
            tmp = self.symlink.with_name(self.symlink.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.slave_path)
            os.replace(tmp, self.symlink)  # atomic, like udev re-creating the link

    def unplug(self) -> None:
        """The device goes away: the master closes (the reader sees EIO/EOF) and the by-id link vanishes."""
        if self.symlink is not None:
            with contextlib.suppress(FileNotFoundError):
                self.symlink.unlink()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self.slave = -1

    replug = plug

    def write(self, data: bytes, chunk: int = 0, pause_s: float = 0.0) -> None:
        if not chunk:
            os.write(self.master, data)
            return
        for i in range(0, len(data), chunk):
            os.write(self.master, data[i : i + chunk])
            if pause_s:
                time.sleep(pause_s)

    def read_available(self, timeout_s: float = 0.0) -> bytes:
        import select

        out = b""
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                return out
            try:
                out += os.read(self.master, 4096)
            except OSError:
                return out

    def close(self) -> None:
        self.unplug()


class TcpDevice:
    """A raw TCP serial server (ser2net raw mode): sends ``payload`` to each client. ``settle_s``: a
    pause after accept before the client counts as connected (0: the link flushes nothing on open)."""

    def __init__(self, settle_s: float = 0.0) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.settle_s = settle_s
        self.clients: list[socket.socket] = []
        self.accepted = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            time.sleep(self.settle_s)
            self.clients.append(conn)
            self.accepted.set()

    def send(self, data: bytes) -> None:
        assert self.accepted.wait(10), "no client connected"
        self.clients[-1].sendall(data)

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self.server.close()
        for c in self.clients:
            with contextlib.suppress(OSError):
                c.close()


class Rfc2217Server:
    """An RFC 2217 port server (what ``ser2net`` offers in telnet mode) over a pty, in threads, built
    like pyserial's examples/rfc2217_server.py: ``PortManager.filter`` strips telnet/RFC 2217 commands
    from the network side and applies them to the port; ``PortManager.escape`` quotes device data."""

    def __init__(self, device_path: str) -> None:
        import serial

        self.device_path = device_path
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.errors: list[str] = []
        self.connected = threading.Event()
        self.sessions = 0
        self._conn: socket.socket | None = None
        self._stop = threading.Event()
        self._serial_mod = serial
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.sessions += 1
            self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        """One client, until it leaves, ``drop()`` is called or the server closes."""
        import serial
        import serial.rfc2217

        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ser = _PtySerial(self.device_path, timeout=0.05)
        manager = serial.rfc2217.PortManager(ser, _SocketWriter(conn))
        self._conn = conn
        self.connected.set()
        ended = threading.Event()

        def device_to_net() -> None:
            while not (self._stop.is_set() or ended.is_set()):
                try:
                    data = ser.read(max(1, ser.in_waiting))
                except (OSError, serial.SerialException) as exc:
                    self.errors.append(f"read: {exc}")
                    return
                if data:
                    with contextlib.suppress(OSError):
                        conn.sendall(b"".join(manager.escape(data)))

        reader = threading.Thread(target=device_to_net, daemon=True)
        reader.start()
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(1024)
                except OSError:
                    break
                if not data:
                    break
                payload = b"".join(manager.filter(data))
                if payload:
                    ser.write(payload)
        finally:
            ended.set()
            reader.join(2)
            with contextlib.suppress(OSError):
                conn.close()
            ser.close()
            self._conn = None

    def drop(self) -> None:
        """The server side ends the current session (ser2net restarted, network cut)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.server.close()
        self._thread.join(3)


class _SocketWriter:
    """``PortManager`` writes its telnet replies through ``connection.write``."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self._conn.sendall(data)


def _pty_serial_class():  # type: ignore[no-untyped-def]
    import serial

    class PtySerial(serial.Serial):  # type: ignore[misc]
        """A pty has no modem lines: the client's DTR/RTS/BREAK requests are accepted and ignored."""

        def _update_dtr_state(self) -> None:
            pass

        def _update_rts_state(self) -> None:
            pass

        def _update_break_state(self) -> None:
            pass

        @property
        def cts(self) -> bool:
            return True

        @property
        def dsr(self) -> bool:
            return True

        @property
        def ri(self) -> bool:
            return False

        @property
        def cd(self) -> bool:
            return True

    return PtySerial


def _PtySerial(path: str, **kw):  # type: ignore[no-untyped-def]
    return _pty_serial_class()(path, **kw)
