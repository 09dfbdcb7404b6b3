"""The API keys: the platform's (config, key file, systemd credential, credstore) and LookinBody's."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigProblem
from .checks import check_key_text
from .schema import Config, LookinBodyConfig

#: the longest API key file read (an API key is well under 1 KiB; /dev/zero must not fill memory)
MAX_KEY_FILE_BYTES = 4096
CREDSTORE_KEY = Path("/etc/credstore/scale-bridge.api_key")


def resolve_lookinbody_key(lb: LookinBodyConfig, env: dict[str, str]) -> str | ConfigProblem:
    if lb.api_key:
        return lb.api_key
    if lb.api_key_file:
        key, path = "lookinbody.api_key_file", Path(lb.api_key_file)
    elif env.get("CREDENTIALS_DIRECTORY"):
        key, path = "lookinbody.api_key", Path(env["CREDENTIALS_DIRECTORY"]) / "lookinbody_api_key"
    else:
        return ConfigProblem(
            "lookinbody.api_key",
            "no LookinBody API key: set api_key, api_key_file, or LoadCredential=lookinbody_api_key",
        )
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return ConfigProblem(key, f"cannot read the LookinBody API key file {path}: {exc.strerror}")
    return value or ConfigProblem(key, f"the LookinBody API key file {path} is empty")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    value: str = field(repr=False)
    #: where it came from, for humans ("platform.api_key in the config", "file /etc/...")
    origin: str
    warnings: tuple[ConfigProblem, ...] = ()


def _read_key_file(path: Path, key: str) -> tuple[str, list[ConfigProblem]] | ConfigProblem:
    """The key file's text, read with a size cap; a warning when group or others can read it."""
    warnings: list[ConfigProblem] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return ConfigProblem(key, f"cannot read the API key file {path}: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return ConfigProblem(key, f"the API key file {path} is a directory")
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077:
            warnings.append(
                ConfigProblem(
                    key,
                    f"the API key file {path} can be read by group or others (mode {stat.S_IMODE(st.st_mode):04o}):"
                    f" chmod 600 {path}",
                )
            )
        try:
            data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            return ConfigProblem(key, f"cannot read the API key file {path}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        return ConfigProblem(key, f"the API key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ConfigProblem(key, f"the API key file {path} is not UTF-8 text")
    return text, warnings


def resolve_api_key_info(cfg: Config, env: dict[str, str]) -> KeyInfo | ConfigProblem:
    p = cfg.platform
    if p.api_key:
        return KeyInfo(p.api_key, "platform.api_key in the config file")
    candidates: list[tuple[str, Path, str]] = []
    if p.api_key_file:
        candidates.append(("platform.api_key_file", Path(p.api_key_file), f"platform.api_key_file ({p.api_key_file})"))
    elif env.get("CREDENTIALS_DIRECTORY"):
        path = Path(env["CREDENTIALS_DIRECTORY"]) / "api_key"
        candidates.append(("platform.api_key", path, f"the systemd credential ({path})"))
    elif os.access(CREDSTORE_KEY, os.R_OK):
        # root running `check`/`queue` by hand: the plain credential the unit loads (docs/install.md)
        candidates.append(("platform.api_key", CREDSTORE_KEY, f"the credstore file ({CREDSTORE_KEY})"))
    for key, path, origin in candidates:
        got = _read_key_file(path, key)
        if isinstance(got, ConfigProblem):
            return got
        raw, warnings = got
        value = raw.strip()
        if not value:
            return ConfigProblem(key, f"the API key file {path} is empty")
        if problem := check_key_text(value, key):
            return ConfigProblem(key, f"{problem.message} (in {path})")
        return KeyInfo(value, origin, tuple(warnings))
    return ConfigProblem(
        "platform.api_key",
        f"no API key: set api_key, api_key_file, or LoadCredential=api_key (systemd; {CREDSTORE_KEY})",
    )


def resolve_api_key(cfg: Config, env: dict[str, str]) -> str | ConfigProblem:
    info = resolve_api_key_info(cfg, env)
    return info if isinstance(info, ConfigProblem) else info.value
