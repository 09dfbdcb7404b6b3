"""``scale-bridge validate``: is this config going to run here? Exit 0, or 78 with one line per
problem naming the key (every problem in one pass). By default the machine is checked too (devices and
files exist and open, state dir writable, optional packages installed, metrics port free);
``--no-environment`` checks the file alone (e.g. on another machine).

``--json``: the same verdict for fleet tooling, one object on stdout and nothing on stderr, the same
exit codes: ``{"ok": bool, "problems": [{"key": .., "message": ..}], "warnings": [{"key": ..,
"message": ..}]}`` (docs/fleet.md). A LookinBody check that fails is a problem with key ``lookinbody``
(exit 69)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..cli import HELP_FORMATTER, add_config_arg, examples
from ..config import Config, load
from ..errors import EX_CONFIG, EX_UNAVAILABLE, ConfigError, ConfigProblem


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check the config file and this machine (exit 0 or 78)",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog=examples(
            "scale-bridge validate -c /etc/scale-bridge/config.toml",
            "scale-bridge validate --no-environment -c site.toml   # the file alone",
            "scale-bridge validate --json -c site.toml | jq .problems   # for fleet tooling",
        ),
        formatter_class=HELP_FORMATTER,
    )
    add_config_arg(p)
    p.add_argument(
        "--no-environment",
        action="store_true",
        help="do not check devices, files, the state dir, optional packages, the metrics port or LookinBody",
    )
    p.add_argument("--offline", action="store_true", help="InBody: skip the LookinBody connection check")
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "problems": [{"key", "message"}], "warnings": [...]} on stdout (same exit codes)',
    )
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    if args.json:
        return _validate_json(args)
    loaded = load(args.config)
    cfg = loaded.config
    if problems := _machine_problems(args, cfg):
        raise ConfigError(problems, args.config)
    for w in loaded.warnings:
        print(f"{args.config}: warning: {w}", file=sys.stderr)
    cards = cfg.cards.source.value + (f" {cfg.cards.device}" if cfg.cards.device else "")
    env = "" if args.no_environment else "; this machine checked"
    print(
        f"{args.config}: OK (driver {cfg.scale.driver}, platform {cfg.platform.base_url}; "
        f"key from {loaded.key_origin}; cards: {cards}; state: {cfg.state.dir}{env})"
    )
    if _wants_lookinbody(args, cfg):
        healthy, message = _lookinbody(cfg)
        print(f"lookinbody {cfg.lookinbody.base_url}: {'OK' if healthy else 'FAILED'}: {message}")
        return 0 if healthy else EX_UNAVAILABLE
    return 0


def _machine_problems(args: argparse.Namespace, cfg: Config) -> list[ConfigProblem]:
    if args.no_environment:
        return []
    from ..envcheck import environment_problems
    from ..statelock import holder

    return environment_problems(cfg, daemon_running=holder(cfg.state_dir) is not None)


def _wants_lookinbody(args: argparse.Namespace, cfg: Config) -> bool:
    return cfg.scale.driver == "inbody" and not cfg.scale.capture and not (args.offline or args.no_environment)


def _validate_json(args: argparse.Namespace) -> int:
    warnings: Sequence[ConfigProblem] = ()
    code = 0
    try:
        loaded = load(args.config)
    except ConfigError as exc:
        problems = list(exc.problems)
    else:
        warnings = loaded.warnings
        problems = _machine_problems(args, loaded.config)
        if not problems and _wants_lookinbody(args, loaded.config):
            healthy, message = _lookinbody(loaded.config)
            if not healthy:
                problems, code = [ConfigProblem("lookinbody", message)], EX_UNAVAILABLE
    doc = {
        "ok": not problems,
        "problems": [{"key": p.key, "message": p.message} for p in problems],
        "warnings": [{"key": w.key, "message": w.message} for w in warnings],
    }
    print(json.dumps(doc, ensure_ascii=False))
    return code or (EX_CONFIG if problems else 0)


def _lookinbody(cfg: Config) -> tuple[bool, str]:
    """The environment: LookinBody's ``/user/test`` and a data call (healthy?, what was seen)."""
    import asyncio

    from drivers.links.lookinbody import describe, probe

    healthy, message = describe(asyncio.run(probe(cfg.lookinbody.settings())))
    return healthy, message
