"""``scale-bridge man``: the manual page (roff, section 1) generated from the parser, so every command
and option in it is the program's own. ``make man`` writes ``build/man/scale-bridge.1``.

    scale-bridge man > scale-bridge.1 && man ./scale-bridge.1
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from ..cli import HELP_FORMATTER, examples

EXIT_CODES = (
    ("0", "success"),
    ("64", "usage error (a bad option or argument)"),
    ("65", "bad input data (a rejected frame, a capture that is not one)"),
    ("66", "missing input (no such file, device, outbox or weighing)"),
    ("69", "a device or service is unavailable"),
    ("70", "internal error"),
    ("74", "I/O error (e.g. the outbox could not commit)"),
    ("75", "another scale-bridge holds the state dir (try again once it stopped)"),
    ("78", "configuration error, including a missing optional package (systemd does not restart)"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "man",
        help="print the manual page (roff)",
        epilog=examples("scale-bridge man | man -l -"),
        formatter_class=HELP_FORMATTER,
    )
    p.set_defaults(func=cmd_man)


def _esc(text: str) -> str:
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in out.splitlines())


def _options(p: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for a in p._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if a.option_strings:
            if a.nargs == 0:
                meta = ""
            elif a.choices:
                meta = " {" + ",".join(str(c) for c in a.choices) + "}"
            else:
                meta = " " + str(a.metavar or a.dest.upper())
            name = ", ".join(f"\\fB{_esc(s)}\\fR" for s in a.option_strings) + _esc(str(meta))
        else:
            name = f"\\fI{_esc(str(a.metavar or a.dest).upper())}\\fR"
        lines += [".TP", name, _esc(a.help or "")]
    return lines


def _command(name: str, sp: argparse.ArgumentParser, help_text: str | None) -> list[str]:
    """One command's ``.SS`` section: its help, description, options, actions (``queue list``) and examples."""
    out = [".SS " + _esc(f"scale-bridge {name}"), _esc(help_text or "")]
    if sp.description:
        out += [".PP", _esc(sp.description)]
    out += _options(sp)
    inner = [a for a in sp._actions if isinstance(a, argparse._SubParsersAction)]
    if inner:
        ihelps = {c.dest: c.help for c in inner[0]._choices_actions}
        for action, ap in sorted(inner[0].choices.items()):
            out += [".TP", f"\\fB{_esc(action)}\\fR", _esc(ihelps.get(action) or "")]
            out += [".RS", *_options(ap), ".RE"]
    if sp.epilog:
        out += [".PP", ".nf", _esc(sp.epilog), ".fi"]
    return out


def manpage(parser: argparse.ArgumentParser, *, date: str | None = None) -> str:
    from .. import __version__

    stamp = float(os.environ.get("SOURCE_DATE_EPOCH") or datetime.now(UTC).timestamp())  # reproducible builds
    day = date or datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d")
    out = [
        f'.TH SCALE\\-BRIDGE 1 "{day}" "scale-bridge {__version__}" "User Commands"',
        ".SH NAME",
        "scale\\-bridge \\- " + _esc(parser.description or ""),
        ".SH SYNOPSIS",
        "\\fBscale\\-bridge\\fR [\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
        ".SH COMMANDS",
    ]
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in subs._choices_actions}
    for name, sp in sorted(subs.choices.items()):
        out += _command(name, sp, helps.get(name))
    out += [".SH EXIT STATUS"]
    for code, what in EXIT_CODES:
        out += [".TP", f"\\fB{code}\\fR", _esc(what)]
    out += [
        ".PP",
        "\\fBscale\\-bridge check\\fR uses the Nagios plugin codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        ".SH FILES",
        ".TP",
        "\\fI/etc/scale\\-bridge/config.toml\\fR",
        "the configuration (or \\fB$SCALE_BRIDGE_CONFIG\\fR, or \\fB\\-\\-config\\fR)",
        ".TP",
        "\\fI/var/lib/scale\\-bridge/\\fR",
        "the state dir: the outbox, status.json and the lock of the running daemon",
        ".SH SEE ALSO",
        "\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); /opt/scale\\-bridge/share/doc/scale\\-bridge/install.md",
    ]
    return "\n".join(out) + "\n"


def cmd_man(args: argparse.Namespace) -> int:
    from ..cli import build_parser

    sys.stdout.write(manpage(build_parser()))
    return 0
