"""``scale-bridge scan --serial``: listing (by-id links, USB ids) and ``--probe``/``--port`` against a pty
fed with Tanita lines and with an MT-SICS balance that answers polls. In process (``bridge.cli.main``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.commands import scan_serial
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
