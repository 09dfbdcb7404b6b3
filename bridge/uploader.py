"""Compatibility module: the uploader lives in ``bridge.upload`` (loop, journey, policy)."""

from __future__ import annotations

from .upload.decisions import AUTH_PROBE_INTERVAL_S, UploadCounters
from .upload.loop import RESOLVE_MAX_AGE_S, Uploader, pool_size

__all__ = ["AUTH_PROBE_INTERVAL_S", "RESOLVE_MAX_AGE_S", "UploadCounters", "Uploader", "pool_size"]
