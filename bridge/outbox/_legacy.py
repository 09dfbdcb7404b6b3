"""TRANSITIONAL - delete with the uploader's switch to ``WaitReason``.

The calls written before the outbox knew why a job waits (``retry_later`` without ``reason``,
``release_backoff(now)``) still work through this table, which reproduces what the version-1 store
did with the HTTP status it was given: a wait after no answer, a server error, a timeout or "too
early" ended when the platform answered again; a wait after a rate limit, a key rejection or another
refusal did not. It is the only place in ``bridge/outbox/`` that knows an HTTP status (by name, from
the standard library); ``tests/test_outbox_api.py`` keeps it that way. The decision belongs to the
caller's failure policy, which passes a ``WaitReason``.
"""

from __future__ import annotations

from http import HTTPStatus

from .schema import WaitReason

_OUTAGE_LIKE = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_EARLY})
_AUTH = frozenset({HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN})

# what ``release_backoff(now)`` releases
LEGACY_RELEASED: tuple[WaitReason, ...] = (WaitReason.OUTAGE,)


def reason_for_status(status: int | None) -> WaitReason:
    if status is None or status >= HTTPStatus.INTERNAL_SERVER_ERROR or status in _OUTAGE_LIKE:
        return WaitReason.OUTAGE
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return WaitReason.RATE_LIMIT
    if status in _AUTH:
        return WaitReason.AUTH
    return WaitReason.BACKOFF
