"""Health evaluation for ``scale-bridge check`` (Nagios plugin conventions).

Each component yields a ``Finding`` (OK / WARNING / CRITICAL / UNKNOWN + message + perfdata); the
overall status is the worst one, and the summary lists the worst findings first. The queue figures
come from the outbox's read model (``QueueStats``, read-only) and the daemon's figures from its
``DaemonStatus`` file: the same values the metrics export. The platform is probed with ``HEAD``
(validates the key only).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from enum import IntEnum

from .config import Config
from .status import DaemonStatus


class Status(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


#: severity order for the summary and the overall status: CRITICAL beats everything
_SEVERITY = (Status.OK, Status.UNKNOWN, Status.WARNING, Status.CRITICAL)


@dataclass(frozen=True, slots=True)
class Perf:
    """One Nagios performance value: ``label=value[UOM];warn;crit;min;max``. ``low_is_bad`` writes the
    thresholds as lower bounds (``200:``: alert below 200), as for free disk space."""

    value: float
    warn: float | None = None
    crit: float | None = None
    uom: str = ""
    minimum: float | None = 0.0
    low_is_bad: bool = False

    def render(self, label: str) -> str:
        def th(x: float | None) -> str:
            if x is None:
                return ""
            return f"{x:g}:" if self.low_is_bad else f"{x:g}"

        minimum = "" if self.minimum is None else f"{self.minimum:g}"
        fields = [f"{self.value:g}{self.uom}", th(self.warn), th(self.crit), minimum]
        return f"{label}=" + ";".join(fields).rstrip(";")


@dataclass
class Finding:
    component: str
    status: Status
    message: str
    perfdata: dict[str, Perf] = field(default_factory=dict)


def worst(findings: list[Finding]) -> Status:
    return max((f.status for f in findings), key=_SEVERITY.index, default=Status.OK)


def _level(value: float, warn: float | None, crit: float | None) -> Status:
    if crit is not None and value >= crit:
        return Status.CRITICAL
    if warn is not None and value >= warn:
        return Status.WARNING
    return Status.OK


# ---- the disk and the outbox -------------------------------------------------------------------------


def check_disk(cfg: Config) -> Finding:
    h = cfg.health
    try:
        free_mb = shutil.disk_usage(cfg.state_dir).free / 1e6
    except OSError as exc:
        return Finding("disk", Status.CRITICAL, f"state dir {cfg.state_dir}: {exc.strerror}")
    st = (
        Status.CRITICAL
        if free_mb < h.disk_free_critical_mb
        else Status.WARNING
        if free_mb < h.disk_free_warning_mb
        else Status.OK
    )
    perf = Perf(round(free_mb), h.disk_free_warning_mb, h.disk_free_critical_mb, "MB", low_is_bad=True)
    return Finding("disk", st, f"{free_mb:.0f} MB free in {cfg.state_dir}", {"disk_free": perf})


def check_db(cfg: Config, now: float) -> list[Finding]:
    from .outbox.admin import open_read_only

    path = cfg.outbox_path
    out = [check_disk(cfg)]
    if not path.exists():
        out.append(Finding("db", Status.WARNING, f"no outbox yet at {path} (daemon never started?)"))
        return out
    try:
        model = open_read_only(path)
    except (sqlite3.Error, OSError) as exc:
        out.append(Finding("db", Status.CRITICAL, f"cannot open {path}: {exc}"))
        return out
    try:
        qc = model.quick_check()
        if qc != "ok":
            out.append(Finding("db", Status.CRITICAL, f"quick_check failed: {qc[:200]}"))
            return out
        stats = model.stats()
        corruption = model.meta("corruption")
        auth = model.meta("auth_failure")
    except sqlite3.DatabaseError as exc:
        out.append(Finding("db", Status.CRITICAL, f"outbox unreadable: {exc}"))
        return out
    finally:
        model.close()
    if corruption:
        info = json.loads(corruption)
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
    if auth:
        info = json.loads(auth)
        out.append(
            Finding(
                "platform_key",
                Status.CRITICAL,
                f"the platform rejected the API key (HTTP {info.get('status')}): uploads stopped, queue kept",
            )
        )
    out.extend(queue_findings(cfg, stats, now))
    return out


def queue_findings(cfg: Config, stats: object, now: float) -> list[Finding]:
    """The queue, from the outbox's ``QueueStats`` (the one read model the metrics share)."""
    from .status import QueueFigures

    q = QueueFigures.from_stats(stats, now)
    h = cfg.health
    age = q.oldest_pending_age_s
    st = max(
        _level(age, h.pending_age_warning_s, h.pending_age_critical_s),
        _level(q.pending, h.pending_count_warning, None),
        key=_SEVERITY.index,
    )
    msg = f"{q.pending} pending" + (f", oldest {age / 60:.0f} min" if q.pending else "")
    out = [
        Finding(
            "queue",
            st,
            msg,
            {
                "pending": Perf(q.pending, h.pending_count_warning),
                "oldest_pending": Perf(round(age), h.pending_age_warning_s, h.pending_age_critical_s, "s"),
            },
        ),
        Finding(
            "dead_letters",
            _level(q.dead, h.dead_letters_warning, None),
            f"{q.dead} dead letter(s)" + (" (see `scale-bridge queue list --state dead`)" if q.dead else ""),
            {"dead": Perf(q.dead, h.dead_letters_warning)},
        ),
        Finding(
            "ambiguous",
            _level(q.ambiguous, h.ambiguous_warning, None),
            f"{q.ambiguous} weighing(s) may exist twice on the platform",
            {"ambiguous": Perf(q.ambiguous, h.ambiguous_warning)},
        ),
    ]
    staff = q.unidentified + q.parked
    warn = h.unidentified_warning or None
    staff_msg = f"{staff} waiting for staff (unidentified/parked)"
    if staff:
        staff_msg += f", oldest {q.oldest_waiting_for_staff_age_s / 3600:.1f} h (scale-bridge queue list)"
    out.append(
        Finding(
            "unidentified",
            _level(staff, warn, None),
            staff_msg,
            {
                "waiting_for_staff": Perf(staff, warn),
                "oldest_waiting_for_staff": Perf(round(q.oldest_waiting_for_staff_age_s), uom="s"),
            },
        )
    )
    return out


# ---- the daemon ----------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_status(cfg: Config) -> DaemonStatus | Finding:
    try:
        return DaemonStatus.from_json(cfg.status_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Finding("daemon", Status.CRITICAL, "daemon not running (no status file)")
    except (OSError, ValueError) as exc:
        return Finding("daemon", Status.UNKNOWN, f"status file unreadable: {exc}")


def _daemon(cfg: Config, status: DaemonStatus, now: float) -> Finding:
    age = now - status.updated_at
    if not (status.running and _pid_alive(status.pid)):
        return Finding("daemon", Status.CRITICAL, "daemon not running")
    if age > cfg.health.daemon_stale_s:
        return Finding("daemon", Status.CRITICAL, f"daemon status is {age:.0f} s old (hung?)")
    return Finding("daemon", Status.OK, f"daemon running (pid {status.pid})")


def _links(status: DaemonStatus, fresh: bool) -> list[Finding]:
    links = ", ".join(f"{k}={v.value}" for k, v in status.links.items())
    if not links:
        return []
    if not fresh:  # what the daemon last said, when it can no longer say anything: marked as such
        return [Finding("links", Status.UNKNOWN, f"last known before the daemon stopped (stale): {links}")]
    down = {k: v for k, v in status.links.items() if not v.healthy}
    if down:
        text = ", ".join(f"{k}={v.value}" for k, v in down.items())
        return [Finding("links", Status.WARNING, f"link(s) down: {text}")]
    return [Finding("links", Status.OK, links)]


def check_daemon(cfg: Config, now: float) -> list[Finding]:
    status = _read_status(cfg)
    if isinstance(status, Finding):
        return [status]
    daemon = _daemon(cfg, status, now)
    fresh = daemon.status is Status.OK
    out = [daemon]
    if status.storage_error and fresh:
        out.append(
            Finding(
                "disk_writes",
                Status.CRITICAL,
                f"outbox commits failing ({status.storage_error}); {status.unsaved_in_memory} held in memory",
            )
        )
    out.extend(_links(status, fresh))
    if fresh:
        out.extend(_scale_quiet(cfg, status, now))
        out.extend(_benefit(cfg, status))
    return out


def _scale_quiet(cfg: Config, status: DaemonStatus, now: float) -> list[Finding]:
    warn = cfg.health.last_frame_warning_s
    if not warn:
        return []
    frame_age = None if status.last_frame_at is None else now - status.last_frame_at
    if frame_age is not None and frame_age <= warn:
        return []
    quiet = "yet" if frame_age is None else f"for {frame_age / 60:.0f} min"
    return [Finding("scale", Status.WARNING, f"no data from the scale {quiet}")]


def _benefit(cfg: Config, status: DaemonStatus) -> list[Finding]:
    """A benefit valid for none of the last members checked is most likely a typo in the key."""
    b = status.benefit
    need = cfg.health.benefit_checks_warning
    if not b.key or not need or b.checked < need or b.valid:
        return []
    return [
        Finding(
            "benefit",
            Status.WARNING,
            f"benefit {b.key} valid for 0 of the last {b.checked} members checked "
            "(typo in platform.benefit_key? their weighings are uploaded without it)",
            {"benefit_valid": Perf(b.valid, uom="", minimum=0)},
        )
    ]


# ---- the platform, LookinBody, systemd -----------------------------------------------------------------


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


async def evaluate(cfg: Config, *, now: float, probe: bool, unit: str) -> list[Finding]:
    """Every finding for one configured scale (``check`` and each instance of ``check --all``)."""
    findings = [Finding("config", Status.OK, "config valid")]
    findings += check_db(cfg, now)
    findings += check_daemon(cfg, now)
    if not cfg.platform.api_key:
        findings.append(
            Finding(
                "platform",
                Status.UNKNOWN,
                "no API key readable by this user: platform not probed "
                "(run as root, or via systemd-run with LoadCredential, see docs/install.md)",
            )
        )
    elif probe:
        findings.append(await check_platform(cfg))
    if cfg.scale.driver == "inbody" and not cfg.scale.capture and probe:
        findings.append(await check_lookinbody(cfg))  # InBody: LookinBody Web key and add-on
    sd = check_systemd(unit)
    if sd is not None:
        findings.append(sd)
    return findings


def summarize(findings: list[Finding]) -> tuple[Status, str]:
    status = worst(findings)
    bad = sorted((f for f in findings if f.status is not Status.OK), key=lambda f: -_SEVERITY.index(f.status))
    summary = (
        "; ".join(f.message for f in bad)
        if bad
        else "; ".join(f.message for f in findings if f.component in ("queue", "daemon", "platform"))
    )
    perf = " ".join(perf.render(label) for f in findings for label, perf in f.perfdata.items())
    return status, f"SCALE-BRIDGE {status.name}: {summary} | {perf}".rstrip(" |")
