"""``scale-bridge scan``: find scales (and readers) the bridge could use.

``--ble``: listen for BLE advertisements for ``--duration`` seconds and print one line per device
heard, strongest first: name (or ``-``), address, RSSI, and the driver that recognises it (or ``-``).
``--json`` prints one JSON object keyed by what was scanned (``{"ble": [{...}, ...]}``) instead.
If Bluetooth is unusable (no system bus, BlueZ not running, no adapter, no "central" role, access
denied) the reason is one line on stderr and the exit code is 69 (EX_UNAVAILABLE).

``--cards``: wait for card taps on a reader (``--source evdev:/dev/input/...``, ``serial:URL``,
``socket:PATH`` or ``stdin``; default: the config's ``[cards]`` source) and print, for each tap, what
the reader sent, every reader format that text can be read in, the card in every format and the
platform query per ``[cards] format`` / ``byte_order`` (docs/cards.md). Stops after ``--timeout``
seconds or ``--count`` taps. Interactive kinds (cards) run only when asked for by flag.

``--serial``: list serial ports (device, the ``/dev/serial/by-id`` link that points to it, USB
vendor/product ids and names, serial number). With ``--probe`` listen on each listed port (or only on
``--port URL``: a device path, ``socket://`` or ``rfc2217://``) for ``--seconds`` per distinct serial
setting among the registered serial drivers, feeding what arrives to every driver with that setting
(polling drivers, MT-SICS, get their poll command sent), and say which driver recognised the traffic
(valid readings / device reports / rejected frames per driver). A port that cannot be opened is
reported on its line; ``--port`` that cannot be opened is one line on stderr and exit 69.

Other kinds of scan add their own flag and branch here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from drivers.errors import LinkError
from drivers.links.cards import CARD_SOURCES

from ..errors import EX_UNAVAILABLE, BridgeError, UsageError

#: scan kind -> function(args) -> list of JSON-able dicts (prints nothing itself)
SCANNERS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {}
#: scan kind -> function(rows) -> text lines for humans
FORMATTERS: dict[str, Callable[[list[dict[str, Any]]], list[str]]] = {}
#: kinds that wait for a person (card taps): never part of a plain ``scan``
INTERACTIVE: set[str] = set()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scan", help="list scales the bridge can see (--ble: Bluetooth LE advertisements)")
    p.add_argument("--ble", action="store_true", help="scan for Bluetooth LE devices")
    p.add_argument("--duration", type=float, default=8.0, metavar="S", help="BLE: seconds to listen (default 8)")
    p.add_argument("--adapter", default=None, metavar="HCI", help="BLE: adapter to use, e.g. hci1 (default: first)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cards", action="store_true", help="wait for card taps and show the card in every format")
    p.add_argument(
        "--source",
        default=None,
        metavar="SRC",
        help="cards: evdev:/dev/input/..., serial:URL, socket:PATH or stdin (default: the config's [cards])",
    )
    p.add_argument("--protocol", default=None, choices=("rdm6300", "binary"), help="cards: serial reader protocol")
    p.add_argument("--baudrate", type=int, default=None, help="cards: serial baud rate (default 9600)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="cards: stop after S seconds (default 60)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="cards: stop after N taps (default: no limit)")
    p.add_argument("--config", "-c", default=None, metavar="FILE", help="cards: config file for the default source")
    p.add_argument("--serial", action="store_true", help="list serial ports (with --probe: which driver talks there)")
    p.add_argument("--probe", action="store_true", help="serial: listen on each port with every serial driver")
    p.add_argument("--port", default=None, metavar="URL", help="serial: probe only this pyserial URL (implies --probe)")
    p.add_argument(
        "--seconds",
        type=float,
        default=3.0,
        metavar="S",
        help="serial: seconds to listen per serial setting when probing (default 3)",
    )
    p.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    kinds = [kind for kind in SCANNERS if getattr(args, kind, False)] or [k for k in SCANNERS if k not in INTERACTIVE]
    results: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        try:
            results[kind] = SCANNERS[kind](args)
        except LinkError as exc:
            print(f"scale-bridge: scan --{kind}: {exc}", file=sys.stderr)
            return EX_UNAVAILABLE
    if args.json:
        print(json.dumps(results, separators=(",", ":")))
        return 0
    for kind in kinds:
        for line in FORMATTERS[kind](results[kind]):
            print(line)
    return 0


# -- BLE -----------------------------------------------------------------------------------------------


def scan_ble_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    try:
        from drivers.links.ble import scan_ble
    except ImportError as exc:  # bleak is a Linux-only dependency
        raise LinkError(f"BLE support is not installed ({exc})", transient=False) from None
    if args.duration <= 0:
        raise LinkError("--duration must be positive", transient=False)

    async def run() -> list[dict[str, Any]]:
        try:
            found = await asyncio.wait_for(scan_ble(args.duration, args.adapter), args.duration + 20)
        except TimeoutError:
            raise LinkError("timed out talking to BlueZ", transient=False) from None
        return [asdict(r) for r in found]

    return asyncio.run(run())


def format_ble(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no BLE devices heard (is the scale awake? step on it during the scan)"]
    width = max(len(r["name"] or "-") for r in rows)
    lines = []
    for r in rows:
        rssi = f"{r['rssi']} dBm" if r["rssi"] is not None else "?"
        lines.append(f"{(r['name'] or '-'):<{width}}  {r['address']}  {rssi:>8}  {r['driver'] or '-'}")
    return lines


SCANNERS["ble"] = scan_ble_rows
FORMATTERS["ble"] = format_ble


# -- cards ---------------------------------------------------------------------------------------------


def _card_source_spec(args: argparse.Namespace) -> tuple[str, str, str, int]:
    """(source, device, protocol, baudrate) from --source, else from the config's [cards]."""
    protocol, baudrate = args.protocol, args.baudrate
    if args.source:
        kind, _, device = args.source.partition(":")
        if kind not in ("evdev", "serial", "socket", "stdin"):
            raise UsageError(f"--source {args.source!r}: use evdev:PATH, serial:URL, socket:PATH or stdin")
        if kind == "evdev" and not device:
            raise UsageError(_evdev_hint())
        if kind in ("evdev", "serial"):
            from ..portcheck import check_device

            check_device(device, what="card reader")
        return kind, device, protocol or "rdm6300", baudrate or 9600
    from ..cli import default_config
    from ..config import load_config

    path = args.config or default_config()
    try:
        cfg = load_config(path)
    except (OSError, BridgeError) as exc:
        raise LinkError(f"no --source given and no usable config ({path}: {exc})", transient=False) from None
    c = cfg.cards
    if not c.has_reader:
        raise LinkError(f'the config has no card reader (cards.source = "{c.source}"); give --source', transient=False)
    if CARD_SOURCES[str(c.source)].device_file:  # has_reader: a kind of the table
        from ..portcheck import check_device

        check_device(c.device, what="card reader")
    return c.source, c.device, protocol or c.protocol, baudrate or c.baudrate


def _evdev_hint() -> str:
    import glob

    found = sorted(glob.glob("/dev/input/by-id/*-event-kbd"))
    listed = ", ".join(found) if found else "none found under /dev/input/by-id"
    return f"--source evdev:PATH needs the reader's event device (keyboards: {listed})"


def format_tap(row: dict[str, Any]) -> list[str]:
    lines = [f"tap {row['tap']}  {row['source']} sent {row['text']!r}"]
    if not row["interpretations"]:
        lines.append("  not a card number in any known format (docs/cards.md)")
    for it in row["interpretations"]:
        uid = it["uid"]
        lines.append(f"  as {it['format']}: card ID {uid} ({len(uid) // 2} bytes)")
        lines.append("      " + " · ".join(f"{f} {text}" for f, text in it["renderings"].items()))
        queries = " · ".join(
            f'byte_order="{order}" -> {number} ({fmt})' for order, (number, fmt) in it["platform"].items()
        )
        lines.append(f'      platform with format="{it["format"]}": {queries}')
    return lines


def scan_card_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    from drivers.cards.explain import explain
    from drivers.links.cards import from_config

    if args.timeout <= 0:
        raise LinkError("--timeout must be positive", transient=False)
    source, device, protocol, baudrate = _card_source_spec(args)
    link = from_config(source, device, protocol=protocol, baudrate=baudrate)
    rows: list[dict[str, Any]] = []
    if not args.json:
        print(f"waiting for cards on {link.name} for {args.timeout:g} s (Ctrl-C to stop) ...", flush=True)

    async def run() -> None:
        events = link.events()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout
        try:
            while not args.count or len(rows) < args.count:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(anext(events), remaining)
                except (TimeoutError, StopAsyncIteration):
                    break
                text = ev.payload.decode("ascii", "replace")
                row = {
                    "tap": len(rows) + 1,
                    "source": link.name,
                    "received_at": ev.received_at.isoformat(),
                    "text": text,
                    "interpretations": [i.to_json() for i in explain(text)],
                }
                rows.append(row)
                if not args.json:
                    print("\n".join(format_tap(row)), flush=True)
        finally:
            await link.close()
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    asyncio.run(run())
    return rows


def format_cards(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no card read (is it the right device? does the reader beep? docs/cards.md)"]
    return [
        f"{len(rows)} tap(s). Find the number your platform shows for this member above: "
        "its line gives [cards] format and byte_order."
    ]


SCANNERS["cards"] = scan_card_rows
FORMATTERS["cards"] = format_cards
INTERACTIVE.add("cards")


# -- serial --------------------------------------------------------------------------------------------

#: where udev puts stable names for USB serial adapters (a module constant so tests can point it elsewhere)
SERIAL_BY_ID_DIR = "/dev/serial/by-id"


def _by_id_links() -> dict[str, list[str]]:
    import os
    from pathlib import Path

    links: dict[str, list[str]] = {}
    folder = Path(SERIAL_BY_ID_DIR)
    if folder.is_dir():
        for link in sorted(folder.iterdir()):
            links.setdefault(os.path.realpath(link), []).append(str(link))
    return links


def list_serial_ports() -> list[dict[str, Any]]:
    import os

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


def probe_port(url: str, seconds: float) -> dict[str, Any]:
    """Listen on ``url`` with each distinct serial setting of the registered serial drivers."""
    from drivers.registry import LinkKind, SerialSettings, registry

    groups: dict[SerialSettings, list[Any]] = {}
    for spec in registry().values():
        if spec.link is LinkKind.SERIAL:
            groups.setdefault(spec.serial or SerialSettings(), []).append(spec)
    result: dict[str, Any] = {"port": url, "error": None, "drivers": {}, "settings": []}
    for settings, specs in groups.items():
        label = f"{settings.baudrate} {settings.bytesize}{settings.parity}{settings.stopbits:g}"
        try:
            counts = _listen(url, settings, specs, seconds)
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


def _listen(url: str, settings: Any, specs: list[Any], seconds: float) -> dict[str, dict[str, int]]:
    import time

    import serial

    from drivers.errors import FrameError
    from drivers.model import DeviceReport

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
        start = time.monotonic()
        next_poll = [start] * len(polls)
        while (now := time.monotonic()) - start < seconds:
            for i, (command, interval) in enumerate(polls):
                if now >= next_poll[i]:
                    ser.write(command)
                    next_poll[i] = now + interval
            data = ser.read(max(1, ser.in_waiting))
            if not data:
                continue
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
    finally:
        ser.close()
    for name, (framer, _) in decoders.items():
        counts[name]["discarded_bytes"] = framer.discarded_bytes  # over-long runs without a line end
    return counts


def scan_serial_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    seconds = getattr(args, "seconds", 3.0)
    if seconds <= 0:
        raise LinkError("--seconds must be positive", transient=False)
    port = getattr(args, "port", None)
    if port:
        from ..portcheck import check_port

        check_port(port)  # 66 if it does not exist, 69 if the daemon reads it
        probe = probe_port(port, seconds)
        if probe["error"]:
            raise LinkError(f"{port}: {probe['error']}", transient=False)
        return [{"device": port, "by_id": None, "probe": probe}]
    rows = list_serial_ports()
    if getattr(args, "probe", False):
        from ..portcheck import PortBusy, PortMissing, check_port

        for row in rows:
            url = row["by_id"] or row["device"]
            try:
                check_port(url)
            except (PortBusy, PortMissing) as exc:
                row["probe"] = {"port": url, "error": str(exc), "drivers": {}, "settings": [], "recognised": [],
                                "driver": None}
                continue
            row["probe"] = probe_port(url, seconds)
    return rows


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
    if r.get("by_id"):
        parts.append(f"by-id {r['by_id']}")
    parts += [x for x in (ids, names) if x]
    if r.get("serial_number"):
        parts.append(f"serial {r['serial_number']}")
    if probe is not None and probe["error"]:
        parts.append(f"probe: {probe['error']}")
    return "  ".join(parts)


def _probe_lines(probe: dict[str, Any]) -> list[str]:
    """What each group of port settings decoded, and the verdict."""
    lines = []
    for group in probe["settings"]:
        counts = "; ".join(_count_text(name, probe["drivers"][name]) for name in group["drivers"])
        lines.append(f"    {group['settings']}: {counts}")
    verdict = probe["driver"] or "none (no valid frame: wrong settings, or the scale sent nothing)"
    lines.append(f"    -> recognised: {verdict}")
    return lines


def _count_text(name: str, c: dict[str, int]) -> str:
    text = f"{name} {c['readings']} reading(s), {c['reports']} report(s), {c['rejected']} rejected"
    return text + (f", {c['discarded_bytes']} bytes unframed" if c.get("discarded_bytes") else "")


SCANNERS["serial"] = scan_serial_rows
FORMATTERS["serial"] = format_serial
