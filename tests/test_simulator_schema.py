# ruff: noqa: E501  (the request corpus reads best one request per line)
"""The simulator's schema and its request validation.

- guard: the packaged copy of the OpenAPI description is byte for byte ../shared/reference's (1.11.1);
- the compiled validator (bridge/simulator/validate.py) is as strict as openapi-core was: the same corpus
  of valid and invalid requests, sent over HTTP to a real simulator (127.0.0.1) once with each validator,
  gets the same verdict (400 VALIDATION_FAILED or not) from both, and every invalid one is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.simulator.app import SPEC_PATH, CompiledValidator, OpenApiCoreValidator
from bridge.simulator.server import SimulatorThread
from tests.helpers import SHARED

SHARED_SPEC = SHARED / "reference" / "platform-openapi.json"
KEY = "sim-key-studio-a"
W = "/v1/customers/1001/weighing"
JSON = {"Content-Type": "application/json"}

#: (name, method, path, params, headers, body, valid)
CORPUS: list[tuple[str, str, str, Any, dict[str, str], bytes | None, bool]] = [
    ("weighing ok", "POST", W, {"benefitKey": "BODY_SCAN"}, JSON, b'{"rawResults": "x", "weight": 80.5}', True),
    ("weighing, no benefit key", "POST", W, {}, JSON, b'{"rawResults": "x"}', True),
    ("weighing, customerId not an integer", "POST", "/v1/customers/abc/weighing", {}, JSON, b'{"rawResults": "x"}', False),
    ("weighing, customerId beyond int64", "POST", f"/v1/customers/{1 << 63}/weighing", {}, JSON, b'{"rawResults": "x"}', False),
    ("weighing, rawResults missing", "POST", W, {}, JSON, b'{"weight": 80.5}', False),
    ("weighing, rawResults not a string", "POST", W, {}, JSON, b'{"rawResults": 12}', False),
    ("weighing, a number field as a string", "POST", W, {}, JSON, b'{"rawResults": "x", "weight": "80.5"}', False),
    ("weighing, databaseId beyond int64", "POST", W, {}, JSON, json.dumps({"rawResults": "x", "databaseId": 1 << 64}).encode(), False),
    ("weighing, body not JSON", "POST", W, {}, JSON, b'{"rawResults": ', False),
    ("weighing, no body", "POST", W, {}, JSON, None, False),
    ("weighing, text/plain body", "POST", W, {}, {"Content-Type": "text/plain"}, b'{"rawResults": "x"}', False),
    ("benefits by card ok", "GET", "/v1/customers/benefits", {"cardNumber": "3220338716", "key": ["BODY_SCAN", "X"]}, {}, None, True),
    ("benefits by card, HEX_LSB", "GET", "/v1/customers/benefits", {"cardNumber": "1c", "cardNumberFormat": "HEX_LSB"}, {}, None, True),
    ("benefits by card, cardNumber missing", "GET", "/v1/customers/benefits", {"key": "BODY_SCAN"}, {}, None, False),
    ("benefits by card, unknown format", "GET", "/v1/customers/benefits", {"cardNumber": "1", "cardNumberFormat": "OCTAL"}, {}, None, False),
    ("benefits by id ok", "GET", "/v1/customers/1001/benefits", {"key": "BODY_SCAN"}, {}, None, True),
    ("benefits by id, id negative beyond int64", "GET", f"/v1/customers/-{(1 << 63) + 1}/benefits", {}, {}, None, False),
    ("use benefit ok", "POST", "/v1/customers/1001/benefits/BODY_SCAN/use", {}, {}, None, True),
    ("use benefit, id 1.5", "POST", "/v1/customers/1.5/benefits/BODY_SCAN/use", {}, {}, None, False),
    ("customer by card ok", "GET", "/v1/customers/by", {"cardNumber": "3220338716"}, {}, None, True),
    ("customer by pin (1.11.1)", "GET", "/v1/customers/by", {"pin": "1234"}, {}, None, True),
    ("customer by qr code, not a uuid", "GET", "/v1/customers/by", {"qrCodeUuid": "not-a-uuid"}, {}, None, False),
    ("measurement by pin (1.11.1)", "GET", "/v1/customers/measurement/latest", {"pin": "1234"}, {}, None, True),
    ("cross-studio by card, bad format", "GET", "/v1/cross-studio/customers/by", {"cardNumber": "1", "cardNumberFormat": "hex"}, {}, None, False),
]  # fmt: skip


def test_packaged_schema_is_the_shared_one() -> None:
    """Guard: bridge/simulator/platform-openapi.json must be ../shared/reference/platform-openapi.json."""
    if not SHARED_SPEC.exists():
        pytest.skip(f"{SHARED_SPEC} not found (no shared/ beside the repo)")
    assert SPEC_PATH.read_bytes() == SHARED_SPEC.read_bytes(), (
        f"{SPEC_PATH} differs from {SHARED_SPEC}: copy it (cp {SHARED_SPEC} {SPEC_PATH}) and fix the simulator"
    )


def test_packaged_schema_is_1_11_1() -> None:
    spec = json.loads(SPEC_PATH.read_text())
    assert spec["info"]["version"] == "1.11.1"
    names = [p["name"] for p in spec["paths"]["/v1/customers/by"]["get"]["parameters"]]
    assert "pin" in names


@pytest.fixture(scope="module", params=["compiled", "openapi-core"])
def sim(request: pytest.FixtureRequest) -> Iterator[SimulatorThread]:
    validator = CompiledValidator() if request.param == "compiled" else OpenApiCoreValidator()
    s = SimulatorThread(validator=validator).start()
    try:
        yield s
    finally:
        s.stop()


def _verdicts(sim: SimulatorThread) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    with httpx.Client(base_url=sim.url, headers={"X-API-KEY": KEY}, timeout=10) as c:
        for name, method, path, params, headers, body, _valid in CORPUS:
            r = c.request(method, path, params=params, headers=headers, content=body)
            code = r.json().get("errorCode", "") if r.status_code >= 400 and r.content else ""
            out[name] = (r.status_code, code)
    return out


def test_invalid_requests_are_refused_and_valid_ones_pass(sim: SimulatorThread) -> None:
    verdicts = _verdicts(sim)
    for name, *_rest, valid in CORPUS:
        status, code = verdicts[name]
        refused = status == 400 and code == "VALIDATION_FAILED"
        if valid:
            # (a lookup by pin passes the schema; the simulator then answers 400 NOT_SIMULATED)
            assert not refused, (name, status, code)
        else:
            assert refused, (name, status, code)
    rejected = sim.call(lambda: sim.state.counters["rejected_invalid"])
    assert rejected == sum(1 for *_r, valid in CORPUS if not valid)


def test_both_validators_agree() -> None:
    """The compiled validator and openapi-core give every request of the corpus the same verdict."""
    results = {}
    for name, v in (("compiled", CompiledValidator()), ("openapi-core", OpenApiCoreValidator())):
        s = SimulatorThread(validator=v).start()
        try:
            results[name] = (_verdicts(s), s.call(lambda s=s: s.state.counters["rejected_invalid"]))
        finally:
            s.stop()
    assert results["compiled"] == results["openapi-core"]
