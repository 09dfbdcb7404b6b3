"""``scale-bridge validate``: check a config file; exit 0, or 78 with one line per problem."""

from __future__ import annotations

import argparse

from ..cli import add_config_arg
from ..config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check the config file (exit 0 or 78)")
    add_config_arg(p)
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"{args.config}: OK (driver {cfg.scale.driver}, platform {cfg.platform.base_url})")
    return 0
