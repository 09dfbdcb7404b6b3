"""``scale-bridge scan --serial``: the serial part of ``scan`` (registered in :mod:`bridge.commands.scan`).

List serial ports (device, the ``/dev/serial/by-id`` link that points to it, USB vendor/product ids and
names, serial number). With ``--probe`` listen on each listed port (or only on ``--port URL``: a device
path, ``socket://`` or ``rfc2217://``) for ``--seconds`` per distinct serial setting among the
registered serial drivers, feeding what arrives to every driver with that setting (polling drivers,
MT-SICS, get their poll command sent), and say which driver recognised the traffic (valid readings /
device reports / rejected frames per driver). A port that cannot be opened is reported on its line;
``--port`` that cannot be opened is one line on stderr and exit 69.

For the person at the scale, on stderr (``--json`` too: stdout stays machine output): before a port
is probed, one line saying what is about to happen and what to do now (step on the scale); then one
line per serial setting as it starts, and on a terminal a countdown on that line (``bridge.logs.
BarStream``), driven by the probe's own read loop (no sleeps of its own).

A recognised driver comes with a ready-to-paste ``[scale]`` snippet (``probe["config"]`` in JSON):
``driver`` and ``port``, the port being the by-id link when one points to the device (a name that
survives replugging), or the name given to ``--port`` when that is itself a link (a udev rule's
``/dev/scale-bridge/scale``). No ``baudrate``/``parity``/... keys: the probe only listens with each
driver's own default setting, so the setting that decoded is always the driver's default, and an
explicit copy would only pin today's default in the site's config.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from drivers.errors import LinkError

#: where udev puts stable names for USB serial adapters (a module constant so tests can point it elsewhere)
SERIAL_BY_ID_DIR = "/dev/serial/by-id"


def _by_id_links() -> dict[str, list[str]]:
    from pathlib import Path

    links: dict[str, list[str]] = {}
    folder = Path(SERIAL_BY_ID_DIR)
    if folder.is_dir():
        for link in sorted(folder.iterdir()):
            links.setdefault(os.path.realpath(link), []).append(str(link))
    return links


def by_id_link(port: str) -> str | None:
    """The by-id link for ``port`` (a device path or a link to one): ``port`` itself when it is one."""
    if "://" in port:
        return None
    links = _by_id_links().get(os.path.realpath(port), [])
    if port in links:
        return port
    return links[0] if links else None


def config_port(device: str, by_id: str | None) -> str:
    """The ``port`` to put in the config: the by-id link rather than a bare ``/dev/ttyUSB0``, but a
    name given that is itself a link (by-id, or a udev rule's own name) as given."""
    if by_id is None or "://" in device or os.path.realpath(device) != device:
        return device
    return by_id


def list_serial_ports() -> list[dict[str, Any]]:
    from serial.tools import list_ports

    by_id = _by_id_links()
    rows = []
    for info in sorted(list_ports.comports(), key=lambda i: i.device):
        links = by_id.get(os.path.realpath(info.device), [])
        rows.append(
            {
                "device": info.device,
                "by_id": links[0] if links else None,
                "vid": f"{info.vid:04x}" if info.vid is not None else None,
                "pid": f"{info.pid:04x}" if info.pid is not None else None,
                "manufacturer": info.manufacturer,
                "product": info.product,
                "serial_number": info.serial_number,
                "description": None if info.description in (None, "n/a") else info.description,
            }
        )
    return rows


# -- what the person at the scale sees (stderr) ------------------------------------------------------


def _label(settings: Any) -> str:
    return f"{settings.baudrate} {settings.bytesize}{settings.parity}{settings.stopbits:g}"


class Countdown:
    """The probe's lines on stderr: the prompt per port, a line per serial setting, and on a terminal
    the seconds left on that line. ``tick(remaining_s)`` is called by the read loop; it redraws only
    when the whole number of seconds changes."""

    def __init__(self, out: TextIO) -> None:
        from ..logs import BarStream

        self._bar = BarStream(out) if out.isatty() else None
        self._out = out
        self._group = ""
        self._shown = -1

    def prompt(self, url: str, seconds: float, settings: int) -> None:
        many = f"{settings} settings, {seconds * settings:g} s in all" if settings > 1 else "1 setting"
        self._out.write(
            f"listening on {url} for {seconds:g} s per setting ({many}): step on the scale now (or press PRINT on it)\n"
        )
        self._out.flush()

    def begin(self, group: str, seconds: float) -> None:
        self._group, self._shown = group, -1
        if self._bar is None:
            self._out.write(f"  {group}: listening {seconds:g} s ...\n")
            self._out.flush()
        else:
            self.tick(seconds)

    def tick(self, remaining_s: float) -> None:
        left = max(0, math.ceil(remaining_s))
        if self._bar is not None and left != self._shown:
            self._shown = left
            self._bar.bar(f"  {self._group}: {left} s left ...")

    def end(self, seconds: float) -> None:
        if self._bar is not None:
            self._bar.done(f"  {self._group}: listened {seconds:g} s")


# -- the probe ---------------------------------------------------------------------------------------


def _serial_groups() -> dict[Any, list[Any]]:
    """Registered serial drivers by their serial setting (one listen per distinct setting)."""
    from drivers.registry import LinkKind, SerialSettings, registry

    groups: dict[SerialSettings, list[Any]] = {}
    for spec in registry().values():
        if spec.link is LinkKind.SERIAL:
            groups.setdefault(spec.serial or SerialSettings(), []).append(spec)
    return groups


def probe_port(
    url: str,
    seconds: float,
    *,
    countdown: Countdown | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Listen on ``url`` with each distinct serial setting of the registered serial drivers."""
    groups = _serial_groups()
    if countdown is not None:
        countdown.prompt(url, seconds, len(groups))
    result: dict[str, Any] = {"port": url, "error": None, "drivers": {}, "settings": []}
    for settings, specs in groups.items():
        label = _label(settings)
        try:
            counts = _listen(url, settings, specs, seconds, countdown=countdown, clock=clock)
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            result["error"] = f"cannot open: {exc}"
            break
        result["settings"].append({"settings": label, "drivers": [s.name for s in specs]})
        result["drivers"].update(counts)
    drivers = result["drivers"]
    recognised = [
        name for name, c in drivers.items() if c["readings"] > 0 or (c["reports"] > 0 and c["reports"] >= c["rejected"])
    ]
    recognised.sort(key=lambda n: (-drivers[n]["readings"], -drivers[n]["reports"], drivers[n]["rejected"]))
    result["recognised"] = recognised
    result["driver"] = recognised[0] if recognised else None
    return result


def _listen(
    url: str,
    settings: Any,
    specs: list[Any],
    seconds: float,
    *,
    countdown: Countdown | None,
    clock: Callable[[], float],
) -> dict[str, dict[str, int]]:
    import serial

    decoders = {s.name: (s.make_framer(), s.new_decoder()) for s in specs}
    counts = {s.name: {"readings": 0, "weighings": 0, "reports": 0, "rejected": 0, "bytes": 0} for s in specs}
    polls = [(s.poll_command, s.poll_interval_s) for s in specs if s.poll_command]
    ser = serial.serial_for_url(
        url,
        baudrate=settings.baudrate,
        bytesize=settings.bytesize,
        parity=settings.parity,
        stopbits=settings.stopbits,
        xonxoff=settings.xonxoff,
        rtscts=settings.rtscts,
        timeout=0.05,
    )
    try:
        if countdown is not None:
            countdown.begin(f"{_label(settings)} ({', '.join(s.name for s in specs)})", seconds)
        start = clock()
        next_poll = [start] * len(polls)
        while (now := clock()) - start < seconds:
            if countdown is not None:
                countdown.tick(seconds - (now - start))
            for i, (command, interval) in enumerate(polls):
                if now >= next_poll[i]:
                    ser.write(command)
                    next_poll[i] = now + interval
            data = ser.read(max(1, ser.in_waiting))
            if data:
                _feed(data, decoders, counts)
        if countdown is not None:
            countdown.end(seconds)
    finally:
        ser.close()
    for name, (framer, _) in decoders.items():
        counts[name]["discarded_bytes"] = framer.discarded_bytes  # over-long runs without a line end
    return counts


def _feed(data: bytes, decoders: dict[str, Any], counts: dict[str, dict[str, int]]) -> None:
    from drivers.errors import FrameError
    from drivers.model import DeviceReport

    for name, (framer, decoder) in decoders.items():
        c = counts[name]
        c["bytes"] += len(data)
        for frame in framer.feed(data):
            try:
                results = decoder.decode(frame, "")
            except FrameError:
                c["rejected"] += 1
                continue
            for r in results:
                if isinstance(r, DeviceReport):
                    c["reports"] += 1
                else:
                    c["readings"] += 1
                    c["weighings"] += int(r.is_weighing)


def _with_config(probe: dict[str, Any], port: str) -> dict[str, Any]:
    """The probe with its ``[scale]`` snippet as data (``None`` when no driver was recognised)."""
    probe["config"] = {"driver": probe["driver"], "port": port} if probe.get("driver") else None
    return probe


def scan_serial_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    seconds = getattr(args, "seconds", 3.0)
    if seconds <= 0:
        raise LinkError("--seconds must be positive", transient=False)
    port = getattr(args, "port", None)
    countdown = Countdown(sys.stderr)
    if port:
        from ..portcheck import check_port

        check_port(port)  # 66 if it does not exist, 69 if the daemon reads it
        probe = probe_port(port, seconds, countdown=countdown)
        if probe["error"]:
            raise LinkError(f"{port}: {probe['error']}", transient=False)
        by_id = by_id_link(port)
        return [{"device": port, "by_id": by_id, "probe": _with_config(probe, config_port(port, by_id))}]
    rows = list_serial_ports()
    if getattr(args, "probe", False):
        from ..portcheck import PortBusy, PortMissing, check_port

        for row in rows:
            url = row["by_id"] or row["device"]
            try:
                check_port(url)
            except (PortBusy, PortMissing) as exc:
                row["probe"] = {
                    "port": url,
                    "error": str(exc),
                    "drivers": {},
                    "settings": [],
                    "recognised": [],
                    "driver": None,
                    "config": None,
                }
                continue
            row["probe"] = _with_config(probe_port(url, seconds, countdown=countdown), url)
    return rows


# -- text view -----------------------------------------------------------------------------------------


def format_serial(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no serial ports found (USB adapter plugged in? `dmesg | tail` shows it; docs/serial.md)"]
    lines = []
    for r in rows:
        probe = r.get("probe")
        lines.append(_port_line(r, probe))
        if probe is not None and not probe["error"]:
            lines += _probe_lines(probe)
    return lines


def _port_line(r: dict[str, Any], probe: dict[str, Any] | None) -> str:
    """The port: device, by-id link, USB ids, names, serial number, a probe's error."""
    ids = f"{r['vid']}:{r['pid']}" if r.get("vid") else ""
    names = " ".join(x for x in (r.get("manufacturer"), r.get("product") or r.get("description")) if x)
    parts = [r["device"]]
    if r.get("by_id") and r["by_id"] != r["device"]:
        parts.append(f"by-id {r['by_id']}")
    parts += [x for x in (ids, names) if x]
    if r.get("serial_number"):
        parts.append(f"serial {r['serial_number']}")
    if probe is not None and probe["error"]:
        parts.append(f"probe: {probe['error']}")
    return "  ".join(parts)


def _probe_lines(probe: dict[str, Any]) -> list[str]:
    """What each group of port settings decoded, the verdict, and the snippet for the config."""
    lines = []
    decoded = ""
    for group in probe["settings"]:
        counts = "; ".join(_count_text(name, probe["drivers"][name]) for name in group["drivers"])
        lines.append(f"    {group['settings']}: {counts}")
        if probe["driver"] in group["drivers"]:
            decoded = group["settings"]
    verdict = probe["driver"] or "none (no valid frame: wrong settings, or the scale sent nothing)"
    lines.append(f"    -> recognised: {verdict}")
    if probe.get("config"):
        lines += ["    " + line for line in scale_snippet(probe["config"], decoded)]
    return lines


def scale_snippet(config: dict[str, str], decoded: str) -> list[str]:
    """``put this in CONFIG:`` and a ``[scale]`` table that loads as it is (tests parse it)."""
    from ..cli import default_config
    from .config import toml_value

    lines = [f"put this in {default_config()}:", "[scale]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in config.items()]
    if decoded:
        lines.append(f"# {decoded} is {config['driver']}'s default setting: no baudrate/parity/... keys needed")
    return lines


def _count_text(name: str, c: dict[str, int]) -> str:
    text = f"{name} {c['readings']} reading(s), {c['reports']} report(s), {c['rejected']} rejected"
    return text + (f", {c['discarded_bytes']} bytes unframed" if c.get("discarded_bytes") else "")
