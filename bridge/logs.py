"""Logging: structlog, JSON lines when not a TTY (journald), readable console on a TTY.

Privacy: a processor masks card numbers and member IDs (keys in ``_CARD_KEYS``) and drops any value
that equals the configured API key, so neither can reach a log line by accident.

Logging never fails the program: the output is a :class:`LogSink`. When its reader is gone (the pipe
to the journal or a terminal closed, ``| head``), the sink points the stream's file descriptor at
/dev/null, so a log call cannot raise, a signal handler that logs still
runs to the end, and Python's own flush at exit cannot fail either.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO, cast

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


class LogSink:
    """A text stream for log lines that never raises: a line that cannot be written is dropped; a
    reader that is gone for good (EPIPE, a closed file) sends the rest of the program's output on
    that descriptor to /dev/null."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ValueError):
            self._gone()
        except OSError:
            pass
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            self._gone()
        except OSError:
            pass  # the line is lost, the program goes on

    def _gone(self) -> None:
        """The reader is gone: the descriptor now writes to /dev/null (what is still buffered too)."""
        if not self.reader_gone:
            self.reader_gone = True
            silence(self._stream)


def silence(stream: Any) -> None:
    """The reader of ``stream`` is gone: its file descriptor now writes to /dev/null, so what is still
    buffered, every later write and Python's own flush at exit succeed. A stream without a
    descriptor (a StringIO) is left alone."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = LogSink(stream or sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    # JSON needs the traceback as text; the console renderer formats ``exc_info`` itself (prettier)
    tracebacks: list[Any] = [structlog.processors.format_exc_info] if use_json else []
    # Records from the standard library (the links under drivers/, libraries) get the same rendering,
    # timestamps and redaction as our own events: ``extra={...}`` fields become JSON fields (drivers/
    # log ``log.warning("ble_scanner_start_failed", extra={"error": ...})``, no structlog import), and
    # a record's ``exc_info`` becomes the full traceback text, never the traceback object's repr.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _redact,
                *tracebacks,
            ],
        )
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            *tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, out)),  # write + flush is all it uses
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("scale-bridge").bind(**bound)


def debug_enabled() -> bool:
    """True when ``configure`` asked for debug (the HTTP exchange lines are built only then)."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


# ----------------------------------------------------------------------------- link state levels

#: link states that are the normal course of things (start, stop, a replay playing)
_QUIET_STATES = frozenset({"connected", "closed", "replaying", "finished"})


def level_for(state: str, previous: str | None) -> str:
    """The log level of a link's state change: expected transitions at info, problems at warning
    once, repeats at debug (so ``journalctl -p warning`` shows only real problems).

    ``previous``: the link's last *settled* state, i.e. the last state other than ``connecting``
    (None before the first). With that, a device that stays unplugged logs one warning
    (``disconnected``) and then debug lines for each retry's ``connecting``/``disconnected`` pair;
    use ``settled(state, previous)`` to keep it. Pure: no clock, no I/O.

    * the same state again: debug
    * ``connected``, ``closed``, ``replaying``, ``finished``: info
    * ``connecting`` at start, after ``connected`` (a planned restart) or ``closed``: info;
      after a problem state (a retry): debug
    * anything else (``disconnected``, ``unauthorized``, ...): warning
    """
    if state == previous:
        return "debug"
    if state in _QUIET_STATES:
        return "info"
    if state == "connecting":
        return "info" if previous is None or previous in _QUIET_STATES else "debug"
    return "warning"


def settled(state: str, previous: str | None) -> str | None:
    """What to keep as ``previous`` for the next ``level_for`` call after ``state``."""
    return previous if state == "connecting" else state


# ----------------------------------------------------------------------------- HTTP exchange (debug)


def http_exchange(
    method: str,
    path: str,
    status: int | None,
    latency_s: float,
    *,
    trace_id: str | None = None,
    error: str | None = None,
) -> None:
    """One debug line per platform request: ``http_exchange method=GET path=/v1/... status=200
    latency_ms=12.3 trace_id=...``. ``path`` carries no query (card numbers travel there); the
    request headers (the API key) are never logged."""
    if not debug_enabled():
        return
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "latency_ms": round(latency_s * 1000.0, 1),
    }
    if trace_id:
        fields["trace_id"] = trace_id
    if error:
        fields["error"] = error
    get_logger(component="http").debug("http_exchange", **fields)


def trace_id_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """The platform's trace id: the ``traceId`` of an error body (platform-api.md), else a trace
    header if the platform sends one. Pure."""
    if body[:1] == b"{" and b"traceId" in body:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        value = doc.get("traceId") if isinstance(doc, dict) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and len(str(value)) <= 128:
            return str(value)
    for name in _TRACE_HEADERS:
        value = headers.get(name)
        if value and len(value) <= 128 and value.isprintable():
            return value
    return None


_TRACE_HEADERS = ("x-datadog-trace-id", "x-trace-id", "traceparent")


# ----------------------------------------------------------------------------- progress bar


class BarStream:
    """The log stream of a command with a progress bar on the same terminal: every write first
    clears the bar's line (``\\r`` + erase to end of line), and once the log line is complete the
    bar is drawn again below it. So a log line never shares a line with the bar, whatever the order
    in which the two are written. Give it to ``configure(stream=...)`` and draw with ``bar(text)``.
    """

    _CLEAR = "\r\x1b[K"

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._bar = ""
        self._mid_line = False  # a log line started and not yet ended

    def isatty(self) -> bool:
        return self._out.isatty()

    def fileno(self) -> int:
        return self._out.fileno()

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self._bar and not self._mid_line:
            self._out.write(self._CLEAR)
        self._out.write(text)
        self._mid_line = not text.endswith("\n")
        if self._bar and not self._mid_line:
            self._out.write(self._bar)
        return len(text)

    def flush(self) -> None:
        self._out.flush()

    def bar(self, text: str) -> None:
        """Draw (or redraw) the bar; ``""`` removes it."""
        self._bar = text
        if not self._mid_line:
            self._out.write(self._CLEAR + text)
            self._out.flush()

    def done(self, last_line: str) -> None:
        """Replace the bar by a final line of its own."""
        self._bar = ""
        if self._mid_line:
            self._out.write("\n")
            self._mid_line = False
        self._out.write(self._CLEAR + last_line + "\n")
        self._out.flush()
