"""Typed configuration (TOML). Unknown keys are errors; every message names the key path.

The API key comes from ``platform.api_key``, else ``platform.api_key_file``, else
``$CREDENTIALS_DIRECTORY/api_key`` (systemd ``LoadCredential=api_key:...``).
"""

from __future__ import annotations

import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

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


class PlatformConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
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


class ScaleConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    driver: str
    name: str = "scale"
    port: str = ""  # serial: pyserial URL (device path, socket://, rfc2217://)
    address: str = ""  # BLE address filter
    adapter: str = ""  # BLE adapter (hci0)
    capture: str = ""  # replay a capture file instead of a live link
    replay_realtime: bool = False
    baudrate: int | None = None
    bytesize: int | None = None
    parity: str | None = None
    stopbits: float | None = None
    xonxoff: bool | None = None
    rtscts: bool | None = None
    pc_mode: bool = False
    reconnect_max_s: float = 5.0
    #: impedance-only scales (Mi v2): add estimated body composition from the member's profile
    estimate_body_composition: bool = False
    #: driver settings (``user_index``, ``consent_code``, ... any key a driver lists in
    #: ``DriverSpec.settings``), written as plain ``[scale]`` keys; filled by ``config_from_dict``
    settings: dict[str, str] = msgspec.field(default_factory=dict)


class CardsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: scale_id | capture | evdev | serial | socket | stdin
    source: str = "scale_id"
    device: str = ""
    format: str = "decimal"
    byte_order: str = "msb"
    platform_format: str = "DECIMAL"
    fallbacks: list[str] = msgspec.field(default_factory=list)
    #: serial card readers: rdm6300 (ASCII frames) | binary (STX len type SNR BCC ETX)
    protocol: str = "rdm6300"
    baudrate: int = 9600


class PairingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    window_s: float = 60.0
    unidentified: UnidentifiedPolicy = UnidentifiedPolicy.PARK
    #: a card tapped this soon AFTER an unidentified weighing claims it (0 = off; see docs)
    late_card_s: float = 0.0


class StateConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dir: str = "/var/lib/scale-bridge"


class QueueConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 900.0
    rate_limit_pause_s: float = 60.0
    max_conflict_retries: int = 5
    retention_delivered_days: float = 30.0
    #: the same reading seen again within this time is the same weighing (serial retransmits)
    dedupe_window_s: float = 600.0
    #: broadcast scales repeat a reading for minutes; their payload carries the device time
    broadcast_dedupe_window_s: float = 7 * 86400.0


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pending_age_warning_s: float = 900.0
    pending_age_critical_s: float = 3600.0
    pending_count_warning: int = 50
    dead_letters_warning: int = 1
    ambiguous_warning: int = 1
    last_frame_warning_s: float = 0.0  # 0 = do not alarm on a quiet scale
    disk_free_warning_mb: float = 200.0
    disk_free_critical_mb: float = 50.0
    daemon_stale_s: float = 120.0


class LogConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: str = "info"
    format: LogFormat = LogFormat.AUTO


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: "127.0.0.1:9464" to serve Prometheus text metrics; "" = off
    listen: str = ""


class LookinBodyConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
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


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
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


_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_CARD_SOURCES = ("scale_id", "capture", "evdev", "serial", "socket", "stdin")
_PLATFORM_FORMATS = ("DECIMAL", "HEX_MSB", "HEX_LSB")


def _problem_from_validation(exc: msgspec.ValidationError) -> ConfigProblem:
    m = _PATH.match(str(exc))
    msg = m.group("msg") if m else str(exc)
    path = (m.group("path") or "") if m else ""
    key = ".".join(p for p in re.split(r"[.\[\]]", path) if p)
    if u := _UNKNOWN.match(msg):
        return ConfigProblem(f"{key}.{u['field']}".lstrip("."), "unknown key")
    if u := _MISSING.match(msg):
        return ConfigProblem(f"{key}.{u['field']}".lstrip("."), "required key is missing")
    msg = msg.replace("Expected", "expected").replace("`", "")
    return ConfigProblem(key or "(top level)", msg)


def _check_cards(c: CardsConfig) -> list[ConfigProblem]:
    from drivers.cards.numbers import ByteOrder, ReaderFormat, parse_fallbacks

    out: list[ConfigProblem] = []
    if c.format not in ReaderFormat._value2member_map_:
        out.append(ConfigProblem("cards.format", f"must be one of {', '.join(m.value for m in ReaderFormat)}"))
    if c.byte_order not in ByteOrder._value2member_map_:
        out.append(ConfigProblem("cards.byte_order", f"must be one of {', '.join(m.value for m in ByteOrder)}"))
    try:
        parse_fallbacks(c.fallbacks)
    except ValueError as exc:
        out.append(ConfigProblem("cards.fallbacks", str(exc)))
    if c.protocol not in ("rdm6300", "binary"):
        out.append(ConfigProblem("cards.protocol", "must be rdm6300 or binary"))
    if c.baudrate <= 0:
        out.append(ConfigProblem("cards.baudrate", "must be positive"))
    return out


CREDSTORE_KEY = Path("/etc/credstore/scale-bridge.api_key")


def parse_config(
    text: str, *, source: str = "config", env: dict[str, str] | None = None, require_key: bool = True
) -> Config:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("(file)", f"not valid TOML: {exc}")], source) from None
    return config_from_dict(doc, source=source, env=env, require_key=require_key)


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


def config_from_dict(
    doc: dict[str, Any], *, source: str = "config", env: dict[str, str] | None = None, require_key: bool = True
) -> Config:
    doc, settings, setting_problems = _driver_settings(doc)
    try:
        cfg = msgspec.convert(doc, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError([_problem_from_validation(exc), *setting_problems], source) from None
    cfg.scale.settings = settings
    # values of the wrong type are reported alone: the driver's own checks would only echo them
    problems = setting_problems + _check(cfg) + ([] if setting_problems else _check_settings(cfg.scale))
    if problems:
        raise ConfigError(problems, source)
    key = resolve_api_key(cfg, env if env is not None else dict(os.environ))
    if isinstance(key, ConfigProblem):
        if require_key:
            raise ConfigError([key], source)
        key = ""
    cfg.platform.api_key = key
    if cfg.scale.driver == "inbody" and not cfg.scale.capture:  # LookinBody Web: its own key (docs/inbody.md)
        lb_key = resolve_lookinbody_key(cfg.lookinbody, env if env is not None else dict(os.environ))
        if isinstance(lb_key, ConfigProblem):
            if require_key:
                raise ConfigError([lb_key], source)
            lb_key = ""
        cfg.lookinbody.api_key = lb_key
    return cfg


def load_config(path: str | Path, *, env: dict[str, str] | None = None, require_key: bool = True) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("(file)", "no such file")], str(p)) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("(file)", f"cannot read: {exc.strerror}")], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem("(file)", "not UTF-8 text")], str(p)) from None
    return parse_config(text, source=str(p), env=env, require_key=require_key)


def resolve_api_key(cfg: Config, env: dict[str, str]) -> str | ConfigProblem:
    p = cfg.platform
    if p.api_key:
        return p.api_key
    candidates: list[tuple[str, Path]] = []
    if p.api_key_file:
        candidates.append(("platform.api_key_file", Path(p.api_key_file)))
    elif env.get("CREDENTIALS_DIRECTORY"):
        candidates.append(("platform.api_key", Path(env["CREDENTIALS_DIRECTORY"]) / "api_key"))
    elif os.access(CREDSTORE_KEY, os.R_OK):
        # root running `check`/`queue` by hand: the plain credential the unit loads (docs/install.md)
        candidates.append(("platform.api_key", CREDSTORE_KEY))
    for key, path in candidates:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            return ConfigProblem(key, f"cannot read the API key file {path}: {exc.strerror}")
        if not value:
            return ConfigProblem(key, f"the API key file {path} is empty")
        return value
    return ConfigProblem(
        "platform.api_key",
        f"no API key: set api_key, api_key_file, or LoadCredential=api_key (systemd; {CREDSTORE_KEY})",
    )


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
    if not re.match(r"^https?://[^/\s]+", p.base_url):
        out.append(
            ConfigProblem("platform.base_url", "must be an http(s) URL, e.g. https://mygym.open-api.perfectgym.com")
        )
    if p.rate_limit_per_min < 1 or p.rate_limit_per_min > 1000:
        out.append(ConfigProblem("platform.rate_limit_per_min", "must be between 1 and 1000 (the platform's limit)"))
    if p.concurrency < 1 or p.concurrency > 64:
        out.append(ConfigProblem("platform.concurrency", "must be between 1 and 64"))
    for name in ("connect_timeout_s", "timeout_s"):
        if getattr(p, name) <= 0:
            out.append(ConfigProblem(f"platform.{name}", "must be positive"))
    if p.usage is Usage.ENDPOINT and not p.benefit_key:
        out.append(ConfigProblem("platform.benefit_key", 'required when usage = "endpoint"'))
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
    if s.parity is not None and s.parity not in ("N", "E", "O", "M", "S"):
        out.append(ConfigProblem("scale.parity", "must be one of N, E, O, M, S"))
    if s.bytesize is not None and s.bytesize not in (5, 6, 7, 8):
        out.append(ConfigProblem("scale.bytesize", "must be 5, 6, 7 or 8"))
    if s.stopbits is not None and s.stopbits not in (1, 1.5, 2):
        out.append(ConfigProblem("scale.stopbits", "must be 1, 1.5 or 2"))
    if cfg.cards.source not in _CARD_SOURCES:
        out.append(ConfigProblem("cards.source", f"must be one of {', '.join(_CARD_SOURCES)}"))
    if cfg.cards.source in ("evdev", "serial", "socket") and not cfg.cards.device:
        out.append(ConfigProblem("cards.device", f'required for source = "{cfg.cards.source}"'))
    if cfg.cards.platform_format not in _PLATFORM_FORMATS:
        out.append(ConfigProblem("cards.platform_format", f"must be one of {', '.join(_PLATFORM_FORMATS)}"))
    out.extend(_check_cards(cfg.cards))
    if cfg.pairing.window_s <= 0:
        out.append(ConfigProblem("pairing.window_s", "must be positive"))
    if not 0 <= cfg.pairing.late_card_s <= 120:
        out.append(ConfigProblem("pairing.late_card_s", "must be between 0 (off) and 120"))
    if cfg.queue.backoff_base_s <= 0 or cfg.queue.backoff_cap_s < cfg.queue.backoff_base_s:
        out.append(ConfigProblem("queue.backoff_cap_s", "must be >= backoff_base_s > 0"))
    if cfg.queue.rate_limit_pause_s < 60:
        out.append(ConfigProblem("queue.rate_limit_pause_s", "must be at least 60 (the platform locks for a minute)"))
    if cfg.log.level.lower() not in _LOG_LEVELS:
        out.append(ConfigProblem("log.level", f"must be one of {', '.join(_LOG_LEVELS)}"))
    if cfg.metrics.listen and not re.match(r"^[\w.\-\[\]:]+:\d+$", cfg.metrics.listen):
        out.append(ConfigProblem("metrics.listen", 'must be "host:port", e.g. "127.0.0.1:9464"'))
    return out
