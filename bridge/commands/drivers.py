"""``scale-bridge drivers [--markdown]``: the registered drivers (the README's device table is this
command's ``--markdown`` output; a test keeps them in step)."""

from __future__ import annotations

import argparse

from drivers.registry import registry


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("drivers", help="list the supported scale drivers")
    p.add_argument("--markdown", action="store_true", help="as a Markdown table (for the README)")
    p.set_defaults(func=cmd_drivers)


def markdown_table() -> str:
    rows = ["| driver | link | models | serial defaults | what it reads |", "|---|---|---|---|---|"]
    for name, spec in sorted(registry().items()):
        s = spec.serial
        serial = f"{s.baudrate} {s.bytesize}{s.parity}{s.stopbits:g}" if s else "-"
        link = spec.link.value + (f" ({spec.ble.mode.value})" if spec.ble else "")
        rows.append(f"| `{name}` | {link} | {', '.join(spec.models) or '-'} | {serial} | {spec.summary} |")
    return "\n".join(rows)


def cmd_drivers(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table())
        return 0
    for name, spec in sorted(registry().items()):
        print(f"{name:<14} {spec.link.value:<7} {spec.summary}")
    return 0
