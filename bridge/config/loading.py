"""Loading: a TOML file or document -> a checked ``Config`` with its key, or one ``ConfigError``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..errors import ConfigError, ConfigProblem
from .checks import _check, _check_settings, config_warnings
from .decode import _decode, _driver_settings
from .keys import KeyInfo, resolve_api_key_info, resolve_lookinbody_key
from .schema import SECTIONS, Config, replace


@dataclass(frozen=True, slots=True)
class Loaded:
    """What ``validate`` reports: the config, where the key came from (never the key), warnings."""

    config: Config
    key_origin: str  # "" when no key was required and none was found
    warnings: tuple[ConfigProblem, ...] = ()


def _covered(key: str, bad: set[str]) -> bool:
    return any(key == b or key.startswith(b + ".") for b in bad)


def _lookinbody_key(cfg: Config, env: dict[str, str], require_key: bool, problems: list[ConfigProblem]) -> str:
    """LookinBody Web's own key (docs/inbody.md), "" when the driver needs none or it is missing."""
    if cfg.scale.driver != "inbody" or cfg.scale.capture:
        return ""
    got = resolve_lookinbody_key(cfg.lookinbody, env)
    if not isinstance(got, ConfigProblem):
        return got
    if require_key:
        problems.append(got)
    return ""


def _platform_key(
    cfg: Config, env: dict[str, str], require_key: bool, problems: list[ConfigProblem], bad: set[str]
) -> KeyInfo | None:
    if _covered("platform.api_key", bad):
        return None
    got = resolve_api_key_info(cfg, env)
    if isinstance(got, KeyInfo):
        return got
    if require_key and not any(p.key == got.key for p in problems):
        problems.append(got)
    return None


def _with_keys(cfg: Config, key: KeyInfo | None, lb_key: str) -> Loaded:
    warnings = list(config_warnings(cfg))
    if key is not None:
        warnings.extend(key.warnings)
        cfg = replace(cfg, platform=replace(cfg.platform, api_key=key.value))
    if lb_key:
        cfg = replace(cfg, lookinbody=replace(cfg.lookinbody, api_key=lb_key))
    return Loaded(cfg, key.origin if key is not None else "", tuple(warnings))


def load_dict(
    doc: dict[str, Any], *, source: str = "config", env: dict[str, str] | None = None, require_key: bool = True
) -> Loaded:
    doc, settings, setting_problems = _driver_settings(doc)
    cfg, problems, bad = _decode(doc)
    cfg = replace(cfg, scale=replace(cfg.scale, settings=settings))
    problems += setting_problems
    problems += [p for p in _check(cfg) if not _covered(p.key, bad)]
    if not setting_problems and not _covered("scale.driver", bad):
        # values of the wrong type are reported alone: the driver's own checks would only echo them
        problems += _check_settings(cfg.scale)
    environ = env if env is not None else dict(os.environ)
    lb_key = _lookinbody_key(cfg, environ, require_key, problems)
    key = _platform_key(cfg, environ, require_key, problems, bad)
    if problems:
        order = {name: i for i, name in enumerate(SECTIONS)}
        problems.sort(key=lambda p: order.get(p.key.split(".", 1)[0], -1))
        raise ConfigError(problems, source)
    return _with_keys(cfg, key, lb_key)


def config_from_dict(
    doc: dict[str, Any], *, source: str = "config", env: dict[str, str] | None = None, require_key: bool = True
) -> Config:
    return load_dict(doc, source=source, env=env, require_key=require_key).config


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("(file)", f"not valid TOML: {exc}")], source) from None


def parse_config(
    text: str, *, source: str = "config", env: dict[str, str] | None = None, require_key: bool = True
) -> Config:
    return config_from_dict(_parse_toml(text, source), source=source, env=env, require_key=require_key)


def load(path: str | Path, *, env: dict[str, str] | None = None, require_key: bool = True) -> Loaded:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("(file)", "no such file (start from config.example.toml)")], str(p)) from None
    except IsADirectoryError:
        raise ConfigError([ConfigProblem("(file)", "is a directory, not a config file")], str(p)) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("(file)", f"cannot read: {exc.strerror or exc}")], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem("(file)", "not UTF-8 text")], str(p)) from None
    loaded = load_dict(_parse_toml(text, str(p)), source=str(p), env=env, require_key=require_key)
    doc_key = tomllib.loads(text).get("platform", {}).get("api_key", "")
    if doc_key and mode & 0o004:
        warn = ConfigProblem(
            "platform.api_key", f"the key is inline in a file everyone can read: chmod o-r {p}, or use api_key_file"
        )
        loaded = Loaded(loaded.config, loaded.key_origin, (*loaded.warnings, warn))
    return loaded


def load_config(path: str | Path, *, env: dict[str, str] | None = None, require_key: bool = True) -> Config:
    return load(path, env=env, require_key=require_key).config


def redacted(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, every default filled in, the API key replaced."""
    doc: dict[str, Any] = msgspec.to_builtins(cfg)
    if doc["platform"].get("api_key"):
        doc["platform"]["api_key"] = "(redacted)"
    if doc.get("lookinbody", {}).get("api_key"):
        doc["lookinbody"]["api_key"] = "(redacted)"
    return doc
