"""Typed configuration (TOML). Unknown keys are errors; every message names the key path.

The API key comes from ``platform.api_key``, else ``platform.api_key_file``, else
``$CREDENTIALS_DIRECTORY/api_key`` (systemd ``LoadCredential=api_key:...``).

The config is frozen: a reload builds a new ``Config`` (``bridge.reload.plan`` says what may be
swapped live). Decoding walks the document key by key, so one pass reports every problem: unknown
keys (with the closest known key), wrong types, enum values (with the allowed ones), non-finite
numbers and out-of-range values, each on its own line naming the key.

The package: ``schema`` (the enums and the frozen section structs), ``decode`` (document -> structs,
problem by problem), ``checks`` (value checks across keys), ``keys`` (the API keys) and ``loading``
(file -> checked ``Config``). Import from ``bridge.config``; the modules are an implementation detail.
"""

from .checks import check_key_text, config_warnings, is_loopback, parse_listen
from .decode import allowed_values
from .keys import (
    CREDSTORE_KEY,
    MAX_KEY_FILE_BYTES,
    KeyInfo,
    resolve_api_key,
    resolve_api_key_info,
    resolve_lookinbody_key,
)
from .loading import Loaded, config_from_dict, load, load_config, load_dict, parse_config, redacted
from .schema import (
    OUTBOX_FILE,
    SECTIONS,
    CardProtocol,
    CardReaderSource,
    CardsConfig,
    Config,
    HealthConfig,
    LogConfig,
    LogFormat,
    LogLevel,
    LookinBodyConfig,
    MetricsConfig,
    NotEligible,
    PairingConfig,
    Parity,
    PlatformConfig,
    QueueConfig,
    ScaleConfig,
    StateConfig,
    Usage,
    replace,
)

__all__ = [
    "CREDSTORE_KEY",
    "MAX_KEY_FILE_BYTES",
    "OUTBOX_FILE",
    "SECTIONS",
    "CardProtocol",
    "CardReaderSource",
    "CardsConfig",
    "Config",
    "HealthConfig",
    "KeyInfo",
    "Loaded",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "LookinBodyConfig",
    "MetricsConfig",
    "NotEligible",
    "PairingConfig",
    "Parity",
    "PlatformConfig",
    "QueueConfig",
    "ScaleConfig",
    "StateConfig",
    "Usage",
    "allowed_values",
    "check_key_text",
    "config_from_dict",
    "config_warnings",
    "is_loopback",
    "load",
    "load_config",
    "load_dict",
    "parse_config",
    "parse_listen",
    "redacted",
    "replace",
    "resolve_api_key",
    "resolve_api_key_info",
    "resolve_lookinbody_key",
]
