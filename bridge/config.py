"""Typed configuration (TOML). Unknown keys are errors; every message names the key path.

The API key comes from ``platform.api_key``, else ``platform.api_key_file``, else
``$CREDENTIALS_DIRECTORY/api_key`` (systemd ``LoadCredential=api_key:...``).

The config is frozen: a reload builds a new ``Config`` (``bridge.reload.plan`` says what may be
swapped live). Decoding walks the document key by key, so one pass reports every problem: unknown
keys (with the closest known key), wrong types, enum values (with the allowed ones), non-finite
numbers and out-of-range values, each on its own line naming the key.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import msgspec

from drivers.cards.numbers import ByteOrder, CardNumberFormat, ReaderFormat
from drivers.registry import LinkKind, registry

from .errors import ConfigError, ConfigProblem
from .pairing import UnidentifiedPolicy

#: the outbox's file name inside the state directory
OUTBOX_FILE = "outbox.db"


class Usage(StrEnum):
    WEIGHING = "weighing"  # benefitKey on the weighing POST
    ENDPOINT = "endpoint"  # POST weighing, then POST .../benefits/{key}/use


class NotEligible(StrEnum):
    UPLOAD = "upload"  # upload without the benefit
    PARK = "park"  # keep it for staff (queue show / retry)


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class CardReaderSource(StrEnum):
    """``[cards] source``: where card numbers come from."""

    SCALE_ID = "scale_id"  # the scale's own ID field (Tanita ID)
    CAPTURE = "capture"  # card events inside the scale capture
    EVDEV = "evdev"  # USB keyboard-wedge reader (python-evdev)
    SERIAL = "serial"  # RDM6300 / binary frame reader on a pyserial URL
    SOCKET = "socket"  # kiosk software writes lines to a UNIX socket
    STDIN = "stdin"


class CardProtocol(StrEnum):
    RDM6300 = "rdm6300"  # ASCII frames
    BINARY = "binary"  # STX len type SNR BCC ETX


class Parity(StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"
    MARK = "M"
    SPACE = "S"


class PlatformConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    base_url: str
    api_key: str = ""
    api_key_file: str = ""
    benefit_key: str = ""
    usage: Usage = Usage.WEIGHING
    not_eligible: NotEligible = NotEligible.UPLOAD
    cross_studio: bool = True
    connect_timeout_s: float = 10.0
    timeout_s: float = 30.0
    #: pace each endpoint below the platform's 1000 requests/min
    rate_limit_per_min: int = 960
    concurrency: int = 4
    #: plain http:// to a host that is not loopback sends the key in clear text: refused unless set
    allow_insecure_http: bool = False


class ScaleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    driver: str
    name: str = "scale"
    port: str = ""  # serial: pyserial URL (device path, socket://, rfc2217://)
    address: str = ""  # BLE address filter
    adapter: str = ""  # BLE adapter (hci0)
    capture: str = ""  # replay a capture file instead of a live link
    replay_realtime: bool = False
    baudrate: int | None = None
    bytesize: int | None = None
    parity: Parity | None = None
    stopbits: float | None = None
    xonxoff: bool | None = None
    rtscts: bool | None = None
    pc_mode: bool = False
    reconnect_max_s: float = 5.0
    #: impedance-only scales (Mi v2): add estimated body composition from the member's profile
    estimate_body_composition: bool = False
    #: the flight recorder (bridge/flight_recorder.py): keep the raw link traffic here ("" = off),
    #: at most record_max_mb in record_max_files rotated files, member/card IDs pseudonymised
    record_dir: str = ""
    record_max_mb: float = 64.0
    record_max_files: int = 8
    record_redact: bool = True
    #: driver settings (``user_index``, ``consent_code``, ... any key a driver lists in
    #: ``DriverSpec.settings``), written as plain ``[scale]`` keys; filled in by ``load_dict``
    settings: dict[str, str] = msgspec.field(default_factory=dict)


class CardsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    source: CardReaderSource = CardReaderSource.SCALE_ID
    device: str = ""
    format: ReaderFormat = ReaderFormat.DECIMAL
    byte_order: ByteOrder = ByteOrder.MSB
    platform_format: CardNumberFormat = CardNumberFormat.DECIMAL
    fallbacks: tuple[str, ...] = ()
    #: serial card readers: rdm6300 (ASCII frames) | binary (STX len type SNR BCC ETX)
    protocol: CardProtocol = CardProtocol.RDM6300
    baudrate: int = 9600


class PairingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    window_s: float = 60.0
    unidentified: UnidentifiedPolicy = UnidentifiedPolicy.PARK
    #: a card tapped this soon AFTER an unidentified weighing claims it (0 = off; see docs)
    late_card_s: float = 0.0


class StateConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    dir: str = "/var/lib/scale-bridge"


class QueueConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    rate_limit_pause_s: float = 60.0
    max_conflict_retries: int = 5
    retention_delivered_days: float = 30.0
    #: the same reading seen again within this time is the same weighing (serial retransmits)
    dedupe_window_s: float = 600.0
    #: broadcast scales repeat a reading for minutes; their payload carries the device time
    broadcast_dedupe_window_s: float = 7 * 86400.0


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pending_age_warning_s: float = 900.0
    pending_age_critical_s: float = 3600.0
    pending_count_warning: int = 50
    dead_letters_warning: int = 1
    ambiguous_warning: int = 1
    last_frame_warning_s: float = 0.0  # 0 = do not alarm on a quiet scale
    disk_free_warning_mb: float = 200.0
    disk_free_critical_mb: float = 50.0
    daemon_stale_s: float = 120.0
    #: weighings waiting for staff (unidentified or parked) from this many on: WARNING (0 = never)
    unidentified_warning: int = 10
    #: the benefit valid for none of at least this many members checked in a row: WARNING (0 = never)
    benefit_checks_warning: int = 10


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.AUTO


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    #: "127.0.0.1:9464" to serve Prometheus text metrics; "" = off
    listen: str = ""


class LookinBodyConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """InBody via LookinBody Web (``[scale] driver = "inbody"``; docs/inbody.md). The key comes from
    ``api_key``, else ``api_key_file``, else ``$CREDENTIALS_DIRECTORY/lookinbody_api_key``."""

    base_url: str = "https://apiusa.lookinbody.com"
    account: str = ""
    api_key: str = ""
    api_key_file: str = ""
    poll_interval_s: float = 60.0
    #: the LookinBody account's time zone (IANA name): decides which day "today" is
    time_zone: str = ""
    identify_by: str = "user_id"
    mass_unit: str = "kg"
    date_format: str = "yyyyMMdd"
    timeout_s: float = 20.0
    connect_timeout_s: float = 10.0
    lookback_days: int = 1
    #: at least this long between two requests; after a failure 2**n x backoff_base_s, at most backoff_cap_s
    pace_s: float = 1.0
    backoff_base_s: float = 5.0
    backoff_cap_s: float = 900.0

    def settings(self) -> Any:
        """The link's settings (``drivers.links.lookinbody.LookinBodySettings``)."""
        from drivers import inbody
        from drivers.links.lookinbody import LookinBodySettings

        return LookinBodySettings(
            account=self.account,
            api_key=self.api_key,
            base_url=self.base_url,
            poll_interval_s=self.poll_interval_s,
            time_zone=self.time_zone,
            identify_by=inbody.IdentifyBy(self.identify_by),
            mass_unit=inbody.MassUnit(self.mass_unit),
            date_format=inbody.DateFormat(self.date_format),
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            lookback_days=self.lookback_days,
            pace_s=self.pace_s,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
        )


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    platform: PlatformConfig
    scale: ScaleConfig
    cards: CardsConfig = msgspec.field(default_factory=CardsConfig)
    pairing: PairingConfig = msgspec.field(default_factory=PairingConfig)
    state: StateConfig = msgspec.field(default_factory=StateConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    lookinbody: LookinBodyConfig = msgspec.field(default_factory=LookinBodyConfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.state.dir)

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / OUTBOX_FILE

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"


def replace(obj: Any, **changes: Any) -> Any:
    """A copy of a frozen config struct with ``changes`` (``msgspec.structs.replace``)."""
    return msgspec.structs.replace(obj, **changes)


# ---------------------------------------------------------------------------------------- decoding

#: section name -> struct type, in the order of ``Config``
SECTIONS: dict[str, type[msgspec.Struct]] = {f.name: f.type for f in msgspec.structs.fields(Config)}
_REQUIRED_SECTIONS = tuple(f.name for f in msgspec.structs.fields(Config) if f.required)
#: the longest API key file read (an API key is well under 1 KiB; /dev/zero must not fill memory)
MAX_KEY_FILE_BYTES = 4096
CREDSTORE_KEY = Path("/etc/credstore/scale-bridge.api_key")


def _enum_of(tp: Any) -> type[Enum] | None:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    for arg in get_args(tp):
        if isinstance(arg, type) and issubclass(arg, Enum):
            return arg
    return None


def allowed_values(tp: Any) -> list[str] | None:
    """The allowed values of an enum-typed field (``None`` for other types)."""
    enum = _enum_of(tp)
    return None if enum is None else [str(m.value) for m in enum]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _elsewhere(name: str, here: str) -> str:
    """' (it belongs in [pairing])' when ``name`` is a key of another section."""
    homes = [s for s, tp in SECTIONS.items() if s != here and name in {f.name for f in msgspec.structs.fields(tp)}]
    return f" (it belongs in [{homes[0]}])" if len(homes) == 1 else ""


def _type_problem(key: str, tp: Any, raw: Any, exc: msgspec.ValidationError) -> ConfigProblem:
    allowed = allowed_values(tp)
    if allowed is not None:
        got = repr(raw) if isinstance(raw, str) else f"a {type(raw).__name__}"
        return ConfigProblem(key, f"must be one of {', '.join(allowed)} (got {got})")
    msg = str(exc).split(" - at `", 1)[0].replace("Expected", "expected").replace("`", "")
    return ConfigProblem(key, msg)


def _decode_section(
    name: str, tp: type[msgspec.Struct], table: dict[str, Any], problems: list[ConfigProblem], bad: set[str]
) -> msgspec.Struct:
    fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
    good: dict[str, Any] = {}
    for key, raw in table.items():
        path = f"{name}.{key}"
        f = fields.get(key)
        if f is None:
            hint = _elsewhere(key, name) or _suggest(key, list(fields))
            problems.append(ConfigProblem(path, f"unknown key{hint}"))
            bad.add(path)
            continue
        given = raw.lower() if tp is LogConfig and key == "level" and isinstance(raw, str) else raw  # "INFO" is fine
        try:
            value = msgspec.convert(given, f.type, strict=True)
        except msgspec.ValidationError as exc:
            problems.append(_type_problem(path, f.type, raw, exc))
            bad.add(path)
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(ConfigProblem(path, "must be a finite number (not nan or inf)"))
            bad.add(path)
            continue
        good[f.name] = value
    for f in fields.values():
        if f.required and f.name not in good:
            path = f"{name}.{f.encode_name}"
            if f.encode_name not in table:
                problems.append(ConfigProblem(path, "required key is missing"))
                bad.add(path)
            good[f.name] = ""  # a placeholder: its problems are already reported
    return tp(**good)


def _decode(doc: dict[str, Any]) -> tuple[Config, list[ConfigProblem], set[str]]:
    problems: list[ConfigProblem] = []
    bad: set[str] = set()
    sections: dict[str, Any] = {}
    for name, table in doc.items():
        tp = SECTIONS.get(name)
        if tp is None:
            problems.append(ConfigProblem(name, f"unknown section{_suggest(name, list(SECTIONS))}"))
            bad.add(name)
            continue
        if not isinstance(table, dict):
            problems.append(ConfigProblem(name, f"must be a table ([{name}]), got a {type(table).__name__}"))
            bad.add(name)
        sections[name] = _decode_section(name, tp, table if isinstance(table, dict) else {}, problems, bad)
    for name in _REQUIRED_SECTIONS:
        if name not in sections:
            if name not in bad:
                problems.append(ConfigProblem(name, f"required section [{name}] is missing"))
                bad.add(name)
            sections[name] = _decode_section(name, SECTIONS[name], {}, [], set())
    return Config(**sections), problems, bad


# ----------------------------------------------------------------------------------- value checks

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


def _check_base_url(url: str, allow_http: bool) -> list[ConfigProblem]:
    """Never echoes the URL: it may hold a user name and password."""
    key = "platform.base_url"
    example = "e.g. https://mygym.open-api.perfectgym.com"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return [ConfigProblem(key, "must not contain spaces or control characters")]
    if not url.isascii():
        return [ConfigProblem(key, "must be ASCII (write an international host name in its xn-- form)")]
    try:
        u = urlsplit(url)
        _ = u.port  # raises ValueError for a port outside 0-65535 or not a number
    except ValueError:
        return [ConfigProblem(key, f"is not a valid URL (check the port), {example}")]
    if u.scheme not in ("http", "https") or not u.hostname:
        return [ConfigProblem(key, f"must be an http(s) URL, {example}")]
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
    if u.scheme == "http" and not is_loopback(u.hostname) and not allow_http:
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


def _driver_settings(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[ConfigProblem]]:
    """Move the ``[scale]`` keys that drivers list in ``DriverSpec.settings`` into ``scale.settings``
    (as text). Returns the document without them, the settings and one problem per bad value."""
    scale = doc.get("scale")
    if not isinstance(scale, dict):
        return doc, {}, []
    own = {f.encode_name for f in msgspec.structs.fields(ScaleConfig)} - {"settings"}
    listed = {key for spec in registry().values() for key in spec.settings} - own
    settings: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    rest: dict[str, Any] = {}
    items = list(scale.items())
    if isinstance(scale.get("settings"), dict):  # a loaded config turned back into a dict (replay)
        items = [(k, v) for k, v in items if k != "settings"] + list(scale["settings"].items())
    for key, value in items:
        if key == "settings":
            problems.append(ConfigProblem("scale.settings", "unknown key (driver settings are plain [scale] keys)"))
        elif key not in listed:
            rest[key] = value
        elif isinstance(value, bool) or not isinstance(value, int | str):
            problems.append(ConfigProblem(f"scale.{key}", "must be a whole number or text"))
        else:
            settings[key] = str(value)
    return {**doc, "scale": rest}, settings, problems


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


def _check(cfg: Config) -> list[ConfigProblem]:
    out: list[ConfigProblem] = []
    p, s = cfg.platform, cfg.scale
    out.extend(_check_base_url(p.base_url, p.allow_insecure_http))
    if p.api_key and (problem := check_key_text(p.api_key, "platform.api_key")):
        out.append(problem)
    if p.api_key and p.api_key_file:
        out.append(ConfigProblem("platform.api_key_file", "give either api_key or api_key_file, not both"))
    if p.usage is Usage.ENDPOINT and not p.benefit_key:
        out.append(ConfigProblem("platform.benefit_key", 'required when usage = "endpoint"'))
    if p.benefit_key and (p.benefit_key != p.benefit_key.strip() or not p.benefit_key.isprintable()):
        out.append(ConfigProblem("platform.benefit_key", "must not have spaces around it or control characters"))
    out.extend(_check_ranges(cfg))
    drivers = registry()
    spec = drivers.get(s.driver)
    if spec is None:
        out.append(ConfigProblem("scale.driver", f"unknown driver {s.driver!r} (known: {', '.join(sorted(drivers))})"))
    sources = [k for k in ("port", "address", "capture") if getattr(s, k)]
    if s.capture and len(sources) > 1:
        out.append(ConfigProblem("scale.capture", "give either capture or a live link (port/address), not both"))
    if spec is not None and not s.capture:
        if spec.link is LinkKind.SERIAL and not s.port:
            out.append(ConfigProblem("scale.port", f"driver {s.driver} is a serial driver: set port (a pyserial URL)"))
        if spec.link is LinkKind.BLE and s.port:
            out.append(ConfigProblem("scale.port", f"driver {s.driver} is a BLE driver: use address/adapter, not port"))
    if spec is not None and spec.link is LinkKind.CLOUD and not s.capture:
        out.extend(_check_lookinbody(cfg))
    if s.pc_mode and s.driver not in ("tanita", "tanita_bc418"):
        out.append(ConfigProblem("scale.pc_mode", "Tanita PC mode needs driver tanita or tanita_bc418"))
    if s.bytesize is not None and s.bytesize not in (5, 6, 7, 8):
        out.append(ConfigProblem("scale.bytesize", "must be 5, 6, 7 or 8"))
    if s.stopbits is not None and s.stopbits not in (1, 1.5, 2):
        out.append(ConfigProblem("scale.stopbits", "must be 1, 1.5 or 2"))
    c = cfg.cards
    if c.source in (CardReaderSource.EVDEV, CardReaderSource.SERIAL, CardReaderSource.SOCKET) and not c.device:
        out.append(ConfigProblem("cards.device", f'required for source = "{c.source}"'))
    from drivers.cards.numbers import parse_fallbacks

    try:
        parse_fallbacks(c.fallbacks)
    except ValueError as exc:
        out.append(ConfigProblem("cards.fallbacks", str(exc)))
    if cfg.metrics.listen and parse_listen(cfg.metrics.listen) is None:
        out.append(ConfigProblem("metrics.listen", 'must be "host:port" with a port 1-65535, e.g. "127.0.0.1:9464"'))
    return out


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


# ------------------------------------------------------------------------------------------ the key


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


# ------------------------------------------------------------------------------------------ loading


@dataclass(frozen=True, slots=True)
class Loaded:
    """What ``validate`` reports: the config, where the key came from (never the key), warnings."""

    config: Config
    key_origin: str  # "" when no key was required and none was found
    warnings: tuple[ConfigProblem, ...] = ()


def _covered(key: str, bad: set[str]) -> bool:
    return any(key == b or key.startswith(b + ".") for b in bad)


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
    lb_key = ""
    if cfg.scale.driver == "inbody" and not cfg.scale.capture:  # LookinBody Web: its own key (docs/inbody.md)
        got_lb = resolve_lookinbody_key(cfg.lookinbody, env if env is not None else dict(os.environ))
        if isinstance(got_lb, ConfigProblem):
            if require_key:
                problems.append(got_lb)
        else:
            lb_key = got_lb
    key: KeyInfo | None = None
    if not _covered("platform.api_key", bad):
        got = resolve_api_key_info(cfg, env if env is not None else dict(os.environ))
        if isinstance(got, KeyInfo):
            key = got
        elif require_key and not any(p.key == got.key for p in problems):
            problems.append(got)
    if problems:
        order = {name: i for i, name in enumerate(SECTIONS)}
        problems.sort(key=lambda p: order.get(p.key.split(".", 1)[0], -1))
        raise ConfigError(problems, source)
    warnings = list(config_warnings(cfg))
    if key is not None:
        warnings.extend(key.warnings)
        cfg = replace(cfg, platform=replace(cfg.platform, api_key=key.value))
    if lb_key:
        cfg = replace(cfg, lookinbody=replace(cfg.lookinbody, api_key=lb_key))
    return Loaded(cfg, key.origin if key is not None else "", tuple(warnings))


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
