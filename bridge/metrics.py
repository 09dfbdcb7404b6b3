"""Optional Prometheus text endpoint (``[metrics] listen = "127.0.0.1:9464"``).

The daemon refreshes a plain snapshot on its own loop; the exporter thread only reads that snapshot
(no SQLite access from another thread, no second copy of the counters).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

Snapshot = dict[str, Any]


def _epoch(iso: object) -> float:
    """The snapshot's ISO times (``_utc`` in daemon.py) as epoch seconds; 0 when absent."""
    if not isinstance(iso, str) or not iso:
        return 0.0
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _state_dir() -> str | None:
    """The state directory systemd gives the unit (``$STATE_DIRECTORY``, the first if several)."""
    value = os.environ.get("STATE_DIRECTORY", "")
    return value.split(":", 1)[0] or None


def _collector(get: Callable[[], Snapshot]) -> Any:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class BridgeCollector:
        def collect(self) -> Iterator[Any]:
            s = get()
            frames = CounterMetricFamily("scale_bridge_frames", "Frames decoded from the scale", labels=["result"])
            frames.add_metric(["accepted"], s.get("frames", 0) - s.get("rejected_frames", 0))
            frames.add_metric(["rejected"], s.get("rejected_frames", 0))
            yield frames
            yield CounterMetricFamily(
                "scale_bridge_weighings_captured",
                "Weighings committed to the outbox",
                value=s.get("weighings_captured", 0),
            )
            yield CounterMetricFamily(
                "scale_bridge_duplicates", "Readings skipped as duplicates", value=s.get("duplicates", 0)
            )
            up = CounterMetricFamily("scale_bridge_uploads", "Upload outcomes", labels=["outcome"])
            for outcome in ("delivered", "retries", "ambiguous", "rate_limited", "dead_letters", "auth_failures"):
                up.add_metric([outcome], s.get("uploads", {}).get(outcome, 0))
            yield up
            yield CounterMetricFamily(
                "scale_bridge_http_429",
                "429 answers from the platform",
                value=s.get("uploads", {}).get("rate_limited", 0),
            )
            q = GaugeMetricFamily("scale_bridge_queue", "Weighings in the outbox by state", labels=["state"])
            for state, n in s.get("queue", {}).items():
                if state != "ambiguous":
                    q.add_metric([state], n)
            yield q
            yield GaugeMetricFamily(
                "scale_bridge_ambiguous_weighings",
                "Weighings with an attempt that may have reached the platform (possible duplicates)",
                value=s.get("queue", {}).get("ambiguous", 0),
            )
            yield GaugeMetricFamily(
                "scale_bridge_oldest_pending_age_seconds",
                "Age of the oldest pending weighing",
                value=s.get("oldest_pending_age_s", 0.0),
            )
            yield GaugeMetricFamily(
                "scale_bridge_last_success_timestamp_seconds",
                "Last delivered upload (epoch)",
                value=s.get("last_upload_epoch") or 0.0,
            )
            yield GaugeMetricFamily(
                "scale_bridge_storage_error",
                "1 while outbox commits are failing",
                value=1.0 if s.get("storage_error") else 0.0,
            )
            yield GaugeMetricFamily(
                "scale_bridge_api_key_rejected",
                "1 while the platform rejects the key",
                value=1.0 if s.get("auth_rejected") else 0.0,
            )
            info = GaugeMetricFamily("scale_bridge_info", "The scale this daemon serves", labels=["scale", "driver"])
            info.add_metric([str(s.get("scale", "")), str(s.get("driver", ""))], 1.0)
            yield info
            link = GaugeMetricFamily(
                "scale_bridge_link_up", "1 while the link (scale, card reader) is connected", labels=["link"]
            )
            for name, state in (s.get("links") or {}).items():
                link.add_metric([str(name)], 1.0 if state == "connected" else 0.0)
            yield link
            yield GaugeMetricFamily(
                "scale_bridge_last_weighing_timestamp_seconds",
                "Last weighing captured (epoch; 0: none since the start)",
                value=_epoch(s.get("last_weighing_at")),
            )
            yield GaugeMetricFamily(
                "scale_bridge_last_frame_timestamp_seconds",
                "Last frame read from the scale (epoch; 0: none since the start)",
                value=float(s.get("last_frame_at_epoch") or 0.0),
            )
            yield GaugeMetricFamily(
                "scale_bridge_start_timestamp_seconds",
                "When the daemon started (epoch)",
                value=_epoch(s.get("started_at")),
            )
            yield GaugeMetricFamily(
                "scale_bridge_unsaved_weighings",
                "Weighings held in memory, not committed",
                value=s.get("unsaved_in_memory", 0),
            )
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

    return BridgeCollector()


def serve(listen: str, get: Callable[[], Snapshot]) -> Any:
    """Start the exporter thread; returns the server (``shutdown()`` it on exit)."""
    from prometheus_client import CollectorRegistry, start_http_server

    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_collector(get))
    server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)
    return server
