"""``scale-bridge check [--json]``: a Nagios/Icinga plugin. Exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; first line ``SCALE-BRIDGE STATUS: summary | perfdata``; one line per component after it.

``--json`` prints ``{"status": "OK", "code": 0, "summary": "...", "components": [{"component", "status",
"message", "perfdata": {name: [value, warn, crit]}}]}``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from ..cli import add_config_arg
from ..config import load_config
from ..errors import ConfigError
from ..health import Finding, Status, check_daemon, check_db, check_lookinbody, check_platform, check_systemd, summarize


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check",
        help="health check for monitoring (Nagios exit codes)",
        epilog="exit codes (Nagios plugin): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\n\n"
        "examples:\n  scale-bridge check\n  scale-bridge check --json --no-platform",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-platform", action="store_true", help="skip the HEAD probe of the platform (and of LookinBody)")
    p.add_argument("--unit", default="scale-bridge.service", help="systemd unit to report (if systemd is there)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, require_key=False)
    except ConfigError as exc:
        findings = [Finding("config", Status.CRITICAL, "config invalid: " + "; ".join(exc.lines()))]
        return _emit(args, findings)
    now = time.time()
    findings = [Finding("config", Status.OK, "config valid")]
    findings += check_db(cfg, now)
    findings += check_daemon(cfg, now)
    if not cfg.platform.api_key:
        findings.append(
            Finding(
                "platform",
                Status.UNKNOWN,
                "no API key readable by this user: platform not probed "
                "(run as root, or via systemd-run with LoadCredential, see docs/install.md)",
            )
        )
    elif not args.no_platform:
        findings.append(asyncio.run(check_platform(cfg)))
    if cfg.scale.driver == "inbody" and not cfg.scale.capture and not args.no_platform:
        findings.append(asyncio.run(check_lookinbody(cfg)))  # InBody: LookinBody Web key and add-on
    sd = check_systemd(args.unit)
    if sd is not None:
        findings.append(sd)
    return _emit(args, findings)


def _emit(args: argparse.Namespace, findings: list[Finding]) -> int:
    status, line = summarize(findings)
    if args.json:
        print(
            json.dumps(
                {
                    "status": status.name,
                    "code": int(status),
                    "summary": line,
                    "components": [
                        {
                            "component": f.component,
                            "status": f.status.name,
                            "message": f.message,
                            "perfdata": {k: list(v) for k, v in f.perfdata.items()},
                        }
                        for f in findings
                    ],
                },
                indent=2,
            )
        )
    else:
        print(line)
        for f in findings:
            print(f"{f.status.name:<8} {f.component}: {f.message}")
    return int(status)
