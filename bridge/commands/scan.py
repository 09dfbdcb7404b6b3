"""``scale-bridge scan``: find scales (and readers) the bridge could use.

``--ble``: listen for BLE advertisements for ``--duration`` seconds and print one line per device
heard, strongest first: name (or ``-``), address, RSSI, and the driver that recognises it (or ``-``).
``--json`` prints one JSON object keyed by what was scanned (``{"ble": [{...}, ...]}``) instead.
If Bluetooth is unusable (no system bus, BlueZ not running, no adapter, no "central" role, access
denied) the reason is one line on stderr and the exit code is 69 (EX_UNAVAILABLE).

Other kinds of scan (serial ports, card readers) add their own flag and branch here.
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

from ..errors import EX_UNAVAILABLE

#: scan kind -> function(args) -> list of JSON-able dicts (prints nothing itself)
SCANNERS: dict[str, Callable[[argparse.Namespace], list[dict[str, Any]]]] = {}
#: scan kind -> function(rows) -> text lines for humans
FORMATTERS: dict[str, Callable[[list[dict[str, Any]]], list[str]]] = {}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scan", help="list scales the bridge can see (--ble: Bluetooth LE advertisements)")
    p.add_argument("--ble", action="store_true", help="scan for Bluetooth LE devices")
    p.add_argument("--duration", type=float, default=8.0, metavar="S", help="BLE: seconds to listen (default 8)")
    p.add_argument("--adapter", default=None, metavar="HCI", help="BLE: adapter to use, e.g. hci1 (default: first)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_scan)


def cmd_scan(args: argparse.Namespace) -> int:
    kinds = [kind for kind in SCANNERS if getattr(args, kind, False)] or list(SCANNERS)
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
