"""Stopping: one deadline for everything, derived from the unit (``SCALE_BRIDGE_STOP_TIMEOUT_S``, set a
few seconds below ``TimeoutStopSec=``), so systemd never has to SIGKILL a clean stop."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from .. import sd_notify
from ..errors import EX_IOERR
from .assembly import Parts
from .housekeeping import Housekeeping

STOP_TIMEOUT_ENV = "SCALE_BRIDGE_STOP_TIMEOUT_S"
DEFAULT_STOP_TIMEOUT_S = 25.0


def stop_timeout_s(env: dict[str, str] | None = None) -> float:
    """The one shutdown deadline: from the unit's environment, else 25 s (the unit's TimeoutStopSec is 30 s)."""
    raw = (env if env is not None else os.environ).get(STOP_TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_STOP_TIMEOUT_S
    return value if 1.0 <= value <= 3600.0 else DEFAULT_STOP_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Running:
    link_tasks: list[asyncio.Task[None]]
    other_tasks: list[asyncio.Task[Any]]
    upload_task: asyncio.Task[None] | None
    house_task: asyncio.Task[None]
    metrics: Any


def start_metrics(listen: str, house: Housekeeping, log: Any) -> Any:
    if not listen:
        return None
    from ..metrics import serve

    try:
        server = serve(listen, lambda: house.latest)
    except (OSError, ImportError) as exc:
        log.error("metrics_unavailable", listen=listen, error=str(exc))
        return None
    log.info("metrics_listening", listen=listen)
    return server


async def shutdown(parts: Parts, run: Running, log: Any) -> int:
    """Stop intake, commit what was read, give in-flight uploads what is left of the deadline, close
    everything. Returns 74 if weighings could not be committed, else 0."""
    deadline = time.monotonic() + stop_timeout_s()

    def left(margin_s: float = 0.0) -> float:
        return max(0.1, deadline - time.monotonic() - margin_s)

    sd_notify.stopping()
    log.info("daemon_stopping")
    parts.housekeeping.stopping = True
    if parts.pc_mode is not None:
        await parts.pc_mode.close()
    for link in parts.links:
        try:
            await asyncio.wait_for(link.close(), left())
        except Exception as exc:  # noqa: BLE001 - a link that fails to close must not stop the shutdown
            log.warning("link_close_failed", link=link.name, error=str(exc))
    for t in [*run.link_tasks, *run.other_tasks]:
        t.cancel()
    await asyncio.gather(*run.link_tasks, *run.other_tasks, return_exceptions=True)
    parts.pump.close_recorder()
    parts.pump.flush_unsaved()
    if run.upload_task is not None:
        parts.uploader.stop()
        try:
            await asyncio.wait_for(run.upload_task, left(1.0))
        except TimeoutError:
            log.warning("uploads_cut_at_stop", action="in-flight attempts are recovered at the next start")
        except Exception:  # noqa: BLE001, S110 - the daemon's supervision reported it (part_crashed); the stop goes on
            pass
    run.house_task.cancel()
    await asyncio.gather(run.house_task, return_exceptions=True)
    parts.housekeeping.write_status(final=True)
    if run.metrics is not None:
        run.metrics.shutdown()
    await parts.client.aclose()
    code = 0
    if parts.pump.unsaved:
        log.critical("weighings_not_committed_at_exit", count=len(parts.pump.unsaved))
        code = EX_IOERR
    await parts.upload_store.close()  # an AsyncOutbox: its connection closed, its thread joined
    parts.outbox.close()
    return code
