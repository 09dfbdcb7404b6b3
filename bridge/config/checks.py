"""Value checks on a decoded ``Config``: ranges, the platform URL, the scale link, key text."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import SplitResult, urlsplit

from drivers.registry import LinkKind, registry

from ..errors import ConfigProblem
from .schema import CardReaderSource, Config, ScaleConfig, Usage

_DAY = 86400.0

#: (section, key, lowest, lowest allowed itself?, highest): every duration, count and threshold
_RANGES: tuple[tuple[str, str, float, bool, float], ...] = (
    ("platform", "connect_timeout_s", 0, False, 300),
    ("platform", "timeout_s", 0, False, 600),
    ("platform", "rate_limit_per_min", 1, True, 1000),
    ("platform", "concurrency", 1, True, 64),
    ("scale", "reconnect_max_s", 0, False, 3600),
    ("scale", "record_max_mb", 1, True, 100_000),
    ("scale", "record_max_files", 1, True, 1000),
    ("scale", "baudrate", 50, True, 4_000_000),
    ("cards", "baudrate", 50, True, 4_000_000),
    ("pairing", "window_s", 0, False, 3600),
    ("pairing", "late_card_s", 0, True, 120),
    ("queue", "backoff_base_s", 0, False, _DAY),
    ("queue", "backoff_cap_s", 0, False, 7 * _DAY),
    ("queue", "rate_limit_pause_s", 60, True, 3600),
    ("queue", "max_conflict_retries", 0, True, 100),
    ("queue", "retention_delivered_days", 0, True, 3650),
    ("queue", "dedupe_window_s", 0, True, 7 * _DAY),
    ("queue", "broadcast_dedupe_window_s", 0, True, 30 * _DAY),
    ("health", "pending_age_warning_s", 0, False, 30 * _DAY),
    ("health", "pending_age_critical_s", 0, False, 30 * _DAY),
    ("health", "pending_count_warning", 1, True, 10**6),
    ("health", "dead_letters_warning", 1, True, 10**6),
    ("health", "ambiguous_warning", 1, True, 10**6),
    ("health", "last_frame_warning_s", 0, True, 30 * _DAY),
    ("health", "disk_free_warning_mb", 0, True, 10**7),
    ("health", "disk_free_critical_mb", 0, True, 10**7),
    ("health", "daemon_stale_s", 0, False, _DAY),
    ("health", "unidentified_warning", 0, True, 10**6),
    ("health", "benefit_checks_warning", 0, True, 25),
)

_WHY = {
    "platform.rate_limit_per_min": " (the platform's limit is 1000)",
    "queue.rate_limit_pause_s": " (the platform locks for a minute)",
    "pairing.late_card_s": " (0 = off)",
    "health.last_frame_warning_s": " (0 = off)",
}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_ranges(cfg: Config) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    for section, name, lo, lo_ok, hi in _RANGES:
        value = getattr(getattr(cfg, section), name)
        if value is None:
            continue
        if value < lo or (value == lo and not lo_ok) or value > hi:
            low = f"at least {_fmt(lo)}" if lo_ok else f"more than {_fmt(lo)}"
            key = f"{section}.{name}"
            out.append(ConfigProblem(key, f"must be {low} and at most {_fmt(hi)}{_WHY.get(key, '')}"))
    bad = {p.key for p in out}
    for low, high in _ORDERED:
        if not {low, high} & bad and _get(cfg, high) < _get(cfg, low):
            key, other = (high, low) if not low.startswith("health.disk") else (low, high)
            out.append(ConfigProblem(key, f"must be {'>=' if key == high else '<='} {other}"))
    return out


#: (a, b): a <= b
_ORDERED = (
    ("queue.backoff_base_s", "queue.backoff_cap_s"),
    ("health.pending_age_warning_s", "health.pending_age_critical_s"),
    ("health.disk_free_critical_mb", "health.disk_free_warning_mb"),
)


def _get(cfg: Config, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(cfg, section), name)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_BASE_URL = "platform.base_url"
_BASE_URL_EXAMPLE = "e.g. https://mygym.open-api.perfectgym.com"


def _split_base_url(url: str) -> SplitResult | ConfigProblem:
    """The URL's parts, or the one problem that makes the rest meaningless."""
    key, example = _BASE_URL, _BASE_URL_EXAMPLE
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return ConfigProblem(key, "must not contain spaces or control characters")
    if not url.isascii():
        return ConfigProblem(key, "must be ASCII (write an international host name in its xn-- form)")
    try:
        u = urlsplit(url)
        _ = u.port  # raises ValueError for a port outside 0-65535 or not a number
    except ValueError:
        return ConfigProblem(key, f"is not a valid URL (check the port), {example}")
    if u.scheme not in ("http", "https") or not u.hostname:
        return ConfigProblem(key, f"must be an http(s) URL, {example}")
    return u


def _check_base_url(url: str, allow_http: bool) -> list[ConfigProblem]:
    """Never echoes the URL: it may hold a user name and password."""
    key = _BASE_URL
    u = _split_base_url(url)
    if isinstance(u, ConfigProblem):
        return [u]
    out: list[ConfigProblem] = []
    if "@" in u.netloc:
        out.append(ConfigProblem(key, "must not contain a user name or password (the key goes in api_key)"))
    if u.port == 0:
        out.append(ConfigProblem(key, "port must be between 1 and 65535"))
    if u.path not in ("", "/"):
        out.append(
            ConfigProblem(key, "must be the tenant's root URL without a path such as /v1 (the bridge adds /v1/...)")
        )
    if u.query or u.fragment:
        out.append(ConfigProblem(key, "must not have a query (?...) or fragment (#...)"))
    if u.scheme == "http" and not is_loopback(u.hostname or "") and not allow_http:
        out.append(
            ConfigProblem(
                key,
                "plain http to a host that is not loopback sends the API key in clear text: use https "
                "(or set platform.allow_insecure_http = true for a trusted local proxy)",
            )
        )
    return out


def parse_listen(listen: str) -> tuple[str, int] | None:
    """``"host:port"`` / ``"[::1]:port"`` -> (host, port); ``None`` if malformed or the port is not 1-65535."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not port.isascii():
        return None
    if host.startswith("["):
        if not host.endswith("]"):
            return None
        host = host[1:-1]
    if not host or any(c.isspace() for c in host) or not 1 <= int(port) <= 65535:
        return None
    return host, int(port)


def check_key_text(value: str, key: str) -> ConfigProblem | None:
    """A usable API key: not blank, printable ASCII without spaces (it goes into an HTTP header).
    The message never contains the key."""
    if not value.strip():
        return ConfigProblem(key, "the API key is blank")
    if any(c.isspace() for c in value):
        return ConfigProblem(key, "the API key contains whitespace (a copy-paste error?)")
    if not value.isascii():
        return ConfigProblem(key, "the API key contains non-ASCII characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return ConfigProblem(key, "the API key contains control characters")
    return None


def _check_settings(s: ScaleConfig) -> list[ConfigProblem]:
    spec = registry().get(s.driver)
    if spec is None:
        return []
    out: list[ConfigProblem] = []
    for key in s.settings:
        if key not in spec.settings:
            users = ", ".join(sorted(n for n, d in registry().items() if key in d.settings))
            out.append(ConfigProblem(f"scale.{key}", f"driver {s.driver} has no setting {key} (used by {users})"))
    known = {k: v for k, v in s.settings.items() if k in spec.settings}
    if spec.check_settings is not None:
        out.extend(ConfigProblem(f"scale.{key}", msg) for key, msg in spec.check_settings(known))
    return out


def _check_lookinbody(cfg: Config) -> list[ConfigProblem]:
    from zoneinfo import ZoneInfo

    from drivers import inbody

    lb, out = cfg.lookinbody, []
    if not lb.account.strip():
        out.append(ConfigProblem("lookinbody.account", "required: the LookinBody Web account name"))
    if not re.match(r"^(https://[^/\s]+|http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?)(/|$)", lb.base_url):
        out.append(ConfigProblem("lookinbody.base_url", "must be an https URL, e.g. https://apiusa.lookinbody.com"))
    try:
        ZoneInfo(lb.time_zone)
    except (ValueError, OSError, KeyError):
        out.append(
            ConfigProblem("lookinbody.time_zone", 'required: the account\'s IANA time zone, e.g. "America/New_York"')
        )
    for name, enum in (
        ("identify_by", inbody.IdentifyBy),
        ("mass_unit", inbody.MassUnit),
        ("date_format", inbody.DateFormat),
    ):
        if getattr(lb, name) not in enum._value2member_map_:
            out.append(ConfigProblem(f"lookinbody.{name}", f"must be one of {', '.join(m.value for m in enum)}"))
    if not 1 <= lb.poll_interval_s <= 3600:
        out.append(ConfigProblem("lookinbody.poll_interval_s", "must be between 1 and 3600"))
    for name in ("timeout_s", "connect_timeout_s", "backoff_base_s"):
        if getattr(lb, name) <= 0:
            out.append(ConfigProblem(f"lookinbody.{name}", "must be positive"))
    if lb.pace_s < 0:
        out.append(ConfigProblem("lookinbody.pace_s", "must not be negative"))
    if lb.backoff_cap_s < lb.backoff_base_s:
        out.append(ConfigProblem("lookinbody.backoff_cap_s", "must be >= backoff_base_s"))
    if not 0 <= lb.lookback_days <= 5 or (lb.lookback_days + 2) * 86400 > cfg.queue.broadcast_dedupe_window_s:
        out.append(
            ConfigProblem(
                "lookinbody.lookback_days", "must be 0..5 and (+2 days) within queue.broadcast_dedupe_window_s"
            )
        )
    return out


def _check_platform(cfg: Config) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    p = cfg.platform
    out.extend(_check_base_url(p.base_url, p.allow_insecure_http))
    if p.api_key and (problem := check_key_text(p.api_key, "platform.api_key")):
        out.append(problem)
    if p.api_key and p.api_key_file:
        out.append(ConfigProblem("platform.api_key_file", "give either api_key or api_key_file, not both"))
    if p.usage is Usage.ENDPOINT and not p.benefit_key:
        out.append(ConfigProblem("platform.benefit_key", 'required when usage = "endpoint"'))
    if p.benefit_key and (p.benefit_key != p.benefit_key.strip() or not p.benefit_key.isprintable()):
        out.append(ConfigProblem("platform.benefit_key", "must not have spaces around it or control characters"))
    return out


def _check_scale_link(cfg: Config) -> list[ConfigProblem]:
    """The driver and its link: a known driver, one source, the keys its link kind needs."""
    out: list[ConfigProblem] = []
    s = cfg.scale
    drivers = registry()
    spec = drivers.get(s.driver)
    if spec is None:
        out.append(ConfigProblem("scale.driver", f"unknown driver {s.driver!r} (known: {', '.join(sorted(drivers))})"))
    sources = [k for k in ("port", "address", "capture") if getattr(s, k)]
    if s.capture and len(sources) > 1:
        out.append(ConfigProblem("scale.capture", "give either capture or a live link (port/address), not both"))
    if spec is None or s.capture:
        return out
    if spec.link is LinkKind.SERIAL and not s.port:
        out.append(ConfigProblem("scale.port", f"driver {s.driver} is a serial driver: set port (a pyserial URL)"))
    if spec.link is LinkKind.BLE and s.port:
        out.append(ConfigProblem("scale.port", f"driver {s.driver} is a BLE driver: use address/adapter, not port"))
    if spec.link is LinkKind.CLOUD:
        out.extend(_check_lookinbody(cfg))
    return out


def _check_scale_serial(s: ScaleConfig) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    if s.pc_mode and s.driver not in ("tanita", "tanita_bc418"):
        out.append(ConfigProblem("scale.pc_mode", "Tanita PC mode needs driver tanita or tanita_bc418"))
    if s.bytesize is not None and s.bytesize not in (5, 6, 7, 8):
        out.append(ConfigProblem("scale.bytesize", "must be 5, 6, 7 or 8"))
    if s.stopbits is not None and s.stopbits not in (1, 1.5, 2):
        out.append(ConfigProblem("scale.stopbits", "must be 1, 1.5 or 2"))
    return out


def _check_cards_and_metrics(cfg: Config) -> list[ConfigProblem]:
    from drivers.cards.numbers import parse_fallbacks

    out: list[ConfigProblem] = []
    c = cfg.cards
    if c.source in (CardReaderSource.EVDEV, CardReaderSource.SERIAL, CardReaderSource.SOCKET) and not c.device:
        out.append(ConfigProblem("cards.device", f'required for source = "{c.source}"'))
    try:
        parse_fallbacks(c.fallbacks)
    except ValueError as exc:
        out.append(ConfigProblem("cards.fallbacks", str(exc)))
    if cfg.metrics.listen and parse_listen(cfg.metrics.listen) is None:
        out.append(ConfigProblem("metrics.listen", 'must be "host:port" with a port 1-65535, e.g. "127.0.0.1:9464"'))
    return out


def _check(cfg: Config) -> list[ConfigProblem]:
    """Every value check, in the order ``validate`` reports them within a section."""
    return [
        *_check_platform(cfg),
        *_check_ranges(cfg),
        *_check_scale_link(cfg),
        *_check_scale_serial(cfg.scale),
        *_check_cards_and_metrics(cfg),
    ]


def config_warnings(cfg: Config) -> list[ConfigProblem]:
    """Accepted, but worth a line from ``validate`` (no effect on the exit code)."""
    out: list[ConfigProblem] = []
    hp = parse_listen(cfg.metrics.listen) if cfg.metrics.listen else None
    if hp is not None and not is_loopback(hp[0]):
        out.append(
            ConfigProblem(
                "metrics.listen",
                f"binds {hp[0]}, reachable from the network without authentication (use 127.0.0.1 "
                "and a reverse proxy or firewall if remote scraping is needed)",
            )
        )
    u = urlsplit(cfg.platform.base_url)
    if u.scheme == "http" and u.hostname and not is_loopback(u.hostname) and cfg.platform.allow_insecure_http:
        out.append(ConfigProblem("platform.base_url", "plain http: the API key crosses the network in clear text"))
    return out
