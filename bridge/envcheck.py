"""Checks of the machine a config will run on (``validate`` by default; ``run`` uses the ones that would
otherwise end in a restart loop). Each returns ``ConfigProblem`` lines naming the config key.

- ``missing_dependencies``: an optional package the config needs (python-evdev for ``cards.source =
  "evdev"``, prometheus-client for ``[metrics] listen``) with the exact install command for *this*
  installation's environment (``/opt/scale-bridge/venv/bin/pip install evdev``).
- ``state_dir_problems``: the state dir is a directory (or can be created) and is writable.
- ``record_dir_problems``: the same for ``[scale] record_dir`` (the flight recorder), which must also
  be closed to others (its captures are personal data).
- ``environment_problems``: all of the above plus the devices and files the config names exist and
  can be opened, and the metrics port can be bound.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import sys
from pathlib import Path

from drivers.links.cards import CARD_SOURCES, DeviceKind

from .config import CardsConfig, Config, ScaleConfig, parse_listen
from .errors import ConfigProblem

#: optional import name -> (pip requirement, the scale-bridge extra that carries it)
OPTIONAL = {
    "evdev": ("evdev>=1.7", "cards"),
    "prometheus_client": ("prometheus-client>=0.20", "metrics"),
}


def pip_command(requirement: str) -> str:
    """The install command for the environment this scale-bridge runs in (not whatever pip is on PATH)."""
    return f"{Path(sys.prefix) / 'bin' / 'pip'} install '{requirement}'"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def needed_extras(cfg: Config) -> list[str]:
    """The scale-bridge extras this config needs (``install.sh`` installs them)."""
    out = []
    kind = CARD_SOURCES.get(str(cfg.cards.source))
    if kind is not None and kind.extra:
        out.append(kind.extra)
    if cfg.metrics.listen:
        out.append("metrics")
    return out


def missing_dependencies(cfg: Config) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    kind = CARD_SOURCES.get(str(cfg.cards.source))
    if kind is not None and kind.python_module and not _installed(kind.python_module):
        req = kind.requirement or kind.python_module
        out.append(
            ConfigProblem("cards.source", f'"{kind.name}" needs python-{kind.python_module}, not installed: '
                          f"{pip_command(req)}")
        )
    if cfg.metrics.listen and not _installed("prometheus_client"):
        req = OPTIONAL["prometheus_client"][0]
        out.append(ConfigProblem("metrics.listen", f"needs prometheus-client, not installed: {pip_command(req)}"))
    return out


def dir_problems(d: Path, key: str, *, private: bool = False) -> list[ConfigProblem]:
    """A directory the daemon writes: it is one (or can be created) and this user may write it.
    ``private``: others may not list or enter it either (it holds personal data and nothing tightens it)."""
    if d.exists():
        if not d.is_dir():
            return [ConfigProblem(key, f"{d} exists and is not a directory")]
        if not os.access(d, os.W_OK | os.X_OK):
            return [ConfigProblem(key, f"{d} is not writable by this user (uid {os.getuid()})")]
        mode = stat.S_IMODE(d.stat().st_mode)
        if private and mode & stat.S_IRWXO:
            return [ConfigProblem(key, f"{d} is open to others (mode {mode:04o}; it holds personal data): "
                                       f"chmod o-rwx {d}")]
        return []
    parent = d.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [ConfigProblem(key, f"cannot create {d}: {parent} is not a directory")]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [ConfigProblem(key, f"cannot create {d}: {parent} is not writable by this user (uid {os.getuid()})")]
    return []


def state_dir_problems(cfg: Config) -> list[ConfigProblem]:
    return dir_problems(cfg.state_dir, "state.dir")


def record_dir_problems(cfg: Config) -> list[ConfigProblem]:
    """``[scale] record_dir``, when set: the flight recorder's captures are personal data (card numbers
    unless redacted, body measurements), so the directory must also be closed to others. The recorder
    creates a missing one 0750; an existing one is left as it is, hence checked here."""
    if not cfg.scale.record_dir:
        return []
    return dir_problems(Path(cfg.scale.record_dir), "scale.record_dir", private=True)


def _device_problem(key: str, path: str, what: str) -> ConfigProblem | None:
    p = Path(path)
    if not p.exists():
        return ConfigProblem(key, f"{what} {path} does not exist (plugged in? ls /dev/serial/by-id /dev/input/by-id)")
    if p.is_dir():
        return ConfigProblem(key, f"{what} {path} is a directory")
    if not os.access(p, os.R_OK | os.W_OK):
        return ConfigProblem(key, f"{what} {path} cannot be opened by this user (group dialout/input? udev rule?)")
    return None


def _metrics_problem(cfg: Config) -> ConfigProblem | None:
    hp = parse_listen(cfg.metrics.listen) if cfg.metrics.listen else None
    if hp is None:
        return None
    host, port = hp
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return ConfigProblem("metrics.listen", f"cannot resolve {host}: {exc.strerror or exc}")
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            return ConfigProblem("metrics.listen", f"cannot bind {cfg.metrics.listen}: {exc.strerror or exc}")
    return None


def _scale_link_problem(s: ScaleConfig) -> ConfigProblem | None:
    if s.capture:
        cap = Path(s.capture)
        if not cap.is_file() or not os.access(cap, os.R_OK):
            return ConfigProblem("scale.capture", f"{s.capture} is not a readable file")
        return None
    if s.port and "://" not in s.port:
        return _device_problem("scale.port", s.port, "serial port")
    return None


def _card_reader_problems(c: CardsConfig) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    kind = CARD_SOURCES.get(str(c.source))
    device = kind.device if kind is not None else DeviceKind.NONE
    reader_path = c.device if kind is not None and kind.device_file and "://" not in c.device else ""
    if reader_path and (problem := _device_problem("cards.device", reader_path, "card reader")):
        out.append(problem)
    if device is DeviceKind.SOCKET and c.device:
        parent = Path(c.device).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            out.append(ConfigProblem("cards.device", f"cannot create the socket: {parent} is not a writable directory"))
    return out


def environment_problems(cfg: Config, *, daemon_running: bool = False) -> list[ConfigProblem]:
    """Everything ``validate`` checks on this machine. ``daemon_running``: the state dir's lock is held,
    so the metrics port is expected to be taken (by it) and is not probed."""
    out = missing_dependencies(cfg) + state_dir_problems(cfg) + record_dir_problems(cfg)
    if problem := _scale_link_problem(cfg.scale):
        out.append(problem)
    out.extend(_card_reader_problems(cfg.cards))
    if not daemon_running and (problem := _metrics_problem(cfg)):
        out.append(problem)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.envcheck --extras CONFIG``: the extras CONFIG needs, comma-separated (for
    ``systemd/install.sh``); nothing when the file is missing or invalid (``validate`` says why)."""
    import argparse

    from .config import load_config
    from .errors import ConfigError

    p = argparse.ArgumentParser(prog="python -m bridge.envcheck")
    p.add_argument("--extras", metavar="CONFIG", required=True)
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.extras, require_key=False)
    except ConfigError:
        return 0
    print(",".join(needed_extras(cfg)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
