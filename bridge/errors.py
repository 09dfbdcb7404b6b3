"""The bridge's exception tree. Foreign exceptions (httpx, sqlite3, OS) are translated at the edges;
whether a platform failure is retryable, ambiguous or permanent is decided in one place
(``bridge.platform.classify_response`` / ``classify_transport_error``)."""

from __future__ import annotations

from dataclasses import dataclass

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78


class BridgeError(Exception):
    """Root of the bridge's errors. ``exit_code`` is what the CLI exits with when it surfaces."""

    exit_code = EX_SOFTWARE


class UsageError(BridgeError):
    exit_code = EX_USAGE


class InputError(BridgeError):
    exit_code = EX_DATAERR


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key: str  # dotted key path, e.g. "platform.api_key"
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(BridgeError):
    exit_code = EX_CONFIG

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__("; ".join(str(p) for p in problems))

    def lines(self) -> list[str]:
        return [f"{self.source}: {p}" for p in self.problems]


class OutboxError(BridgeError):
    exit_code = EX_IOERR


class StorageError(OutboxError):
    """The outbox could not commit (disk full, I/O error). Nothing was acknowledged."""


class PlatformError(BridgeError):
    """A call to the gym platform failed. Subclasses say what to do about it."""

    exit_code = EX_UNAVAILABLE
    retryable = False
    #: the request may have reached the server (a retry may create a duplicate)
    ambiguous = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        trace_id: str | None = None,
        reference: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.trace_id = trace_id
        self.reference = reference
        self.retry_after_s = retry_after_s


class PlatformUnavailable(PlatformError):
    """Network failure before the request was sent, 5xx, 503 throttling: retry with backoff."""

    retryable = True


class AmbiguousDelivery(PlatformUnavailable):
    """Timeout or reset after the request was sent: it may have been processed. Retry, and count it."""

    ambiguous = True


class RateLimited(PlatformError):
    """429: the platform refuses every call to this endpoint for the next minute."""

    retryable = True


class AuthRejected(PlatformError):
    """401/403: a configuration problem, not bad data. Stop uploading, keep the queue."""


class NotFound(PlatformError):
    """404: the customer / card / entity does not exist."""


class RequestRejected(PlatformError):
    """400, 409 (after retries) and other 4xx: the platform will not take this request."""


class Conflict(RequestRejected):
    """409 concurrent modification: retried a few times, then dead-lettered."""

    retryable = True
