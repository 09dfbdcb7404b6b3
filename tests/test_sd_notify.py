"""bridge.sd_notify against a real AF_UNIX datagram socket (path and abstract), as systemd listens."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import sd_notify
from bridge.sd_notify import Notifier


class Listener:
    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def recv(self) -> list[str]:
        data = self.sock.recv(4096)
        return data.decode().split("\n")

    def empty(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(2)
        return False


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[Listener]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield Listener(sock, str(path))


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"scale-bridge-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2)
        yield Listener(sock, "@" + name)


def test_ready_with_status_is_one_datagram(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    assert n.enabled
    assert n.ready("replaying capture")
    assert path_listener.recv() == ["READY=1", "STATUS=replaying capture"]


def test_abstract_socket(abstract_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": abstract_listener.env_value})
    assert n.ready()
    assert abstract_listener.recv() == ["READY=1"]


def test_status_newlines_cannot_inject_assignments(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    assert n.status("queue 3 pending\nREADY=1")
    assert path_listener.recv() == ["STATUS=queue 3 pending READY=1"]


def test_stopping_and_reloading(path_listener: Listener) -> None:
    n = Notifier({"NOTIFY_SOCKET": path_listener.env_value})
    assert n.stopping()
    assert path_listener.recv() == ["STOPPING=1"]
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = path_listener.recv()
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert n.extend_timeout(1.5)
    assert path_listener.recv() == ["EXTEND_TIMEOUT_USEC=1500000"]


def test_watchdog_ping_only_when_watchdog_applies(path_listener: Listener) -> None:
    env = {"NOTIFY_SOCKET": path_listener.env_value, "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier(env)
    assert n.watchdog_interval_s() == 20.0
    assert n.watchdog()
    assert path_listener.recv() == ["WATCHDOG=1"]

    other = Notifier({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval_s() is None
    assert not other.watchdog()
    assert path_listener.empty()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "500000"}, 0.5),  # no WATCHDOG_PID: applies to us
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "x"}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert Notifier(env).watchdog_interval_s() == expected


@pytest.mark.parametrize("value", ["", "@", "relative/path", "vsock:2:1234"])
def test_no_op_without_a_usable_socket(value: str) -> None:
    n = Notifier({"NOTIFY_SOCKET": value})
    assert not n.enabled
    assert not n.ready()
    assert not n.status("x")
    assert not n.stopping()
    assert not n.reloading()


def test_errors_never_raise(tmp_path: Path) -> None:
    # a path nobody listens on, a path that is not a socket, a path with a NUL byte
    (tmp_path / "file").write_text("")
    for value in (str(tmp_path / "missing"), str(tmp_path / "file"), str(tmp_path) + "/a\0b"):
        n = Notifier({"NOTIFY_SOCKET": value})
        assert n.ready() is False
        assert n.watchdog() is False


def test_module_functions_read_the_environment_at_call_time(
    path_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sd_notify.ready() is False
    assert sd_notify.watchdog_interval_s() is None

    monkeypatch.setenv("NOTIFY_SOCKET", path_listener.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd_notify.ready()
    assert sd_notify.status("up")
    assert sd_notify.watchdog()
    assert sd_notify.stopping()
    assert sd_notify.watchdog_interval_s() == 3.0
    got = [path_listener.recv() for _ in range(4)]
    assert got == [["READY=1"], ["STATUS=up"], ["WATCHDOG=1"], ["STOPPING=1"]]
