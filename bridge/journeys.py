"""A weighing's journey as text (captured -> member -> benefit -> posted), one block per weighing:
what ``demo`` and ``replay`` print. Pure: a ``Job`` (and the simulator's answer) in, lines out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .logs import mask_card
from .outbox import Job, JobState


def weight(job: Job) -> Any:
    return job.body.get("weight", "?")


def block(
    job: Job, answer: Mapping[str, Any] | None, benefit_key: str, *, uploaded: bool = True, platform: str = ""
) -> list[str]:
    """The lines of one weighing. ``uploaded=False`` (a replay without ``--upload``): a weighing the
    daemon would send says "would upload" (it was never meant to leave the machine), not "pending".
    ``platform``: how the platform is named in the "posted" line (default: the simulator)."""
    raw = raw_results(job)
    model = raw.get("model") or job.driver
    device_time = raw.get("deviceTime") or "-"
    lines = [f"weighing #{job.id}  {weight(job)} kg on {model} (scale time {device_time})", _card_line(job)]
    if job.state is JobState.UNIDENTIFIED:
        lines.append(f"  member    unidentified: {job.note or 'no member'} -> parked in the queue")
        return lines
    lines.extend(_member_lines(job, benefit_key))
    lines.append(_outcome_line(job, answer, uploaded=uploaded, platform=platform))
    return lines


def _card_line(job: Job) -> str:
    if not job.card:
        return "  card      none: nobody tapped a card and the scale carried no member ID"
    how = "the scale's ID field" if job.card_source == "scale_id" else "a card read"
    return f"  card      {mask_card(job.card)} from {how}"


def _member_lines(job: Job, benefit_key: str) -> list[str]:
    lines: list[str] = []
    if job.customer_id is not None:
        where = f", {job.note}" if job.note and "cross-studio" in job.note else ""
        lines.append(f"  member    {job.customer_id}{where}")
    if job.benefit_valid is True:
        how = "sent with the weighing (benefitKey)" if job.benefit_attached else "used via /use after the weighing"
        lines.append(f"  benefit   {benefit_key} valid -> {how}")
    elif job.benefit_valid is False:
        lines.append(f"  benefit   {benefit_key} not valid for this member -> uploaded without it")
    return lines


def _outcome_line(job: Job, answer: Mapping[str, Any] | None, *, uploaded: bool, platform: str) -> str:
    if job.state is JobState.DELIVERED:
        sim = ""
        if answer is not None:
            sim = (
                f": customer {answer['customerId']} (home studio {answer['homeStudioId']}) via studio "
                f"{answer['studioId']}, benefitKey={answer.get('benefitKey') or '-'}"
            )
        waited = f", after {job.attempts} attempts" if job.attempts > 1 else ""
        return f"  posted    HTTP {job.last_status} from {platform or 'the simulator'}{sim}{waited}"
    if job.state is JobState.PENDING and not uploaded:
        return "  would upload (replay without --upload: nothing was sent)"
    return f"  {job.state.value:<9} {job.last_error or job.note or ''}".rstrip()


def raw_results(job: Job) -> dict[str, Any]:
    try:
        doc = json.loads(job.body.get("rawResults", "{}"))
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def simulator_answer(sim: Any, job: Job) -> Mapping[str, Any] | None:
    """What the built-in simulator stored for a delivered weighing (None if not delivered/found)."""
    if job.state is not JobState.DELIVERED:
        return None
    weighings = sim.call(lambda: list(sim.state.weighings))
    for w in weighings:
        if w["customerId"] == job.customer_id and w["body"].get("weight") == job.body.get("weight"):
            return dict(w)
    return None
