"""A fake LookinBody Web: a real aiohttp server on 127.0.0.1 in its own thread, built from the public
facts (shared/reference/inbody-seca.md §3.1a) and tolerant of their variants.

- Every call needs the headers ``Account`` and ``API-KEY`` (else 401); ``/user/test`` answers 200.
- Until ``addon_active`` is set the data endpoints answer 401 (the documented gotcha).
- ``POST /inbody/GetTodayMeasurements {Date}`` (``yyyyMMdd`` or ``yyyy-MM-dd``) lists that day's tests as
  ``[{UserID, UserToken, DateTimes}]``; each test chooses its listed time format (compact or ISO).
- ``GetFullInBodyData[ByID]`` answers with descriptive keys (``Weight``, ``TBW(TotalBodyWater)``, ...),
  ``GetInBodyData[ByID]`` with abbreviated ones (``WT``, ``PBF``, ...); numbers as JSON numbers or text;
  body keys ``UserID``/``Datetimes`` or ``usertoken``/``datetimes`` (case-insensitive), either time format.
- ``faults``: a list consumed one per data request: ``"500"``, ``"401"``, ``"slow"`` (answers after
  ``slow_s``), ``"garbage"`` (200 with a body that is not JSON), ``"html"``, ``"redirect"``.
- ``requests`` records (path, headers, body) of every call.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

DESCRIPTIVE = {
    "weight": "Weight",
    "tbw": "TBW(TotalBodyWater)",
    "smm": "SMM(SkeletalMuscleMass)",
    "bfm": "BFM(BodyFatMass)",
    "pbf": "PBF(PercentBodyFat)",
    "bmi": "BMI(BodyMassIndex)",
    "bmr": "BMR(BasalMetabolicRate)",
    "lbm": "LBM(LeanBodyMass)",
    "height": "Height",
    "vfl": "VFL(VisceralFatLevel)",
    "lean_ra": "LeanOfRightArm",
    "lean_la": "LeanOfLeftArm",
    "lean_tr": "LeanOfTrunk",
    "lean_rl": "LeanOfRightLeg",
    "lean_ll": "LeanOfLeftLeg",
    "lean_pct_ra": "LeanPercentOfRightArm",
}
ABBREVIATED = {
    "weight": "WT",
    "tbw": "TBW",
    "smm": "SMM",
    "bfm": "BFM",
    "pbf": "PBF",
    "bmi": "BMI",
    "bmr": "BMR",
    "lbm": "LBM",
    "height": "HT",
    "vfl": "VFL",
    "lean_ra": "LMRA",
    "lean_la": "LMLA",
    "lean_tr": "LMTR",
    "lean_rl": "LMRL",
    "lean_ll": "LMLL",
    "lean_pct_ra": "PLMRA",
}
DATA_ENDPOINTS = {
    "/inbody/gettodaymeasurements",
    "/inbody/getfullinbodydata",
    "/inbody/getfullinbodydatabyid",
    "/inbody/getinbodydata",
    "/inbody/getinbodydatabyid",
    "/inbody/getdatetimes",
    "/inbody/getdatetimesbyid",
}


@dataclass
class FakeTest:
    user_id: str
    user_token: str
    #: local test time, yyyyMMddHHmmss
    when: str
    values: dict[str, float]
    #: how the listing writes the time: "compact" | "iso"
    time_format: str = "compact"
    numbers_as_text: bool = False

    def listed_time(self) -> str:
        if self.time_format == "iso":
            return datetime.strptime(self.when, "%Y%m%d%H%M%S").isoformat()
        return self.when


def sample_values(weight: float = 80.5) -> dict[str, float]:
    return {
        "weight": weight,
        "tbw": 45.1,
        "smm": 36.2,
        "bfm": 15.2,
        "pbf": 18.9,
        "bmi": round(weight / 1.81**2, 1),
        "bmr": 1750,
        "lbm": round(weight - 15.2, 1),
        "height": 181.0,
        "vfl": 7,
        "lean_ra": 3.5,
        "lean_la": 3.4,
        "lean_tr": 28.1,
        "lean_rl": 9.9,
        "lean_ll": 9.8,
        "lean_pct_ra": 104.2,
    }


@dataclass
class FakeState:
    account: str = "fakegym"
    api_key: str = "fake-lookinbody-key-123"
    addon_active: bool = True
    tests: list[FakeTest] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    slow_s: float = 5.0
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    #: list every test twice (overlapping/duplicated listings), once per time format
    duplicate_listing: bool = False

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p.lower() == path.lower())


def _norm_time(text: str) -> str:
    digits = "".join(c for c in str(text) if c.isdigit())
    return digits[:14]


def _norm_date(text: str) -> str:
    return "".join(c for c in str(text) if c.isdigit())[:8]


def _lower_keys(body: Any) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}


async def _fault(state: FakeState, fault: str) -> web.StreamResponse | None:
    """The answer a scripted fault gives instead of the data, or None (``slow``: the data, late)."""
    if fault == "slow":
        await asyncio.sleep(state.slow_s)
        return None
    if fault == "redirect":
        raise web.HTTPFound("http://127.0.0.2:9/elsewhere")
    answers: dict[str, web.StreamResponse] = {
        "500": web.Response(status=500, text="Internal Server Error"),
        "401": web.Response(status=401),
        "garbage": web.Response(status=200, text='{"WT": 80.5, "PBF":', content_type="application/json"),
        "html": web.Response(status=200, text="<html>maintenance</html>", content_type="text/html"),
    }
    return answers.get(fault)


def _listing(state: FakeState, day: str) -> list[dict[str, str]]:
    """GetTodayMeasurements: the day's tests (twice, in the other time format, when asked)."""
    rows = []
    for t in state.tests:
        if t.when[:8] != day:
            continue
        rows.append({"UserID": t.user_id, "UserToken": t.user_token, "DateTimes": t.listed_time()})
        if state.duplicate_listing:
            other = t.when if t.time_format == "iso" else datetime.strptime(t.when, "%Y%m%d%H%M%S").isoformat()
            rows.append({"UserID": t.user_id, "UserToken": t.user_token, "DateTimes": other})
    return rows


def make_app(state: FakeState) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        state.requests.append((path, dict(request.headers), body))
        if request.method != "POST":
            return web.Response(status=405)
        if request.headers.get("Account") != state.account or request.headers.get("API-KEY") != state.api_key:
            return web.json_response({"Message": "Authorization has been denied for this request."}, status=401)
        low = path.lower()
        if low == "/user/test":
            return web.json_response("connection ok")
        if low not in DATA_ENDPOINTS:
            return web.Response(status=404)
        if not state.addon_active:
            return web.json_response({"Message": "Authorization has been denied for this request."}, status=401)
        if state.faults:
            faulty = await _fault(state, state.faults.pop(0))
            if faulty is not None:
                return faulty
        args = _lower_keys(body)
        if low == "/inbody/gettodaymeasurements":
            return web.json_response(_listing(state, _norm_date(args.get("date", ""))))
        by_id = low.endswith("byid")
        who = str(args.get("userid", "")) if by_id else str(args.get("usertoken", ""))
        when = _norm_time(args.get("datetimes", ""))
        match = [t for t in state.tests if (t.user_id if by_id else t.user_token) == who and t.when == when]
        if not match:
            return web.json_response({"Message": "no data"}, status=404)
        test = match[0]
        names = DESCRIPTIVE if "full" in low else ABBREVIATED
        out: dict[str, Any] = {"UserID": test.user_id, "TestDatetimes": test.when}
        for key, value in test.values.items():
            out[names[key]] = f"{value:g}" if test.numbers_as_text else value
        return web.json_response([out] if "full" in low else out)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


class FakeLookinBody:
    """``with FakeLookinBody() as fake: fake.url ...``; mutate ``fake.state`` through ``fake.call``."""

    def __init__(self, state: FakeState | None = None) -> None:
        self.state = state or FakeState()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-lookinbody", daemon=True)
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._runner = web.AppRunner(make_app(self.state), access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server: Any = site._server
            self.port = int(server.sockets[0].getsockname()[1])

        self._loop.run_until_complete(start())
        self._started.set()
        self._loop.run_forever()
        assert self._runner is not None
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Any, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def __enter__(self) -> FakeLookinBody:
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("fake LookinBody did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
