"""``scale-bridge check [--json]``: a Nagios/Icinga plugin. Exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; first line ``SCALE-BRIDGE STATUS: summary | perfdata``; one line per component after it.

``--all`` checks every scale on the box: ``/etc/scale-bridge/config.toml`` (``scale-bridge.service``) and
each ``/etc/scale-bridge/NAME.toml`` (``scale-bridge@NAME.service``), components named ``NAME/...``, plus
what only shows across instances: two configs sharing a state dir or a device (scale port, card reader).

``--json`` prints ``{"status": "OK", "code": 0, "summary": "...", "components": [{"component", "status",
"message", "perfdata": {name: {"value", "warn", "crit", "uom"}}}]}``. Perfdata on the first line follows the
plugin guidelines: ``label=value[UOM];warn;crit;min``, with ``200:`` for a lower bound (free disk)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from ..cli import add_config_arg
from ..config import Config, load_config
from ..errors import ConfigError
from ..health import Finding, Status, evaluate, summarize


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
    p.add_argument("--all", action="store_true", help="every instance: config.toml and NAME.toml in --config-dir")
    p.add_argument("--config-dir", default="/etc/scale-bridge", help="with --all: where the configs are")
    p.set_defaults(func=cmd_check)


#: files in the config dir that are not an instance's config
NOT_INSTANCES = ("config.example.toml",)


def instances(config_dir: Path) -> list[tuple[str, Path, str]]:
    """(name, config file, unit) of every instance configured in ``config_dir``."""
    out: list[tuple[str, Path, str]] = []
    for path in sorted(config_dir.glob("*.toml")):
        if path.name in NOT_INSTANCES or path.name.endswith(".example.toml"):
            continue
        if path.name == "config.toml":
            out.append(("config", path, "scale-bridge.service"))
        else:
            out.append((path.stem, path, f"scale-bridge@{path.stem}.service"))
    return out


def _devices(cfg: object) -> list[tuple[str, str]]:
    scale = getattr(cfg, "scale", None)
    cards = getattr(cfg, "cards", None)
    out = []
    port = getattr(scale, "port", "")
    if port and "://" not in port:
        out.append(("scale port", port))
    device = getattr(cards, "device", "")
    if device and "://" not in device:
        out.append(("card reader", device))
    return out


def cmd_check_all(args: argparse.Namespace) -> int:
    found = instances(Path(args.config_dir))
    if not found:
        return _emit(args, [Finding("instances", Status.UNKNOWN, f"no instance config in {args.config_dir}")])
    findings: list[Finding] = [Finding("instances", Status.OK, ", ".join(f"{n} ({u})" for n, _p, u in found))]
    state_dirs: dict[str, list[str]] = {}
    devices: dict[tuple[str, str], list[str]] = {}
    for name, path, unit in found:
        own, cfg = _instance(args, str(path), unit)
        if cfg is not None:
            state_dirs.setdefault(str(Path(cfg.state.dir).resolve()), []).append(name)
            for kind, dev in _devices(cfg):
                devices.setdefault((kind, str(Path(dev).resolve())), []).append(name)
            expected = "/var/lib/scale-bridge" if name == "config" else f"/var/lib/scale-bridge/{name}"
            if cfg.state.dir.rstrip("/") != expected:
                own.append(
                    Finding(
                        "state",
                        Status.WARNING,
                        f"[state] dir is {cfg.state.dir}, but {unit} may write only {expected} (StateDirectory=)",
                    )
                )
        for f in own:
            perf = {f"{name}_{k}": v for k, v in f.perfdata.items()}
            findings.append(Finding(f"{name}/{f.component}", f.status, f.message, perf))
    for d, names in state_dirs.items():
        if len(names) > 1:
            findings.append(
                Finding("instances", Status.CRITICAL, f"{' and '.join(names)} share the state dir {d}: one per scale")
            )
    for (kind, dev), names in devices.items():
        if len(names) > 1:
            findings.append(
                Finding(
                    "instances",
                    Status.CRITICAL,
                    f"{kind} {dev} is configured for {' and '.join(names)}: a device serves one instance "
                    "(a shared card reader is not supported: give each scale its own reader, docs/fleet.md)",
                )
            )
    return _emit(args, findings)


def _instance(args: argparse.Namespace, config: str, unit: str) -> tuple[list[Finding], Config | None]:
    try:
        cfg = load_config(config, require_key=False)
    except ConfigError as exc:
        return [Finding("config", Status.CRITICAL, "config invalid: " + "; ".join(exc.lines()))], None
    return asyncio.run(evaluate(cfg, now=time.time(), probe=not args.no_platform, unit=unit)), cfg


def cmd_check(args: argparse.Namespace) -> int:
    """A plugin that cannot run says UNKNOWN (exit 3) in one line, never a traceback."""
    try:
        if getattr(args, "all", False):
            return cmd_check_all(args)
        findings, _ = _instance(args, args.config, args.unit)
    except Exception as exc:  # noqa: BLE001 - Nagios must get UNKNOWN, not a traceback (exit 1 = WARNING)
        findings = [Finding("check", Status.UNKNOWN, f"the check itself failed: {type(exc).__name__}: {exc}")]
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
                            "perfdata": {
                                k: {"value": p.value, "warn": p.warn, "crit": p.crit, "uom": p.uom}
                                for k, p in f.perfdata.items()
                            },
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
