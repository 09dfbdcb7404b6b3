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

``--serial``: list serial ports and, with ``--probe`` or ``--port URL``, find which driver talks
there, with a ``[scale]`` snippet to paste: see :mod:`bridge.commands._scan_serial`.

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
from ._scan_serial import format_serial, scan_serial_rows

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


# -- serial (bridge/commands/_scan_serial.py) -----------------------------------------------------------

SCANNERS["serial"] = scan_serial_rows
FORMATTERS["serial"] = format_serial
