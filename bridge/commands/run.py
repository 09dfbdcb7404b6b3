"""``scale-bridge run``: the daemon (what systemd starts)."""

from __future__ import annotations

import argparse
import asyncio

from ..cli import add_config_arg
from ..config import load_config
from ..logs import configure


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon (systemd: Type=notify)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import Daemon

    cfg = load_config(args.config)
    configure(cfg.log.level, cfg.log.format.value)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(Daemon(cfg, config_path=args.config).run())
