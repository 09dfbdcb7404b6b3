"""``scale-bridge`` command line. Each subcommand lives in ``bridge/commands/<name>.py`` and defines
``register(subparsers)``; this module discovers them. User errors are one line on stderr and a
documented exit code (see ``bridge.errors``), never a traceback."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from drivers.errors import CaptureError, DriverError, LinkError

from . import __version__
from .errors import EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, BridgeError, ConfigError

DEFAULT_CONFIG = "/etc/scale-bridge/config.toml"


def default_config() -> str:
    return os.environ.get("SCALE_BRIDGE_CONFIG", DEFAULT_CONFIG)


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=None,
        metavar="FILE",
        help=f"config file (default: $SCALE_BRIDGE_CONFIG or {DEFAULT_CONFIG})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scale-bridge",
        description="Bridge between body-composition scales and the PerfectGym Next / Magicline Open API.",
    )
    parser.add_argument("--version", action="version", version=f"scale-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 64
    if getattr(args, "config", "unset") is None:
        args.config = default_config()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except BridgeError as exc:
        print(f"scale-bridge: {exc}", file=sys.stderr)
        return exc.exit_code
    except CaptureError as exc:
        print(f"scale-bridge: {exc}", file=sys.stderr)
        return EX_DATAERR
    except LinkError as exc:
        print(f"scale-bridge: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except DriverError as exc:
        print(f"scale-bridge: {exc}", file=sys.stderr)
        return EX_DATAERR
    except FileNotFoundError as exc:
        print(f"scale-bridge: {exc.filename}: no such file", file=sys.stderr)
        return EX_NOINPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
