"""The platform simulator's HTTP layer: a real aiohttp server on 127.0.0.1.

Every request to the API is validated against the published OpenAPI description
(``platform-openapi.json``, a copy of shared/reference) with the compiled validator in ``validate.py``
(jsonschema-rs). openapi-core did the same at several hundred times the CPU (docs/benchmarks.md) and is
kept only as the reference that the bench and the tests compare with (``OpenApiCoreValidator``). A
request that does not conform gets the documented ``400 ErrorResponse``. Test/demo control lives under
``/_sim/``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from .model import FAULT_KINDS, Customer, Faults, PlatformState
from .validate import RequestValidator

SPEC_PATH = Path(__file__).with_name("platform-openapi.json")


class Validator(Protocol):
    def problems(self, request: web.Request, body: bytes) -> list[str]: ...


STATE: web.AppKey[PlatformState] = web.AppKey("state", PlatformState)
VALIDATOR: web.AppKey[Validator] = web.AppKey("validator", Validator)
OPERATION: web.RequestKey[str] = web.RequestKey("operation", str)
STUDIO: web.RequestKey[int] = web.RequestKey("studio", int)


def load_spec(path: Path = SPEC_PATH) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    spec["servers"] = [{"url": "/"}]  # served on 127.0.0.1, not on the tenant host
    return spec


class CompiledValidator:
    """The default: ``validate.RequestValidator`` (schemas compiled once with jsonschema-rs)."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.compiled = RequestValidator(spec or load_spec())

    def problems(self, request: web.Request, body: bytes) -> list[str]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return self.compiled.validate_request(
            request.method,
            request.path,
            query=request.query.items(),
            headers=headers,
            content_type=request.headers.get("Content-Type"),
            body=body,
        )


class OpenApiCoreValidator:
    """The old validator (openapi-core), kept as the reference: bench and tests compare with it.
    openapi-core is not a dependency of the simulator any more (the ``dev`` extra has it)."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        from openapi_core import OpenAPI

        self.openapi = OpenAPI.from_dict(spec or load_spec())

    def problems(self, request: web.Request, body: bytes) -> list[str]:
        from openapi_core.contrib.aiohttp import AIOHTTPOpenAPIWebRequest

        result = self.openapi.unmarshal_request(AIOHTTPOpenAPIWebRequest(request, body=body or None))
        return [_describe(e) for e in result.errors]


def error(status: int, message: str, code: str, reference: str | None = None) -> web.Response:
    doc: dict[str, Any] = {"errorMessage": message, "errorCode": code, "traceId": uuid.uuid4().hex}
    if reference:
        doc["reference"] = reference
    return web.json_response(doc, status=status)


def _studio(request: web.Request) -> int:
    return request[STUDIO]


def _now() -> datetime:
    return datetime.now(UTC)


def _measurement(c: Customer) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": c.id,
        "firstName": c.first_name,
        "lastName": c.last_name,
        "age": c.age(date.today()),
        "dateOfBirth": c.date_of_birth,
        "gender": c.gender,
    }
    if c.height_cm is not None:
        doc["height"] = c.height_cm
    return doc


#: the customer identifiers of the lookup operations (1.11.1 added ``pin``)
IDENTIFIERS = ("cardNumber", "qrCodeUuid", "barcode", "pin", "debtorId", "customerNumber")


def _identifier_problem(q: Any) -> web.Response | None:
    given = [k for k in IDENTIFIERS if k in q]
    if len(given) != 1:
        return error(400, "Exactly one identifier must be provided.", "VALIDATION_FAILED", ",".join(given) or None)
    if given != ["cardNumber"]:
        return error(400, f"Only lookup by card number is simulated, not by {given[0]}.", "NOT_SIMULATED", given[0])
    return None


async def measurement_latest(request: web.Request) -> web.Response:
    st = request.app[STATE]
    q = request.query
    refused = _identifier_problem(q)
    if refused is not None:
        return refused
    c = st.find_card(q["cardNumber"], q.get("cardNumberFormat", "DECIMAL"), _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    return web.json_response(_measurement(c))


async def customer_by(request: web.Request, *, cross: bool) -> web.Response:
    st = request.app[STATE]
    q = request.query
    refused = _identifier_problem(q)
    if refused is not None:
        return refused
    c = st.find_card(q["cardNumber"], q.get("cardNumberFormat", "DECIMAL"), None if cross else _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    return web.json_response(
        {
            "id": c.id,
            "customerNumber": f"C{c.id}",
            "firstName": c.first_name,
            "lastName": c.last_name,
            "status": "MEMBER",
            "accessRefusal": False,
            "studioId": c.studio,
        }
    )


async def cross_studio_by(request: web.Request) -> web.Response:
    return await customer_by(request, cross=True)


async def get_customer_by(request: web.Request) -> web.Response:
    return await customer_by(request, cross=False)


def _benefit_list(st: PlatformState, c: Customer, keys: list[str]) -> list[dict[str, Any]]:
    now = _now()
    wanted = keys or sorted(set(c.benefits) | set(st.benefit_quota))
    return [{"key": k, "valid": st.benefit_valid(c, k, now)} for k in wanted]


async def benefits_by_card(request: web.Request) -> web.Response:
    st = request.app[STATE]
    q = request.query
    c = st.find_card(q["cardNumber"], q.get("cardNumberFormat", "DECIMAL"), _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    return web.json_response(_benefit_list(st, c, q.getall("key", [])))


async def benefits_by_id(request: web.Request) -> web.Response:
    st = request.app[STATE]
    c = st.visible(int(request.match_info["customerId"]), _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    return web.json_response(_benefit_list(st, c, request.query.getall("key", [])))


async def use_benefit(request: web.Request) -> web.Response:
    st = request.app[STATE]
    c = st.visible(int(request.match_info["customerId"]), _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    key = request.match_info["benefitKey"]
    now = _now()
    if not st.benefit_valid(c, key, now):
        return error(400, "Benefit could not be used or provided key is invalid.", "BENEFIT_NOT_USABLE")
    st.use_benefit(c, key, now)
    st.benefit_uses.append(
        {
            "customerId": c.id,
            "benefitKey": key,
            "studioId": _studio(request),
            "homeStudioId": c.studio,
            "idempotencyKey": request.headers.get("Idempotency-Key"),
            "receivedAt": now.isoformat(),
        }
    )
    return web.Response(status=200)


async def create_weighing(request: web.Request) -> web.Response:
    st = request.app[STATE]
    c = st.visible(int(request.match_info["customerId"]), _studio(request))
    if c is None:
        return error(404, "Entity does not exists.", "CUSTOMER_NOT_FOUND")
    body = await request.json()
    key = request.query.get("benefitKey")
    now = _now()
    if key:
        if not st.benefit_valid(c, key, now):
            # The platform's behaviour here is not documented; the simulator refuses (the strict reading).
            return error(
                400, "Benefit could not be used or provided key is invalid.", "BENEFIT_NOT_USABLE", "benefitKey"
            )
        st.use_benefit(c, key, now)
    st.weighings.append(
        {
            "seq": len(st.weighings) + 1,
            "customerId": c.id,
            "studioId": _studio(request),
            "homeStudioId": c.studio,
            "benefitKey": key,
            "idempotencyKey": request.headers.get("Idempotency-Key"),
            "body": body,
            "receivedAt": now.isoformat(),
        }
    )
    return web.json_response(body)


ROUTES: list[tuple[str, str, str, Any]] = [
    ("GET", "/v1/customers/measurement/latest", "getCustomerMeasurement", measurement_latest),
    ("GET", "/v1/customers/by", "getCustomerBy", get_customer_by),
    ("GET", "/v1/cross-studio/customers/by", "getCrossStudioCustomerBy", cross_studio_by),
    ("GET", "/v1/customers/benefits", "getBenefitsByCardNumber", benefits_by_card),
    ("GET", "/v1/customers/{customerId}/benefits", "getBenefits", benefits_by_id),
    ("POST", "/v1/customers/{customerId}/benefits/{benefitKey}/use", "useBenefit", use_benefit),
    ("POST", "/v1/customers/{customerId}/weighing", "createCustomerWeighing", create_weighing),
]


def _abort(request: web.Request) -> web.Response:
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


async def _apply_fault(request: web.Request, fault: str, handler: Any) -> web.StreamResponse:
    st = request.app[STATE]
    st.counters["faults"] += 1
    if fault in ("500", "502", "503", "504"):
        return error(int(fault), "Simulated failure.", f"SIMULATED_{fault}")
    if fault == "403":
        return error(403, "Access denied: the API key lacks the required scope.", "FORBIDDEN")
    if fault == "409":
        return error(409, "Concurrent modification, please retry.", "CONCURRENT_MODIFICATION")
    if fault == "429":
        st.lock_endpoint(request[OPERATION], st.monotonic())
        return error(429, "Access denied - rate limit is exceeded.", "RATE_LIMIT_EXCEEDED")
    if fault == "reset_before":
        return _abort(request)
    if fault == "malformed":
        return web.Response(status=500, text='{"errorMessage": "trunc', content_type="application/json")
    if fault == "html":
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )
    if fault == "huge":
        return web.Response(status=500, body=b"x" * (4 * 1024 * 1024), content_type="text/plain")
    if fault == "slow":
        await asyncio.sleep(st.faults.delay_s)
        return await handler(request)  # type: ignore[no-any-return]
    response = await handler(request)  # the request is processed (committed) ...
    if fault == "reset_after":
        return _abort(request)  # ... and the answer is lost
    if fault == "timeout_after_commit":
        await asyncio.sleep(st.faults.delay_s)
    return response  # type: ignore[no-any-return]


def _make_route(operation: str, handler: Any) -> Any:
    async def route(request: web.Request) -> web.StreamResponse:
        st = request.app[STATE]
        request[OPERATION] = operation
        entry: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "operation": operation,
            "at": _now().isoformat(),
        }
        st.requests.append(entry)
        if st.rate_limited(operation, st.monotonic()):
            st.counters["rate_limited"] += 1
            entry["status"] = 429
            return error(429, "Access denied - rate limit is exceeded.", "RATE_LIMIT_EXCEEDED")
        studio = st.by_key.get(request.headers.get("X-API-KEY", ""))
        if studio is None:
            entry["status"] = 401
            return error(401, "Authentication failed. No api-key, wrong api-key or wrong header name.", "UNAUTHORIZED")
        request[STUDIO] = studio.id
        if request.method == "HEAD":
            return web.Response(status=200)
        body = await request.read()
        problems = request.app[VALIDATOR].problems(request, body)
        if problems:
            st.counters["rejected_invalid"] += 1
            detail = "; ".join(problems)[:900]
            entry["status"] = 400
            entry["validation"] = detail
            return error(400, f"Validation of the request failed: {detail}", "VALIDATION_FAILED")
        fault = st.faults.pick(operation)
        if fault is not None:
            entry["fault"] = fault
            return await _apply_fault(request, fault, handler)
        return await handler(request)  # type: ignore[no-any-return]

    return route


def _describe(exc: BaseException) -> str:
    parts = [str(exc)]
    cause = exc.__cause__
    while cause is not None and len(parts) < 4:
        for sub in getattr(cause, "schema_errors", []) or []:
            parts.append(getattr(sub, "message", str(sub)))
        parts.append(str(cause))
        cause = cause.__cause__
    return " / ".join(dict.fromkeys(p for p in parts if p))


# ---- /_sim control endpoints (tests, demo) ----------------------------------------------------------


async def sim_weighings(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].weighings)


async def sim_state(request: web.Request) -> web.Response:
    st = request.app[STATE]
    now = _now()
    contingents = {f"{c.id}:{k}": st.contingent_left(c.id, k, now) for c in st.customers.values() for k in c.benefits}
    return web.json_response(
        {
            "weighings": len(st.weighings),
            "benefitUses": st.benefit_uses,
            "requests": len(st.requests),
            "counters": st.counters,
            "contingents": contingents,
        }
    )


async def sim_faults(request: web.Request) -> web.Response:
    st = request.app[STATE]
    doc = await request.json()
    kinds = tuple(doc.get("kinds", ()))
    bad = [k for k in (*kinds, *doc.get("script", ())) if k not in FAULT_KINDS]
    if bad:
        return web.json_response({"error": f"unknown fault kinds {bad}", "known": FAULT_KINDS}, status=400)
    import random

    st.faults = Faults(
        rate=float(doc.get("rate", 0.0)),
        kinds=kinds,
        operations=tuple(doc.get("operations", ())),
        delay_s=float(doc.get("delay_s", 2.0)),
        script=deque(doc.get("script", ())),
        rng=random.Random(doc.get("seed", 0)),
    )
    if "rate_limit_per_min" in doc:
        st.rate_limit_per_min = int(doc["rate_limit_per_min"])
    return web.json_response({"ok": True})


def make_app(state: PlatformState, validator: Validator | None = None) -> web.Application:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[STATE] = state
    app[VALIDATOR] = validator or CompiledValidator()
    for method, path, operation, handler in ROUTES:
        route = _make_route(operation, handler)
        app.router.add_route(method, path, route, name=operation)
        app.router.add_route("HEAD", path, route)  # HEAD on any endpoint only validates the key
    app.router.add_get("/_sim/weighings", sim_weighings)
    app.router.add_get("/_sim/state", sim_state)
    app.router.add_post("/_sim/faults", sim_faults)
    return app
