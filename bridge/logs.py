"""Logging: structlog, JSON lines when not a TTY (journald), readable console on a TTY.

Privacy: a processor masks card numbers and member IDs (keys in ``_CARD_KEYS``) and drops any value
that equals the configured API key, so neither can reach a log line by accident.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_CARD_KEYS = frozenset({"card", "card_number", "cardNumber", "device_id", "member_id"})
_SECRETS: set[str] = set()


def mask_card(value: object) -> str:
    """Keep the last 4 characters: ``3220338716`` -> ``******8716``."""
    s = str(value)
    if len(s) <= 4:
        return "*" * len(s)
    return "*" * (len(s) - 4) + s[-4:]


def register_secret(secret: str) -> None:
    """Never log this value. Very short values (placeholders like "-") are not secrets worth masking
    and would mangle every line."""
    if len(secret) >= 6:
        _SECRETS.add(secret)


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        value = event_dict[key]
        if key in _CARD_KEYS and value not in (None, ""):
            event_dict[key] = mask_card(value)
        elif isinstance(value, str) and _SECRETS:
            for secret in _SECRETS:
                if secret in value:
                    value = value.replace(secret, "<redacted>")
            event_dict[key] = value
    return event_dict


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    # Records from the standard library (the links under drivers/, libraries) get the same rendering,
    # timestamps and redaction as our own events.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _redact,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("aiohttp.access", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("scale-bridge").bind(**bound)
