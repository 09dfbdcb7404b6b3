"""Optional Prometheus text endpoint (``[metrics] listen = "127.0.0.1:9464"``).

The exporter reads the daemon's latest ``DaemonStatus`` (bridge/status.py), the same frozen value the
daemon writes to status.json and ``check`` reads: health and metrics cannot disagree about the queue.
No SQLite access from the exporter's thread, no second copy of the counters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from .status import DaemonStatus

#: queue states as exported (``scale_bridge_queue{state=...}``)
QUEUE_STATES = ("pending", "unidentified", "parked", "delivered", "dead")
UPLOAD_OUTCOMES = ("delivered", "retries", "ambiguous", "rate_limited", "dead_letters", "auth_failures")


def _state_dir() -> str | None:
    """The state directory systemd gives the unit (``$STATE_DIRECTORY``, the first if several)."""
    value = os.environ.get("STATE_DIRECTORY", "")
    return value.split(":", 1)[0] or None


def families(s: DaemonStatus) -> Iterator[Any]:
    """The metric families for one status (pure apart from the free-space reading)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    i, q, u = s.intake, s.queue, s.uploads
    frames = CounterMetricFamily("scale_bridge_frames", "Frames decoded from the scale", labels=["result"])
    frames.add_metric(["accepted"], i.frames - i.rejected_frames)
    frames.add_metric(["rejected"], i.rejected_frames)
    yield frames
    yield CounterMetricFamily(
        "scale_bridge_weighings_captured", "Weighings committed to the outbox", value=i.weighings_captured
    )
    yield CounterMetricFamily("scale_bridge_duplicates", "Readings skipped as duplicates", value=i.duplicates)
    yield CounterMetricFamily(
        "scale_bridge_implausible", "Weighings parked as outside the plausible ranges", value=i.implausible
    )
    up = CounterMetricFamily("scale_bridge_uploads", "Upload outcomes", labels=["outcome"])
    for outcome in UPLOAD_OUTCOMES:
        up.add_metric([outcome], getattr(u, outcome))
    yield up
    yield CounterMetricFamily("scale_bridge_http_429", "429 answers from the platform", value=u.rate_limited)
    queue = GaugeMetricFamily("scale_bridge_queue", "Weighings in the outbox by state", labels=["state"])
    for state in QUEUE_STATES:
        queue.add_metric([state], getattr(q, state))
    yield queue
    yield GaugeMetricFamily(
        "scale_bridge_ambiguous_weighings",
        "Weighings with an attempt that may have reached the platform (possible duplicates)",
        value=q.ambiguous,
    )
    yield GaugeMetricFamily(
        "scale_bridge_oldest_pending_age_seconds",
        "Age of the oldest weighing waiting for an upload (state pending)",
        value=q.oldest_pending_age_s,
    )
    yield GaugeMetricFamily(
        "scale_bridge_oldest_waiting_for_staff_age_seconds",
        "Age of the oldest weighing waiting for staff (unidentified or parked)",
        value=q.oldest_waiting_for_staff_age_s,
    )
    yield GaugeMetricFamily(
        "scale_bridge_last_success_timestamp_seconds",
        "Last delivered upload (epoch)",
        value=q.last_delivered_at or 0.0,
    )
    yield GaugeMetricFamily(
        "scale_bridge_storage_error", "1 while outbox commits are failing", value=1.0 if s.storage_error else 0.0
    )
    yield GaugeMetricFamily(
        "scale_bridge_api_key_rejected", "1 while the platform rejects the key", value=1.0 if s.auth_rejected else 0.0
    )
    info = GaugeMetricFamily("scale_bridge_info", "The scale this daemon serves", labels=["scale", "driver"])
    info.add_metric([s.scale, s.driver], 1.0)
    yield info
    link = GaugeMetricFamily(
        "scale_bridge_link_up", "1 while the link (scale, card reader) is connected", labels=["link"]
    )
    for name, state in s.links.items():
        link.add_metric([name], 1.0 if state.healthy else 0.0)
    yield link
    yield GaugeMetricFamily(
        "scale_bridge_last_weighing_timestamp_seconds",
        "Last weighing captured (epoch; 0: none since the start)",
        value=s.last_weighing_at or 0.0,
    )
    yield GaugeMetricFamily(
        "scale_bridge_last_frame_timestamp_seconds",
        "Last frame read from the scale (epoch; 0: none since the start)",
        value=s.last_frame_at or 0.0,
    )
    yield GaugeMetricFamily(
        "scale_bridge_start_timestamp_seconds", "When the daemon started (epoch)", value=s.started_at
    )
    yield GaugeMetricFamily(
        "scale_bridge_unsaved_weighings", "Weighings held in memory, not committed", value=s.unsaved_in_memory
    )
    benefit = GaugeMetricFamily(
        "scale_bridge_benefit_valid_ratio",
        "Share of the last members checked for whom the configured benefit was valid (-1: none checked)",
        labels=["benefit_key"],
    )
    b = s.benefit
    benefit.add_metric([b.key], b.valid / b.checked if b.checked else -1.0)
    yield benefit
    path = _state_dir()
    if path is not None:
        try:
            st = os.statvfs(path)
        except OSError:
            return
        yield GaugeMetricFamily(
            "scale_bridge_state_fs_avail_bytes",
            "Free space for the outbox (the state directory's file system, unprivileged)",
            value=float(st.f_bavail * st.f_frsize),
        )
        yield GaugeMetricFamily(
            "scale_bridge_state_fs_size_bytes",
            "Size of the state directory's file system",
            value=float(st.f_blocks * st.f_frsize),
        )


def _collector(get: Callable[[], DaemonStatus | None]) -> Any:
    class BridgeCollector:
        def collect(self) -> Iterator[Any]:
            status = get()
            if status is not None:
                yield from families(status)

    return BridgeCollector()


def serve(listen: str, get: Callable[[], DaemonStatus | None]) -> Any:
    """Start the exporter thread; returns the server (``shutdown()`` it on exit)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from .config import parse_listen

    parsed = parse_listen(listen)
    if parsed is None:
        raise OSError(f"metrics.listen {listen!r} is not host:port")
    host, port = parsed
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_collector(get))
    server, _thread = start_http_server(port, addr=host or "127.0.0.1", registry=registry)
    return server
