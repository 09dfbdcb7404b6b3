"""``scale-bridge validate``: is this config going to run here? Exit 0, or 78 with one line per
problem naming the key (every problem in one pass). By default the machine is checked too (devices and
files exist and open, state dir writable, optional packages installed, metrics port free);
``--no-environment`` checks the file alone (e.g. on another machine)."""

from __future__ import annotations

import argparse
import sys

from ..cli import HELP_FORMATTER, add_config_arg, examples
from ..config import Config, load
from ..errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "validate",
        help="check the config file and this machine (exit 0 or 78)",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog=examples(
            "scale-bridge validate -c /etc/scale-bridge/config.toml",
            "scale-bridge validate --no-environment -c site.toml   # the file alone",
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
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = load(args.config)
    cfg = loaded.config
    if not args.no_environment:
        from ..envcheck import environment_problems
        from ..statelock import holder

        running = holder(cfg.state_dir) is not None
        problems = environment_problems(cfg, daemon_running=running)
        if problems:
            raise ConfigError(problems, args.config)
    for w in loaded.warnings:
        print(f"{args.config}: warning: {w}", file=sys.stderr)
    cards = cfg.cards.source.value + (f" {cfg.cards.device}" if cfg.cards.device else "")
    env = "" if args.no_environment else "; this machine checked"
    print(
        f"{args.config}: OK (driver {cfg.scale.driver}, platform {cfg.platform.base_url}; "
        f"key from {loaded.key_origin}; cards: {cards}; state: {cfg.state.dir}{env})"
    )
    if cfg.scale.driver == "inbody" and not cfg.scale.capture and not (args.offline or args.no_environment):
        return _check_lookinbody(cfg)
    return 0


def _check_lookinbody(cfg: Config) -> int:
    """The environment: LookinBody's ``/user/test`` and a data call; 69 (unavailable) if they fail."""
    import asyncio

    from drivers.links.lookinbody import describe, probe

    healthy, message = describe(asyncio.run(probe(cfg.lookinbody.settings())))
    print(f"lookinbody {cfg.lookinbody.base_url}: {'OK' if healthy else 'FAILED'}: {message}")
    return 0 if healthy else 69
