"""``scale-bridge validate``: check a config file; exit 0, or 78 with one line per problem."""

from __future__ import annotations

import argparse

from ..cli import add_config_arg
from ..config import Config, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check the config file (exit 0 or 78)")
    add_config_arg(p)
    p.add_argument("--offline", action="store_true", help="InBody: skip the LookinBody connection check")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"{args.config}: OK (driver {cfg.scale.driver}, platform {cfg.platform.base_url})")
    if cfg.scale.driver == "inbody" and not cfg.scale.capture and not args.offline:
        return _check_lookinbody(cfg)
    return 0


def _check_lookinbody(cfg: Config) -> int:
    """The environment: LookinBody's ``/user/test`` and a data call; 69 (unavailable) if they fail."""
    import asyncio

    from drivers.links.lookinbody import describe, probe

    healthy, message = describe(asyncio.run(probe(cfg.lookinbody.settings())))
    print(f"lookinbody {cfg.lookinbody.base_url}: {'OK' if healthy else 'FAILED'}: {message}")
    return 0 if healthy else 69
