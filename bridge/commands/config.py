"""``scale-bridge config show``: the effective config, every default filled in, as TOML (or JSON),
with the API key redacted: what the daemon would run with."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..cli import HELP_FORMATTER, add_config_arg, examples


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="show the effective config (defaults filled in, secrets redacted)",
        epilog=examples("scale-bridge config show", "scale-bridge config show --json | jq .pairing"),
        formatter_class=HELP_FORMATTER,
    )
    add_config_arg(p)
    cs = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = cs.add_parser("show", help="print the effective config")
    show.add_argument("--json", action="store_true", help="as JSON instead of TOML")
    show.add_argument("--config", "-c", default=argparse.SUPPRESS, metavar="FILE", help=argparse.SUPPRESS)
    show.set_defaults(func=cmd_show)


def toml_value(v: Any) -> str:
    """A value as TOML writes it. A string is a JSON string, which is a TOML basic string (the same
    escapes), except that TOML wants DEL escaped too."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(doc: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []
    for section, values in doc.items():
        out.append(f"[{section}]")
        for k, v in values.items():
            if v is None:
                out.append(f"# {k} = (driver default)")
            else:
                out.append(f"{k} = {toml_value(v)}")
        out.append("")
    return "\n".join(out)


def cmd_show(args: argparse.Namespace) -> int:
    from ..config import load, redacted

    loaded = load(args.config, require_key=False)
    doc = redacted(loaded.config)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        origin = loaded.key_origin or "none found"
        print(f"# effective config of {args.config}; API key from: {origin} (redacted)\n")
        print(to_toml(doc), end="")
    return 0
