"""The config's shape: the enums of its values and one frozen struct per ``[section]``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

from drivers.cards.numbers import ByteOrder, CardNumberFormat, ReaderFormat

from ..pairing import UnidentifiedPolicy

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


#: ``[cards] source`` values the bridge itself provides (no card link: the scale's stream carries the
#: member); every other value is a card source kind of ``drivers.links.cards.CARD_SOURCES``
STREAM_SOURCES = {"SCALE_ID": "scale_id", "CAPTURE": "capture"}


def _card_sources() -> dict[str, str]:
    from drivers.links.cards import CARD_SOURCES

    return {**STREAM_SOURCES, **{name.upper(): name for name in CARD_SOURCES}}


#: ``[cards] source``: where card numbers come from (scale_id, capture, or a card source kind).
CardReaderSource = StrEnum("CardReaderSource", _card_sources())  # type: ignore[misc]


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
    source: CardReaderSource = CardReaderSource("scale_id")
    device: str = ""
    format: ReaderFormat = ReaderFormat.DECIMAL
    byte_order: ByteOrder = ByteOrder.MSB
    platform_format: CardNumberFormat = CardNumberFormat.DECIMAL
    fallbacks: tuple[str, ...] = ()
    #: serial card readers: rdm6300 (ASCII frames) | binary (STX len type SNR BCC ETX)
    protocol: CardProtocol = CardProtocol.RDM6300
    baudrate: int = 9600

    @property
    def has_reader(self) -> bool:
        """A card link of its own (not the scale's ID field or the capture's card events)."""
        return str(self.source) not in STREAM_SOURCES.values()


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


#: section name -> struct type, in the order of ``Config``
SECTIONS: dict[str, type[msgspec.Struct]] = {f.name: f.type for f in msgspec.structs.fields(Config)}
_REQUIRED_SECTIONS = tuple(f.name for f in msgspec.structs.fields(Config) if f.required)
