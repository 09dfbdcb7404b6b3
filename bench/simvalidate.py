"""7. The simulator's request validation: CPU per request, the compiled validator (jsonschema-rs,
bridge/simulator/validate.py) against the old one (openapi-core), on the same aiohttp request objects
(``aiohttp.test_utils.make_mocked_request``: real ``web.Request``s, no server, so only validation is
timed). Requests: the weighing POST the bridge sends (a full body-composition body) and a benefits GET.
CPU time (``time.process_time``) per request, median of the repeats; the target is <= 2 ms.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from bridge.simulator.app import CompiledValidator, OpenApiCoreValidator, load_spec

from .common import log, median

BODY = json.dumps(
    {
        "rawResults": json.dumps({"device": "MC-780", "measured_at": "2026-12-01T10:00:00Z", "weight_kg": 80.4}),
        "weight": 80.4,
        "percentBodyFat": 21.3,
        "bodyFatMass": 17.1,
        "fatFreeMass": 63.3,
        "totalBodyWater": 46.4,
        "muscleMass": 60.1,
        "boneMass": 3.2,
        "visceralFatLevel": 7,
        "basalMetabolicRate": 1820,
        "bodyMassIndex": 24.6,
        "metabolicAge": 31,
    }
).encode()


def _requests() -> dict[str, tuple[Any, bytes]]:
    post = make_mocked_request(
        "POST",
        "/v1/customers/1001/weighing?benefitKey=BODY_SCAN",
        headers=CIMultiDict({"X-API-KEY": "k", "Content-Type": "application/json"}),
    )
    get = make_mocked_request(
        "GET", "/v1/customers/benefits?cardNumber=3220338716&key=BODY_SCAN", headers=CIMultiDict({"X-API-KEY": "k"})
    )
    return {"weighing_post": (post, BODY), "benefits_get": (get, b"")}


def _cpu_per_request_ms(validator: Any, request: Any, body: bytes, n: int) -> float:
    assert validator.problems(request, body) == [], validator.problems(request, body)
    t0 = time.process_time()
    for _ in range(n):
        validator.problems(request, body)
    return (time.process_time() - t0) / n * 1000


def run(quick: bool) -> dict[str, Any]:
    repeats = 3 if quick else 7
    spec = load_spec()
    validators = {"compiled": CompiledValidator(spec), "openapi_core": OpenApiCoreValidator(spec)}
    n = {"compiled": 200 if quick else 2000, "openapi_core": 20 if quick else 200}
    out: dict[str, Any] = {"repeats": repeats}
    for rname, (req, body) in _requests().items():
        row: dict[str, Any] = {}
        for vname, v in validators.items():
            samples = [_cpu_per_request_ms(v, req, body, n[vname]) for _ in range(repeats)]
            row[vname] = {"median_ms": median(samples), "samples_ms": samples, "n_per_sample": n[vname]}
        row["ratio"] = row["openapi_core"]["median_ms"] / row["compiled"]["median_ms"]
        log(f"{rname}: compiled {row['compiled']['median_ms']:.3f} ms, openapi-core "
            f"{row['openapi_core']['median_ms']:.3f} ms ({row['ratio']:.0f}x)")  # fmt: skip
        out[rname] = row
    return out
