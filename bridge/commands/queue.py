"""``scale-bridge queue list|show|retry|assign|purge|export|ack-corruption``: look at and act on the
outbox. Safe beside a running daemon (SQLite WAL; writers wait for each other)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..cli import add_config_arg
from ..config import OUTBOX_FILE, load_config
from ..errors import UsageError
from ..logs import mask_card
from ..outbox import Job, JobState, Outbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("queue", help="inspect and act on the offline queue")
    add_config_arg(p)
    qs = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    ls = qs.add_parser("list", help="list weighings (default: everything not delivered)")
    ls.add_argument("--state", choices=[s.value for s in JobState] + ["all"], default=None)
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    sh = qs.add_parser("show", help="one weighing: state, member, benefit, attempts, dead letter, history")
    sh.add_argument("id", type=int)
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)
    rt = qs.add_parser("retry", help="retry a weighing now (or every dead letter with --dead)")
    rt.add_argument("id", type=int, nargs="?")
    rt.add_argument("--dead", action="store_true", help="retry every dead letter")
    rt.set_defaults(func=cmd_retry)
    asg = qs.add_parser("assign", help="attach a member card to an unidentified/parked/dead weighing")
    asg.add_argument("id", type=int)
    asg.add_argument("--card", required=True, help="card number as the reader outputs it")
    asg.set_defaults(func=cmd_assign)
    pg = qs.add_parser("purge", help="delete delivered weighings (dead letters are kept)")
    pg.add_argument("--delivered", action="store_true", required=True)
    pg.add_argument("--older-than-days", type=float, default=0.0)
    pg.set_defaults(func=cmd_purge)
    ex = qs.add_parser("export", help="all weighings as JSON lines (bodies included) on stdout")
    ex.add_argument("--state", choices=[s.value for s in JobState], default=None)
    ex.set_defaults(func=cmd_export)
    ack = qs.add_parser("ack-corruption", help="acknowledge a corrupt outbox that was moved aside")
    ack.set_defaults(func=cmd_ack)
    for action in (ls, sh, rt, asg, pg, ex, ack):  # --config is accepted after the action too
        action.add_argument("--config", "-c", default=argparse.SUPPRESS, metavar="FILE", help=argparse.SUPPRESS)
        action.add_argument(
            "--state-dir",
            default=None,
            metavar="DIR",
            help="the outbox in this state directory instead of the config's (e.g. the demo's --state-dir)",
        )


def _outbox_path(args: argparse.Namespace) -> Path:
    if getattr(args, "state_dir", None):
        return Path(args.state_dir) / OUTBOX_FILE
    return load_config(args.config, require_key=False).outbox_path  # the queue is local: no key needed


def _open(args: argparse.Namespace) -> Outbox:
    path = _outbox_path(args)
    if not path.exists():
        raise UsageError(f"no outbox at {path} (has the daemon run yet?)")
    # secondary: a running daemon's in-flight attempts are not "interrupted" (no false ambiguous count)
    return Outbox(path, check=False, primary=False)


def _ts(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "stage": job.stage.value,
        "captured_at": _ts(job.captured_at),
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
        "next_attempt_at": _ts(job.next_attempt_at) if job.state is JobState.PENDING else None,
        "last_status": job.last_status,
        "last_error": job.last_error,
        "note": job.note,
    }


def cmd_list(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        if args.state == "all":
            jobs = ob.jobs(limit=args.limit)
        elif args.state:
            jobs = ob.jobs(JobState(args.state), limit=args.limit)
        else:
            jobs = [j for j in ob.jobs(limit=1_000_000) if j.state is not JobState.DELIVERED][: args.limit]
    finally:
        ob.close()
    if args.json:
        for j in jobs:
            print(json.dumps(job_summary(j)))
        return 0
    if not jobs:
        print("queue is empty" if args.state is None else f"no weighings in state {args.state}")
        return 0
    print(
        f"{'ID':>6}  {'STATE':<12} {'STAGE':<8} {'CAPTURED':<21} {'KG':>6}  {'CARD':<16} {'TRIES':>5} {'AMB':>3}  NOTE"
    )
    for j in jobs:
        s = job_summary(j)
        note = j.note or j.last_error or ""
        print(
            f"{j.id:>6}  {j.state.value:<12} {j.stage.value:<8} {s['captured_at']:<21} "
            f"{s['weight_kg'] if s['weight_kg'] is not None else '-':>6}  {s['card'] or '-':<16} "
            f"{j.attempts:>5} {j.ambiguous:>3}  {note[:60]}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        job = ob.get(args.id)
        if job is None:
            raise UsageError(f"no weighing with id {args.id}")
        dead = ob.dead_letter(args.id)
        history = ob.history(args.id)
    finally:
        ob.close()
    doc = job_summary(job)
    doc["idempotency_key"] = job.uid
    doc["card_query_format"] = job.card_query[1] if job.card_query else None
    doc["home_studio"] = job.home_studio
    doc["measured_fields"] = sorted(k for k in job.body if k != "rawResults")
    if dead is not None:
        doc["dead_letter"] = {
            "at": _ts(dead.at),
            "stage": dead.stage,
            "status": dead.status,
            "errorCode": dead.error_code,
            "errorMessage": dead.error_message,
            "traceId": dead.trace_id,
        }
    doc["history"] = [{"at": _ts(at), "event": ev, "detail": detail} for at, ev, detail in history]
    if job.ambiguous:
        doc["warning"] = (
            f"{job.ambiguous} attempt(s) may have reached the platform without an answer: "
            "this weighing may exist twice there"
        )
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for key, value in doc.items():
        if key == "history":
            print("history:")
            for h in value:
                print(f"  {h['at']}  {h['event']:<20} {h['detail'] or ''}")
        elif isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if args.id is None and not args.dead:
        raise UsageError("give a weighing ID, or --dead to retry every dead letter")
    ob = _open(args)
    try:
        if args.dead:
            n = ob.retry_dead()
            print(f"{n} dead letter(s) queued again")
            return 0
        if not ob.retry(args.id):
            raise UsageError(f"weighing {args.id} cannot be retried (unknown, delivered or unidentified: use assign)")
        print(f"weighing {args.id} queued again")
    finally:
        ob.close()
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    card = args.card.strip()
    if not card:
        raise UsageError("--card is empty")
    ob = _open(args)
    try:
        if not ob.assign(args.id, card):
            raise UsageError(f"weighing {args.id} cannot be assigned (unknown or already delivered)")
    finally:
        ob.close()
    print(f"weighing {args.id} assigned to card {mask_card(card)}; it will upload shortly")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        n = ob.purge_delivered(time.time() - args.older_than_days * 86400)
    finally:
        ob.close()
    print(f"{n} delivered weighing(s) purged")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        offset = 0
        while True:
            jobs = ob.jobs(JobState(args.state) if args.state else None, limit=500, offset=offset)
            if not jobs:
                break
            for j in jobs:
                doc = job_summary(j)
                doc["card"] = j.card  # an export is for the operator: full data
                doc["body"] = j.body
                sys.stdout.write(json.dumps(doc) + "\n")
            offset += len(jobs)
    finally:
        ob.close()
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        info = ob.meta("corruption")
        if not ob.acknowledge_corruption():
            print("no corruption to acknowledge")
            return 0
    finally:
        ob.close()
    print(f"acknowledged: {info}")
    return 0
