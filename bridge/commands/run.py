"""``scale-bridge run``: the daemon (what systemd starts).

Problems that would only repeat on a restart exit 78 (systemd's ``RestartPreventExitStatus``): a bad
config, a missing optional package, a state dir that cannot be created or written, a flight recorder
directory (``[scale] record_dir``) that cannot be written or is open to others. A state dir that
another scale-bridge holds exits 75.

``run --once``: read one weighing from the configured link (the live scale and card reader, or the
``[scale] capture``), print what would be posted (the body, the masked card, the plausibility
verdict) and exit 0; nothing is queued or uploaded and the state dir is not touched. 66 if the device
(or capture) does not exist, 69 if a daemon reads it, 1 if no weighing arrived within ``--timeout``."""

from __future__ import annotations

import argparse
import asyncio

from ..cli import HELP_FORMATTER, add_config_arg, examples
from ..config import load_config
from ..errors import ConfigError, ConfigProblem


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run the daemon (systemd: Type=notify)",
        description="Run the bridge: read the scale and the card reader, queue each weighing durably, upload it. "
        "SIGTERM stops cleanly, SIGHUP reloads the config.",
        epilog=examples(
            "scale-bridge run -c /etc/scale-bridge/config.toml",
            "scale-bridge run --once --timeout 300   # step on the scale: what would be posted?",
        )
        + "\n\nexit codes: 0 stopped, 69 unavailable, 74 I/O error, 75 another scale-bridge holds the state dir,"
        "\n78 configuration error (also: a missing optional package, an unusable state dir or record_dir)"
        "\n--once: 0 a weighing was read, 1 none within --timeout, 66 no such device or capture, 69 in use",
        formatter_class=HELP_FORMATTER,
    )
    add_config_arg(p)
    once = p.add_argument_group("one weighing (a test of the set-up)")
    once.add_argument(
        "--once", action="store_true", help="read one weighing, print what would be posted, exit (nothing is sent)"
    )
    once.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="--once: give up after S seconds (default 120)"
    )
    p.set_defaults(func=cmd_run)


#: what the daemon never grants group-write or others anything on (L2, issue 14): outside systemd the
#: umask is usually 022, and the outbox holds health data and card numbers
PRIVATE_UMASK = 0o027


def keep_private() -> None:
    """From here on the daemon creates files at most 0640 and directories at most 0750 (it only adds
    to the umask: systemd's ``UMask=0027`` or a stricter one stays as it is)."""
    import os

    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def prepare_state_dir(cfg_state_dir: str, source: str) -> None:
    """Create the state dir (0750) or raise ``ConfigError`` naming ``state.dir``. An existing one of
    ours that group may write or others may enter (an older version, a hand-made dir) is tightened to
    at most 0750: the files inside are then out of others' reach whatever their own modes."""
    import os
    import stat
    from pathlib import Path

    d = Path(cfg_state_dir)
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o750)
    except FileExistsError:
        raise ConfigError([ConfigProblem("state.dir", f"{d} exists and is not a directory")], source) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("state.dir", f"cannot create {d}: {exc.strerror or exc}")], source) from None
    if not d.is_dir():
        raise ConfigError([ConfigProblem("state.dir", f"{d} is not a directory")], source)
    st = d.stat()
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & PRIVATE_UMASK:
        try:
            d.chmod(stat.S_IMODE(st.st_mode) & ~PRIVATE_UMASK)
        except OSError as exc:
            problem = ConfigProblem("state.dir", f"cannot restrict {d}: {exc.strerror or exc}")
            raise ConfigError([problem], source) from None


def cmd_run(args: argparse.Namespace) -> int:
    from ..daemon import Daemon
    from ..envcheck import missing_dependencies, record_dir_problems, state_dir_problems
    from ..logs import configure
    from ..statelock import acquire

    keep_private()
    cfg = load_config(args.config)
    if problems := missing_dependencies(cfg):
        raise ConfigError(problems, args.config)
    if args.once:
        from ..once import run_once

        return run_once(cfg, timeout_s=args.timeout)
    prepare_state_dir(cfg.state.dir, args.config)
    if problems := state_dir_problems(cfg) + record_dir_problems(cfg):
        raise ConfigError(problems, args.config)
    configure(cfg.log.level, cfg.log.format.value)
    with acquire(cfg.state_dir):
        return asyncio.run(Daemon(cfg, config_path=args.config).run())
