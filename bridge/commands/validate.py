"""``scale-bridge validate``: is this config going to run here? Exit 0, or 78 with one line per
problem naming the key (every problem in one pass). By default the machine is checked too (devices and
files exist and open, state dir writable, optional packages installed, metrics port free);
``--no-environment`` checks the file alone (e.g. on another machine)."""

from __future__ import annotations

import argparse
import sys

from ..cli import HELP_FORMATTER, add_config_arg, examples
from ..config import load
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
        help="do not check devices, files, the state dir, optional packages or the metrics port",
    )
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
    return 0
