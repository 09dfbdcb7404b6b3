"""The text and JSON views of ``scale-bridge queue`` (``bridge.commands.queue``): pure, a ``Job`` in,
plain data or lines out (card numbers masked)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from ..logs import mask_card
from ..outbox import DeadLetter, Job, JobState


def iso(t: float | None) -> str | None:
    """ISO 8601 UTC (``2026-12-01T19:12:06Z``); ``None`` for no time or one that cannot be a date."""
    if t is None or not math.isfinite(t):
        return None
    try:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return None


def _ts(t: float | None) -> str:
    """For the text view: ``2026-12-01 19:12:06Z`` or ``-``."""
    s = iso(t)
    return "-" if s is None else s.replace("T", " ")


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "stage": job.stage.value,
        "captured_at": iso(job.captured_at),
        "scale": job.scale,
        "driver": job.driver,
        "weight_kg": job.body.get("weight"),
        "card": mask_card(job.card) if job.card else None,
        "customer_id": job.customer_id,
        "benefit_valid": job.benefit_valid,
        "benefit_attached": job.benefit_attached,
        "benefit_used": job.benefit_used,
        "attempts": job.attempts,
        "ambiguous": job.ambiguous,
        "next_attempt_at": iso(job.next_attempt_at) if job.state is JobState.PENDING else None,
        "last_status": job.last_status,
        "last_error": job.last_error,
        "note": job.note,
    }


def human(value: Any) -> str:
    """A value in words for the text views: None -> '-', booleans -> yes/no, lists comma-separated."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(human(v) for v in value) or "-"
    return str(value)


def list_lines(jobs: list[Job]) -> list[str]:
    """``queue list``'s table: a header line, then one line per weighing."""
    lines = [
        f"{'ID':>6}  {'STATE':<12} {'STAGE':<8} {'CAPTURED':<20} {'KG':>6}  {'CARD':<16} {'TRIES':>5} {'AMB':>3}  NOTE"
    ]
    for j in jobs:
        s = job_summary(j)
        note = textwrap.shorten(j.note or j.last_error or "", 60, placeholder=" ...")
        stage = "-" if j.state in (JobState.UNIDENTIFIED, JobState.DELIVERED) else j.stage.value
        lines.append(
            f"{j.id:>6}  {j.state.value:<12} {stage:<8} {_ts(j.captured_at):<20} "
            f"{human(s['weight_kg']):>6}  {s['card'] or '-':<16} "
            f"{j.attempts:>5} {j.ambiguous:>3}  {note or '-'}"
        )
    return lines


def show_doc(job: Job, dead: DeadLetter | None, history: Iterable[tuple[float, str, str | None]]) -> dict[str, Any]:
    """``queue show``'s document: the summary, the dead letter (if any), the history, a warning for an
    ambiguous weighing."""
    doc = job_summary(job)
    doc["idempotency_key"] = job.uid
    doc["card_query_format"] = job.card_query[1] if job.card_query else None
    doc["home_studio"] = job.home_studio
    doc["measured_fields"] = sorted(k for k in job.body if k != "rawResults")
    if dead is not None:
        doc["dead_letter"] = {
            "at": iso(dead.at),
            "stage": dead.stage,
            "status": dead.status,
            "errorCode": dead.error_code,
            "errorMessage": dead.error_message,
            "traceId": dead.trace_id,
        }
    doc["history"] = [{"at": iso(at), "event": ev, "detail": detail} for at, ev, detail in history]
    if job.ambiguous:
        doc["warning"] = (
            f"{job.ambiguous} attempt(s) may have reached the platform without an answer: "
            "this weighing may exist twice there"
        )
    return doc


def show_lines(doc: dict[str, Any], job: Job) -> list[str]:
    """``queue show``'s text view of ``show_doc``."""
    lines: list[str] = []
    for key, value in doc.items():
        if key == "history":
            lines.append("history:")
            lines.extend(_history_line(h, job) for h in value)
        elif isinstance(value, dict):
            lines.append(f"{key}:")
            lines.extend(f"  {k}: {human(v)}" for k, v in value.items())
        else:
            shown = value.replace("T", " ") if key in ("captured_at", "next_attempt_at") and value else value
            lines.append(f"{key}: {human(shown)}")
    return lines


def _history_line(h: dict[str, Any], job: Job) -> str:
    at = _ts(job.captured_at) if h["at"] is None else h["at"].replace("T", " ")
    return f"  {at}  {h['event']:<20} {h['detail'] or ''}".rstrip()
