"""The daemon's status: one typed value, written by the daemon, read by ``check`` and the metrics.

``DaemonStatus`` is frozen; the daemon builds a new one every few seconds from its parts
(``Housekeeping.snapshot``), writes it to ``status.json`` (``to_json``) and hands the same value to
the Prometheus exporter. ``check`` reads it back with ``from_json``. The queue figures come from the
outbox's ``QueueStats`` and nowhere else, so health and metrics cannot disagree about the queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from drivers.links.base import LinkState

FORMAT_VERSION = 2


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class QueueFigures:
    pending: int = 0
    unidentified: int = 0
    parked: int = 0
    delivered: int = 0
    dead: int = 0
    #: weighings with an attempt that may have reached the platform (possible duplicates)
    ambiguous: int = 0
    #: age of the oldest weighing waiting for an upload (state pending)
    oldest_pending_age_s: float = 0.0
    #: age of the oldest weighing waiting for staff (unidentified or parked)
    oldest_waiting_for_staff_age_s: float = 0.0
    last_delivered_at: float | None = None
    last_captured_at: float | None = None

    @classmethod
    def from_stats(cls, st: Any, now: float) -> QueueFigures:
        """From the outbox's ``QueueStats`` (the one read model of the queue)."""
        return cls(
            pending=st.pending,
            unidentified=st.unidentified,
            parked=st.parked,
            delivered=st.delivered,
            dead=st.dead,
            ambiguous=st.ambiguous_jobs,
            oldest_pending_age_s=st.oldest_pending_age_s(now),
            oldest_waiting_for_staff_age_s=st.oldest_waiting_for_staff_age_s(now),
            last_delivered_at=st.last_delivered_at,
            last_captured_at=st.last_captured_at,
        )


@dataclass(frozen=True, slots=True)
class IntakeCounters:
    frames: int = 0
    rejected_frames: int = 0
    weighings_captured: int = 0
    duplicates: int = 0
    dropped: int = 0
    implausible: int = 0
    device_errors: int = 0


@dataclass(frozen=True, slots=True)
class UploadFigures:
    delivered: int = 0
    retries: int = 0
    ambiguous: int = 0
    rate_limited: int = 0
    dead_letters: int = 0
    auth_failures: int = 0


@dataclass(frozen=True, slots=True)
class BenefitFigures:
    """How the configured benefit fared for the last members checked (a typo in the key shows here)."""

    key: str = ""
    checked: int = 0
    valid: int = 0


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    pid: int
    running: bool
    started_at: float
    updated_at: float
    scale: str = ""
    driver: str = ""
    links: Mapping[str, LinkState] = field(default_factory=dict)
    last_frame_at: float | None = None
    last_weighing_at: float | None = None
    queue: QueueFigures = field(default_factory=QueueFigures)
    intake: IntakeCounters = field(default_factory=IntakeCounters)
    uploads: UploadFigures = field(default_factory=UploadFigures)
    benefit: BenefitFigures = field(default_factory=BenefitFigures)
    auth_rejected: bool = False
    storage_error: str | None = None
    unsaved_in_memory: int = 0

    # ---- JSON ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["format"] = FORMAT_VERSION
        doc["state"] = "running" if self.running else "stopped"
        doc["links"] = {name: state.value for name, state in self.links.items()}
        # human-readable times beside the epochs (a support engineer reads this file)
        for key in ("started_at", "updated_at", "last_frame_at", "last_weighing_at"):
            doc[key + "_utc"] = iso(getattr(self, key))
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, text: str) -> DaemonStatus:
        """Raises ``ValueError`` for anything that is not a status file of this format."""
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
            raise ValueError("not a scale-bridge status file of this version")
        try:
            return cls(
                pid=int(doc["pid"]),
                running=bool(doc["running"]),
                started_at=float(doc["started_at"]),
                updated_at=float(doc["updated_at"]),
                scale=str(doc.get("scale", "")),
                driver=str(doc.get("driver", "")),
                links={str(k): LinkState.of(str(v)) for k, v in (doc.get("links") or {}).items()},
                last_frame_at=_opt_float(doc.get("last_frame_at")),
                last_weighing_at=_opt_float(doc.get("last_weighing_at")),
                queue=QueueFigures(**_known(QueueFigures, doc.get("queue"))),
                intake=IntakeCounters(**_known(IntakeCounters, doc.get("intake"))),
                uploads=UploadFigures(**_known(UploadFigures, doc.get("uploads"))),
                benefit=BenefitFigures(**_known(BenefitFigures, doc.get("benefit"))),
                auth_rejected=bool(doc.get("auth_rejected", False)),
                storage_error=doc.get("storage_error"),
                unsaved_in_memory=int(doc.get("unsaved_in_memory", 0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"status file incomplete: {exc}") from None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _known(cls: type, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        return {}
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    return {k: v for k, v in doc.items() if k in names}
