"""The durable outbox (one SQLite file): ``schema`` (tables, states, rows), ``store`` (the SQLite file:
the only sqlite3 user), ``jobs`` (``Outbox``: capture and the uploader's transitions, each returning
the committed ``Job``), ``admin`` (operator actions and the read model), ``aio`` (``AsyncOutbox``:
the same API on one dedicated thread)."""

from .admin import Admin, ReadModel, open_read_only
from .jobs import JobNotFound, Outbox
from .schema import (
    SCHEMA_VERSION,
    WRITE_STAGES,
    CorruptionEvent,
    DeadLetter,
    Job,
    JobState,
    QueueStats,
    Stage,
    WaitReason,
)

__all__ = [
    "SCHEMA_VERSION",
    "WRITE_STAGES",
    "Admin",
    "CorruptionEvent",
    "DeadLetter",
    "Job",
    "JobNotFound",
    "JobState",
    "Outbox",
    "QueueStats",
    "ReadModel",
    "Stage",
    "WaitReason",
    "open_read_only",
]
