"""Health evaluation for ``scale-bridge check`` (Nagios plugin conventions).

Each component yields a ``Finding`` (OK / WARNING / CRITICAL / UNKNOWN + message + perfdata); the
overall status is the worst one. Reads the outbox read-only and the daemon's status file; probes the
platform with ``HEAD`` (validates the key only).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from .config import Config


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass
class Finding:
    component: str
    status: Status
    message: str
    perfdata: dict[str, tuple[float, float | None, float | None]] = field(default_factory=dict)


def _worst(findings: list[Finding]) -> Status:
    order = [Status.OK, Status.UNKNOWN, Status.WARNING, Status.CRITICAL]  # CRITICAL beats all
    return max((f.status for f in findings), key=order.index, default=Status.OK)


def check_db(cfg: Config, now: float) -> list[Finding]:
    path = cfg.outbox_path
    out: list[Finding] = []
    free_mb = None
    try:
        free_mb = shutil.disk_usage(cfg.state_dir).free / 1e6
    except OSError as exc:
        out.append(Finding("disk", Status.CRITICAL, f"state dir {cfg.state_dir}: {exc.strerror}"))
    if free_mb is not None:
        h = cfg.health
        st = (
            Status.CRITICAL
            if free_mb < h.disk_free_critical_mb
            else Status.WARNING
            if free_mb < h.disk_free_warning_mb
            else Status.OK
        )
        out.append(
            Finding(
                "disk",
                st,
                f"{free_mb:.0f} MB free in {cfg.state_dir}",
                {"disk_free_mb": (round(free_mb), h.disk_free_warning_mb, h.disk_free_critical_mb)},
            )
        )
    if not path.exists():
        out.append(Finding("db", Status.WARNING, f"no outbox yet at {path} (daemon never started?)"))
        return out
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        out.append(Finding("db", Status.CRITICAL, f"cannot open {path}: {exc}"))
        return out
    try:
        qc = db.execute("PRAGMA quick_check").fetchall()
        if qc != [("ok",)]:
            out.append(Finding("db", Status.CRITICAL, f"quick_check failed: {qc[:3]}"))
            return out
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        counts = dict(db.execute("SELECT state, COUNT(*) FROM weighings GROUP BY state").fetchall())
        oldest = db.execute("SELECT MIN(captured_at) FROM weighings WHERE state = 'pending'").fetchone()[0]
        ambiguous = db.execute("SELECT COUNT(*) FROM weighings WHERE ambiguous > 0").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        out.append(Finding("db", Status.CRITICAL, f"outbox unreadable: {exc}"))
        return out
    finally:
        db.close()
    if "corruption" in meta:
        info = json.loads(meta["corruption"])
        out.append(
            Finding(
                "db",
                Status.CRITICAL,
                f"outbox was corrupt and moved aside to {info.get('moved_to')} "
                f"({info.get('reason')}); acknowledge with `scale-bridge queue ack-corruption`",
            )
        )
    else:
        out.append(Finding("db", Status.OK, "outbox ok"))
    if "auth_failure" in meta:
        info = json.loads(meta["auth_failure"])
        out.append(
            Finding(
                "platform_key",
                Status.CRITICAL,
                f"the platform rejected the API key (HTTP {info.get('status')}): uploads stopped, queue kept",
            )
        )
    h = cfg.health
    pending = int(counts.get("pending", 0))
    dead = int(counts.get("dead", 0))
    unident = int(counts.get("unidentified", 0)) + int(counts.get("parked", 0))
    age = 0.0 if oldest is None else max(0.0, now - float(oldest))
    st = Status.OK
    msgs = [f"{pending} pending"]
    if age >= h.pending_age_critical_s:
        st = Status.CRITICAL
    elif age >= h.pending_age_warning_s or pending >= h.pending_count_warning:
        st = Status.WARNING
    if oldest is not None:
        msgs.append(f"oldest {age / 60:.0f} min")
    out.append(
        Finding(
            "queue",
            st,
            ", ".join(msgs),
            {
                "pending": (pending, h.pending_count_warning, None),
                "oldest_pending_s": (round(age), h.pending_age_warning_s, h.pending_age_critical_s),
            },
        )
    )
    out.append(
        Finding(
            "dead_letters",
            Status.WARNING if dead >= h.dead_letters_warning else Status.OK,
            f"{dead} dead letter(s)" + (" (see `scale-bridge queue list --state dead`)" if dead else ""),
            {"dead": (dead, h.dead_letters_warning, None)},
        )
    )
    out.append(
        Finding(
            "ambiguous",
            Status.WARNING if ambiguous >= h.ambiguous_warning else Status.OK,
            f"{ambiguous} weighing(s) may exist twice on the platform",
            {"ambiguous": (ambiguous, h.ambiguous_warning, None)},
        )
    )
    out.append(
        Finding(
            "unidentified",
            Status.OK,
            f"{unident} waiting for staff (unidentified/parked)",
            {"unidentified": (unident, None, None)},
        )
    )
    return out


def check_daemon(cfg: Config, now: float) -> list[Finding]:
    path = cfg.status_path
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [Finding("daemon", Status.CRITICAL, "daemon not running (no status file)")]
    except (OSError, ValueError) as exc:
        return [Finding("daemon", Status.UNKNOWN, f"status file unreadable: {exc}")]
    age = now - float(doc.get("updated_at_epoch", 0))
    pid = int(doc.get("pid", 0))
    alive = False
    if pid > 0:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    out: list[Finding] = []
    if doc.get("state") == "stopped" or not alive:
        out.append(Finding("daemon", Status.CRITICAL, "daemon not running"))
    elif age > cfg.health.daemon_stale_s:
        out.append(Finding("daemon", Status.CRITICAL, f"daemon status is {age:.0f} s old (hung?)"))
    else:
        out.append(Finding("daemon", Status.OK, f"daemon running (pid {pid})"))
    if doc.get("storage_error"):
        out.append(
            Finding(
                "disk_writes",
                Status.CRITICAL,
                f"outbox commits failing ({doc['storage_error']}); {doc.get('unsaved_in_memory')} held in memory",
            )
        )
    links = doc.get("links") or {}
    bad = {k: v for k, v in links.items() if v not in ("connected", "replaying", "finished", "scanning")}
    if bad and out[0].status is Status.OK:
        out.append(Finding("links", Status.WARNING, "link(s) down: " + ", ".join(f"{k}={v}" for k, v in bad.items())))
    elif links:
        out.append(Finding("links", Status.OK, ", ".join(f"{k}={v}" for k, v in links.items())))
    last = doc.get("last_frame_at_epoch")
    warn = cfg.health.last_frame_warning_s
    if warn and out[0].status is Status.OK:
        frame_age = None if last is None else now - float(last)
        if frame_age is None or frame_age > warn:
            out.append(
                Finding(
                    "scale",
                    Status.WARNING,
                    "no data from the scale " + ("yet" if frame_age is None else f"for {frame_age / 60:.0f} min"),
                )
            )
    return out


async def check_platform(cfg: Config) -> Finding:
    from .errors import AuthRejected, PlatformError
    from .platform import PlatformClient

    client = PlatformClient(cfg.platform.base_url, cfg.platform.api_key, timeout_s=10, connect_timeout_s=5)
    try:
        await client.check_key()
    except AuthRejected as exc:
        return Finding("platform", Status.CRITICAL, f"API key rejected (HTTP {exc.status})")
    except PlatformError as exc:
        return Finding("platform", Status.WARNING, f"platform unreachable: {exc.message}")
    finally:
        await client.aclose()
    return Finding("platform", Status.OK, "platform reachable, key valid")


async def check_lookinbody(cfg: Config) -> Finding:
    """InBody sites: ``/user/test`` (Account + API-KEY) and one data call (the data-access add-on)."""
    if not cfg.lookinbody.api_key:
        return Finding("lookinbody", Status.UNKNOWN, "no LookinBody API key readable by this user: not probed")
    from drivers.links.lookinbody import describe, probe

    healthy, message = describe(await probe(cfg.lookinbody.settings()))
    return Finding("lookinbody", Status.OK if healthy else Status.CRITICAL, message)


def check_systemd(unit: str) -> Finding | None:
    if shutil.which("systemctl") is None:
        return None
    try:
        r = subprocess.run(
            ["systemctl", "show", unit, "--property=ActiveState,SubState,NRestarts"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    props = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    state = props.get("ActiveState")
    if not state or (state == "inactive" and props.get("SubState") == "dead" and r.returncode != 0):
        return None
    st = Status.OK if state == "active" else Status.CRITICAL
    return Finding("systemd", st, f"{unit}: {state}/{props.get('SubState')}, restarts {props.get('NRestarts', '?')}")


def summarize(findings: list[Finding]) -> tuple[Status, str]:
    status = _worst(findings)
    bad = [f for f in findings if f.status is not Status.OK]
    summary = (
        "; ".join(f.message for f in bad)
        if bad
        else "; ".join(f.message for f in findings if f.component in ("queue", "daemon", "platform"))
    )
    perf = " ".join(
        f"{k}={v[0]:g};{'' if v[1] is None else f'{v[1]:g}'};{'' if v[2] is None else f'{v[2]:g}'}"
        for f in findings
        for k, v in f.perfdata.items()
    )
    return status, f"SCALE-BRIDGE {status.name}: {summary} | {perf}".rstrip(" |")
