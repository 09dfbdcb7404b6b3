"""``scale-bridge run``: the daemon (what systemd starts)."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
from pathlib import Path

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
    lock = lock_state_dir(cfg.state_dir)
    if lock is None:
        print(
            f"scale-bridge: another daemon already runs on {cfg.state_dir} (its lock is held): "
            "every scale needs its own [state] dir (one instance per scale, scale-bridge@NAME)",
            file=sys.stderr,
        )
        return 78  # EX_CONFIG: restarting does not cure two configs sharing one state dir
    try:
        return asyncio.run(Daemon(cfg, config_path=args.config).run())
    finally:
        os.close(lock)


def lock_state_dir(path: Path) -> int | None:
    """The daemon's lock: flock(2) on the state directory itself (no lock file to leave behind); held
    until the process ends. None when another process holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
