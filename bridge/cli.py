"""``scale-bridge`` command line. Each subcommand lives in ``bridge/commands/<name>.py`` and defines
``register(subparsers)``; this module discovers them. User errors are one line on stderr and a
documented exit code (see ``bridge.errors``), never a traceback.

Exit codes (README "Command line"): 0 ok, 64 usage, 65 bad input data, 66 missing input, 69 device or
service unavailable, 70 internal error, 74 I/O error, 75 the state dir is in use by another
scale-bridge (try again once it stopped), 78 configuration error (systemd does not restart).
``check`` uses the Nagios codes instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).

Only the module of the command being run is imported (``--version`` imports none), so start-up stays
fast; ``--help``, completion and the man page import them all."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .errors import EX_DATAERR, EX_IOERR, EX_NOINPUT, EX_UNAVAILABLE, EX_USAGE, BridgeError, ConfigError

DEFAULT_CONFIG = "/etc/scale-bridge/config.toml"
PROG = "scale-bridge"


class Parser(argparse.ArgumentParser):
    """argparse with the README's usage exit code (64, not argparse's 2). Subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


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


def examples(*lines: str) -> str:
    """An ``epilog`` with examples (shown verbatim by ``RawDescriptionHelpFormatter``)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


#: formatter for every subcommand: keeps the epilog's line breaks
HELP_FORMATTER = argparse.RawDescriptionHelpFormatter


def command_names() -> list[str]:
    from . import commands

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with just that command registered (faster start-up)."""
    parser = Parser(
        prog=PROG,
        description="Bridge between body-composition scales and the PerfectGym Next / Magicline Open API.",
        epilog=examples(
            f"{PROG} validate -c /etc/scale-bridge/config.toml",
            f"{PROG} check",
            f"{PROG} queue list",
            f"{PROG} COMMAND --help",
        )
        + "\n\nexit codes: 0 ok, 64 usage, 65 bad input, 66 missing input, 69 unavailable, 70 internal,"
        "\n74 I/O error, 75 state dir in use, 78 configuration error (check: Nagios 0-3)",
        formatter_class=HELP_FORMATTER,
    )
    parser.add_argument("--version", "-V", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [only] if only is not None else command_names()
    for name in names:
        module = importlib.import_module(f"bridge.commands.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named first in ``argv`` if it is a known one and no top-level option precedes it."""
    if not argv or argv[0].startswith("-"):
        return None
    return argv[0] if argv[0] in command_names() else None


def _os_error(exc: OSError) -> int:
    where = f"{exc.filename}: " if exc.filename else ""
    print(f"scale-bridge: {where}{(exc.strerror or str(exc)).lower()}", file=sys.stderr)
    missing = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
    return EX_NOINPUT if exc.filename and isinstance(exc, missing) else EX_IOERR


def main(argv: Sequence[str] | None = None) -> int:
    from drivers.errors import CaptureError, DriverError, LinkError

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] in (["--version"], ["-V"]):
        print(f"{PROG} {__version__}")
        return 0
    parser = build_parser(_command_in(args_list))
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EX_USAGE
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
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        return _os_error(exc)
