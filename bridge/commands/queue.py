"""``scale-bridge queue list|show|retry|assign|purge|export|ack-corruption``: look at and act on the
outbox. Safe beside a running daemon (SQLite WAL; writers wait for each other). The writers say
whether a running daemon (the state dir's lock holder) will act on the change.

Exit codes: 0 ok, 64 usage (a bad id or age, or an action that does not apply to that weighing),
66 no outbox or no such weighing, 65 a salvaged file with nothing readable in it."""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from ..cli import HELP_FORMATTER, add_config_arg, examples
from ..config import OUTBOX_FILE, load_config
from ..errors import EX_NOINPUT, BridgeError, InputError, UsageError
from ..logs import mask_card
from ..outbox import Job, JobState, Outbox
from ._queue_views import job_summary, list_lines, show_doc, show_lines

#: SQLite INTEGER is a signed 64-bit number
MAX_ID = 2**63 - 1


class NotFoundError(BridgeError):
    exit_code = EX_NOINPUT


def weighing_id(text: str) -> int:
    """argparse type: a weighing id (1 .. 2**63-1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a weighing id: {text!r}") from None
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"weighing ids are 1 to {MAX_ID}, not {text}")
    return value


def days(text: str) -> float:
    """argparse type: a finite, non-negative number of days."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more days, not {text}")
    return value


def limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "queue",
        help="inspect and act on the offline queue",
        description="The offline queue (outbox) in the state dir: every weighing until it is delivered. "
        "Safe beside the running daemon.",
        epilog=examples(
            "scale-bridge queue list",
            "scale-bridge queue show 42",
            "scale-bridge queue assign 42 --card 3220338716",
            "scale-bridge queue retry --dead",
        ),
        formatter_class=HELP_FORMATTER,
    )
    add_config_arg(p)
    qs = p.add_subparsers(dest="queue_command", metavar="ACTION", required=True)
    fmt = HELP_FORMATTER
    ls = qs.add_parser(
        "list",
        help="list weighings (default: everything not delivered)",
        formatter_class=fmt,
        epilog=examples("scale-bridge queue list --state dead", "scale-bridge queue list --state all --json"),
    )
    ls.add_argument(
        "--state",
        choices=[s.value for s in JobState] + ["all"],
        default=None,
        help="only weighings in this state (default: all but delivered; 'all' includes delivered)",
    )
    ls.add_argument("--limit", type=limit, default=100, metavar="N", help="at most N weighings (default 100)")
    ls.add_argument("--json", action="store_true", help="one JSON array (cards masked; [] when empty)")
    ls.set_defaults(func=cmd_list)
    sh = qs.add_parser(
        "show",
        help="one weighing: state, member, benefit, attempts, dead letter, history",
        formatter_class=fmt,
        epilog=examples("scale-bridge queue show 42 --json"),
    )
    sh.add_argument("id", type=weighing_id, help="the weighing's ID (queue list)")
    sh.add_argument("--json", action="store_true", help="as a JSON object")
    sh.set_defaults(func=cmd_show)
    rt = qs.add_parser(
        "retry",
        help="retry a weighing now (or every dead letter with --dead)",
        formatter_class=fmt,
        epilog=examples("scale-bridge queue retry 42", "scale-bridge queue retry --dead"),
    )
    rt.add_argument("id", type=weighing_id, nargs="?", help="the weighing's ID")
    rt.add_argument("--dead", action="store_true", help="retry every dead letter")
    rt.set_defaults(func=cmd_retry)
    asg = qs.add_parser(
        "assign",
        help="attach a member card to an unidentified/parked/dead weighing",
        formatter_class=fmt,
        epilog=examples("scale-bridge queue assign 42 --card 3220338716"),
    )
    asg.add_argument("id", type=weighing_id, help="the weighing's ID")
    asg.add_argument("--card", required=True, help="card number as the reader outputs it")
    asg.set_defaults(func=cmd_assign)
    pg = qs.add_parser(
        "purge",
        help="delete delivered weighings (dead letters are kept)",
        formatter_class=fmt,
        epilog=examples("scale-bridge queue purge --delivered --older-than-days 30"),
    )
    pg.add_argument("--delivered", action="store_true", required=True, help="required: only delivered ones go")
    pg.add_argument(
        "--older-than-days", type=days, default=0.0, metavar="D", help="only those delivered more than D days ago"
    )
    pg.set_defaults(func=cmd_purge)
    ex = qs.add_parser(
        "export",
        help="all weighings as JSON lines (bodies included) on stdout",
        description="Every weighing as one JSON line, body included. Card numbers are personal data: they are "
        "masked (last 4 characters) unless --unmasked; treat an unmasked export like the outbox itself.",
        formatter_class=fmt,
        epilog=examples(
            "scale-bridge queue export > weighings.jsonl",
            "scale-bridge queue export --from /var/lib/scale-bridge/outbox.db.corrupt-20261201T101500Z",
        ),
    )
    ex.add_argument("--state", choices=[s.value for s in JobState], default=None, help="only this state")
    ex.add_argument(
        "--unmasked", action="store_true", help="full card numbers (privacy: only for the gym's own systems)"
    )
    ex.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="salvage a moved-aside (corrupt) outbox: read-only, skips what cannot be read",
    )
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


def _state_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "state_dir", None):
        return Path(args.state_dir)
    return load_config(args.config, require_key=False).state_dir


def _open(args: argparse.Namespace) -> Outbox:
    path = _outbox_path(args)
    if not path.exists():
        raise NotFoundError(f"no outbox at {path} (has the daemon run yet?)")
    # secondary: a running daemon's in-flight attempts are not "interrupted" (no false ambiguous count)
    return Outbox(path, check=False, primary=False)


def _when_daemon(args: argparse.Namespace) -> str:
    from ..statelock import holder

    pid = holder(_state_dir(args))
    if pid is None:
        return "no daemon is running: it uploads when scale-bridge starts"
    return "the daemon" + (f" (pid {pid})" if pid > 0 else "") + " picks it up shortly"


def cmd_list(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        if args.state == "all":
            jobs = ob.jobs(limit=args.limit)
        elif args.state:
            jobs = ob.jobs(JobState(args.state), limit=args.limit)
        else:
            jobs = [j for j in ob.jobs(limit=1_000_000) if j.state is not JobState.DELIVERED][: args.limit]
        delivered = ob.stats().delivered
    finally:
        ob.close()
    if args.json:
        print(json.dumps([job_summary(j) for j in jobs]))
        return 0
    if not jobs:
        if args.state is None:
            print(f"nothing waiting ({delivered} delivered kept)")
        else:
            print(f"no weighings in state {args.state}")
        return 0
    for line in list_lines(jobs):
        print(line)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        job = ob.get(args.id)
        if job is None:
            raise NotFoundError(f"no weighing with id {args.id}")
        dead = ob.dead_letter(args.id)
        history = ob.history(args.id)
    finally:
        ob.close()
    doc = show_doc(job, dead, history)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for line in show_lines(doc, job):
        print(line)
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if args.id is None and not args.dead:
        raise UsageError("give a weighing ID, or --dead to retry every dead letter")
    ob = _open(args)
    try:
        if args.dead:
            n = ob.retry_dead()
            print(f"{n} dead letter(s) queued again" + (f"; {_when_daemon(args)}" if n else ""))
            return 0
        if not ob.retry(args.id):
            job = ob.get(args.id)
            if job is None:
                raise NotFoundError(f"no weighing with id {args.id}")
            hint = " (use queue assign ID --card N)" if job.state is JobState.UNIDENTIFIED else ""
            raise UsageError(f"weighing {args.id} is {job.state.value}: nothing to retry{hint}")
    finally:
        ob.close()
    print(f"weighing {args.id} queued again; {_when_daemon(args)}")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    card = args.card.strip()
    if not card:
        raise UsageError("--card is empty")
    ob = _open(args)
    try:
        if not ob.assign(args.id, card):
            job = ob.get(args.id)
            if job is None:
                raise NotFoundError(f"no weighing with id {args.id}")
            raise UsageError(f"weighing {args.id} is {job.state.value}: it cannot be assigned a card")
    finally:
        ob.close()
    print(f"weighing {args.id} assigned to card {mask_card(card)}; {_when_daemon(args)}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    ob = _open(args)
    try:
        n = ob.purge_delivered(time.time() - args.older_than_days * 86400)
    finally:
        ob.close()
    print(f"{n} delivered weighing(s) purged")
    return 0


def _mask_doc(doc: dict[str, Any], card: str | None) -> dict[str, Any]:
    """The export line with the card masked, also where the scale echoed it in the body (Tanita ID)."""
    if not card:
        return doc
    masked = mask_card(card)
    text = json.dumps(doc["body"]).replace(card, masked)
    return {**doc, "card": masked, "body": json.loads(text)}


def _export_doc(j: Job, unmasked: bool) -> dict[str, Any]:
    doc = job_summary(j)
    doc["card"] = j.card
    doc["body"] = j.body
    return doc if unmasked else _mask_doc(doc, j.card)


def cmd_export(args: argparse.Namespace) -> int:
    if args.from_file:
        return _salvage(Path(args.from_file), args)
    ob = _open(args)
    try:
        offset = 0
        while True:
            jobs = ob.jobs(JobState(args.state) if args.state else None, limit=500, offset=offset)
            if not jobs:
                break
            for j in jobs:
                sys.stdout.write(json.dumps(_export_doc(j, args.unmasked)) + "\n")
            offset += len(jobs)
    finally:
        ob.close()
    return 0


def _salvage(path: Path, args: argparse.Namespace) -> int:
    """Read what can be read from a damaged outbox, read-only, row by row."""
    if not path.is_file():
        raise NotFoundError(f"{path}: no such file")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open as SQLite: {exc}") from None
    db.row_factory = sqlite3.Row
    written = skipped = 0
    try:
        try:
            top = db.execute("SELECT MAX(id) FROM weighings").fetchone()[0] or 0
        except sqlite3.Error as exc:
            raise InputError(f"{path}: no readable weighings table ({exc})") from None
        for wid in range(1, int(top) + 1):
            try:
                row = db.execute("SELECT * FROM weighings WHERE id = ?", (wid,)).fetchone()
            except sqlite3.Error:
                skipped += 1
                continue
            if row is None:
                continue
            try:
                job = Job.from_row(row)
            except (ValueError, TypeError, KeyError, IndexError):
                skipped += 1
                continue
            if args.state and job.state.value != args.state:
                continue
            sys.stdout.write(json.dumps(_export_doc(job, args.unmasked)) + "\n")
            written += 1
    finally:
        db.close()
    print(f"salvaged {written} weighing(s) from {path}; {skipped} unreadable", file=sys.stderr)
    if written == 0 and skipped:
        raise InputError(f"{path}: nothing readable")
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
