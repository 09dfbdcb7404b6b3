"""``scale-bridge scan --serial``: listing (by-id links, USB ids) and ``--probe``/``--port`` against a pty
fed with Tanita lines and with an MT-SICS balance that answers polls. In process (``bridge.cli.main``)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.commands import _scan_serial as scan_serial
from tests.fakes.serial_fakes import PtyDevice, mt_sics_line, tanita_line


class Feeder(threading.Thread):
    """Plays a scale on the pty master: Tanita lines every 0.2 s, or an MT-SICS balance answering ``S``."""

    def __init__(self, dev: PtyDevice, kind: str) -> None:
        super().__init__(daemon=True)
        self.dev, self.kind = dev, kind
        self.stop = threading.Event()
        self.received = b""

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            got = self.dev.read_available(0.2)
            self.received += got
            if self.kind == "tanita":
                self.dev.write(tanita_line(weight_kg=80.0 + n / 10))
                n += 1
            else:
                for _ in range(got.count(b"S\r\n")):
                    self.dev.write(mt_sics_line(75.0 + n))
                    n += 1


@pytest.fixture
def fed_pty(request: pytest.FixtureRequest) -> Iterator[tuple[PtyDevice, Feeder]]:
    dev = PtyDevice()
    feeder = Feeder(dev, request.param)
    feeder.start()
    yield dev, feeder
    feeder.stop.set()
    feeder.join(2)
    dev.close()


def scan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["scan", "--serial", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_probe_recognises_tanita(fed_pty: tuple[PtyDevice, Feeder], capsys: pytest.CaptureFixture[str]) -> None:
    dev, _ = fed_pty
    (row,) = scan_json(capsys, "--port", dev.slave_path, "--seconds", "0.8")["serial"]
    probe = row["probe"]
    assert probe["driver"] == "tanita" and probe["recognised"] == ["tanita"]
    assert probe["drivers"]["tanita"]["weighings"] >= 2 and probe["drivers"]["tanita"]["rejected"] == 0
    assert probe["drivers"]["mt_sics"]["readings"] == 0 and probe["drivers"]["tanita_bc418"]["readings"] == 0


@pytest.mark.parametrize("fed_pty", ["mt_sics"], indirect=True)
def test_probe_polls_and_recognises_mt_sics(
    fed_pty: tuple[PtyDevice, Feeder], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, feeder = fed_pty
    assert main(["scan", "--serial", "--port", dev.slave_path, "--seconds", "1.2"]) == 0
    text = capsys.readouterr().out
    assert "-> recognised: mt_sics" in text
    assert b"S\r\n" in feeder.received  # the probe polled: a balance that only answers polls is found
    lines = text.splitlines()
    assert lines[0] == dev.slave_path
    assert any("mt_sics" in line and "reading(s)" in line for line in lines[1:])


def test_probe_of_a_port_that_cannot_be_opened_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # a device that is not there is missing input (66, README), not an unavailable service
    assert main(["scan", "--serial", "--port", "/dev/does-not-exist", "--seconds", "0.2"]) == 66
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "no such device" in err


def test_listing_shows_by_id_links_usb_ids_and_unopenable_ports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from serial.tools import list_ports
    from serial.tools.list_ports_common import ListPortInfo

    dev = PtyDevice()
    try:
        usb = ListPortInfo(dev.slave_path, skip_link_detection=True)
        usb.vid, usb.pid, usb.serial_number = 0x0403, 0x6001, "A50285BI"
        usb.manufacturer, usb.product = "FTDI", "FT232R USB UART"
        gone = ListPortInfo("/dev/ttyUSB-gone", skip_link_detection=True)
        monkeypatch.setattr(list_ports, "comports", lambda: [usb, gone])
        by_id = tmp_path / "by-id"
        by_id.mkdir()
        link = by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
        link.symlink_to(dev.slave_path)
        monkeypatch.setattr(scan_serial, "SERIAL_BY_ID_DIR", str(by_id))

        rows = {r["device"]: r for r in scan_json(capsys)["serial"]}
        assert rows[dev.slave_path]["by_id"] == str(link)
        assert (rows[dev.slave_path]["vid"], rows[dev.slave_path]["pid"]) == ("0403", "6001")
        assert rows[dev.slave_path]["serial_number"] == "A50285BI"
        assert rows["/dev/ttyUSB-gone"]["by_id"] is None

        # --probe on the listing: the port that is gone is reported on its own line, the others still probed
        assert main(["scan", "--serial", "--probe", "--seconds", "0.2"]) == 0
        out = capsys.readouterr().out.splitlines()
        gone_line = next(line for line in out if line.startswith("/dev/ttyUSB-gone"))
        assert "probe: /dev/ttyUSB-gone: no such device" in gone_line
        first = next(line for line in out if line.startswith(dev.slave_path))
        assert f"by-id {link}" in first and "0403:6001" in first and "serial A50285BI" in first
        assert any("-> recognised: none" in line for line in out)  # nothing was sent on the pty
    finally:
        dev.close()


# -- for the installer on site (installer audit I12): the prompt, the countdown, the [scale] snippet ----


def _groups() -> list[tuple[str, list[str]]]:
    """(label, driver names) per serial setting the probe listens with, from the real registry."""
    from drivers.registry import LinkKind, SerialSettings, registry

    groups: dict[str, list[str]] = {}
    for spec in registry().values():
        if spec.link is LinkKind.SERIAL:
            s = spec.serial or SerialSettings()
            groups.setdefault(f"{s.baudrate} {s.bytesize}{s.parity}{s.stopbits:g}", []).append(spec.name)
    return list(groups.items())


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge", "scan", "--serial", *args]


@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_probe_on_a_pipe_prompts_first_then_one_line_per_setting(fed_pty: tuple[PtyDevice, Feeder]) -> None:
    dev, _ = fed_pty
    env = {k: v for k, v in os.environ.items() if k != "SCALE_BRIDGE_CONFIG"}
    proc = subprocess.run(
        _cli("--port", dev.slave_path, "--seconds", "0.5"),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    groups = _groups()
    assert len(groups) > 1
    err = proc.stderr.splitlines()
    assert err[0] == (
        f"listening on {dev.slave_path} for 0.5 s per setting ({len(groups)} settings, {0.5 * len(groups):g} s in "
        "all): step on the scale now (or press PRINT on it)"
    )
    # one line per setting as it starts, in the order probed, and no terminal control codes on a pipe
    assert err[1:] == [f"  {label} ({', '.join(names)}): listening 0.5 s ..." for label, names in groups]
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    assert "-> recognised: tanita" in proc.stdout and "listening" not in proc.stdout


@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_probe_json_keeps_stdout_machine_readable(fed_pty: tuple[PtyDevice, Feeder]) -> None:
    dev, _ = fed_pty
    proc = subprocess.run(
        _cli("--json", "--port", dev.slave_path, "--seconds", "0.4"),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)["serial"]
    assert row["probe"]["config"] == {"driver": "tanita", "port": dev.slave_path}  # no by-id link for a pty
    assert row["by_id"] is None
    assert proc.stderr.startswith(f"listening on {dev.slave_path} ")  # the person still needs the prompt


@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_probe_on_a_terminal_counts_down_in_place(fed_pty: tuple[PtyDevice, Feeder]) -> None:
    dev, _ = fed_pty
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            _cli("--port", dev.slave_path, "--seconds", "1.5"), stdout=subprocess.PIPE, stderr=slave, text=True
        )
        os.close(slave)
        slave = -1
        seen = b""
        while True:  # until the child closes its end (EIO on Linux)
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert proc.returncode == 0
    assert "-> recognised: tanita" in out
    text = seen.decode()
    assert text.startswith(f"listening on {dev.slave_path} for 1.5 s per setting")
    for label, names in _groups():
        group = f"  {label} ({', '.join(names)})"
        # drawn over itself (carriage return + erase line), then replaced by a line of its own
        assert f"\r\x1b[K{group}: 2 s left ..." in text
        assert f"\r\x1b[K{group}: listened 1.5 s\r\n" in text
        assert f"{group}: listening" not in text  # the pipe's line is not printed on a terminal


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_countdown_follows_the_probe_clock(fed_pty: tuple[PtyDevice, Feeder]) -> None:
    dev, _ = fed_pty
    now = [100.0]

    def clock() -> float:  # the probe's only clock: each read of it moves 0.25 s on, so no waiting
        now[0] += 0.25
        return now[0]

    out = TtyBuffer()
    probe = scan_serial.probe_port(dev.slave_path, 3.0, countdown=scan_serial.Countdown(out), clock=clock)
    assert probe["error"] is None
    for label, names in _groups():
        group = f"  {label} ({', '.join(names)})"
        draws = [line.split(": ")[-1] for line in out.getvalue().split("\r\x1b[K") if line.startswith(group)]
        assert draws == ["3 s left ...", "2 s left ...", "1 s left ...", "listened 3 s\n"]


@pytest.mark.parametrize("given", ["device", "by-id link"])
@pytest.mark.parametrize("fed_pty", ["tanita"], indirect=True)
def test_snippet_names_the_by_id_link_and_loads_through_the_config_loader(
    given: str,
    fed_pty: tuple[PtyDevice, Feeder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bridge.config import load

    dev, _ = fed_pty
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    link = by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    link.symlink_to(dev.slave_path)
    monkeypatch.setattr(scan_serial, "SERIAL_BY_ID_DIR", str(by_id))
    monkeypatch.delenv("SCALE_BRIDGE_CONFIG", raising=False)
    port = dev.slave_path if given == "device" else str(link)

    assert main(["scan", "--serial", "--port", port, "--seconds", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{port}  by-id {link}" if given == "device" else port)
    start = lines.index("    put this in /etc/scale-bridge/config.toml:")
    assert lines[start - 1] == "    -> recognised: tanita"
    snippet = "\n".join(lines[start + 1 :])
    assert dev.slave_path not in snippet  # never the bare device when a by-id link points to it
    assert tomllib.loads(snippet) == {"scale": {"driver": "tanita", "port": str(link)}}

    # pasted under a minimal [platform], it is a config the daemon accepts
    config = tmp_path / "config.toml"
    config.write_text('[platform]\nbase_url = "https://mygym.open-api.perfectgym.com"\n\n' + snippet + "\n")
    (tmp_path / "api_key").write_text("k" * 32 + "\n")
    cfg = load(config, env={"CREDENTIALS_DIRECTORY": str(tmp_path)}).config
    assert (cfg.scale.driver, cfg.scale.port) == ("tanita", str(link))
    assert cfg.scale.baudrate is None  # the driver's default (9600 8N1), which is what decoded

    assert main(["scan", "--serial", "--json", "--port", port, "--seconds", "0.4"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["serial"]
    assert row["by_id"] == str(link) and row["probe"]["config"] == {"driver": "tanita", "port": str(link)}


def test_no_snippet_when_nothing_was_recognised(capsys: pytest.CaptureFixture[str]) -> None:
    dev = PtyDevice()  # a port where nobody talks
    try:
        assert main(["scan", "--serial", "--json", "--port", dev.slave_path, "--seconds", "0.2"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["serial"]
        assert row["probe"]["driver"] is None and row["probe"]["config"] is None
        assert main(["scan", "--serial", "--port", dev.slave_path, "--seconds", "0.2"]) == 0
        out = capsys.readouterr().out
        assert "-> recognised: none" in out and "put this in" not in out and "[scale]" not in out
    finally:
        dev.close()
