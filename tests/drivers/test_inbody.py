"""inbody (LookinBody Web): the envelope parser (vectors, both key styles, both time formats, units,
plausibility, segments), the listing parser, the persistent dedupe key, redaction, random input (only
FrameError), and the sans-I/O poll scheduler (interval, pacing, bounded backoff, day boundary)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vectorlib import Vector, check_vector, vector_params

from drivers import DeviceReport, FrameError, Reading, Segment
from drivers import inbody as ib
from drivers.model import Measurement, SegmentValues
from drivers.registry import LinkKind, get

SPEC = get("inbody")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T = ib.TestRef("3220338716", "+1 (555) 010-2000", "20261122103000")


def env(answer: Any, *, test: ib.TestRef = T, endpoint: str = ib.ENDPOINT_FULL_BY_ID, **kw: Any) -> bytes:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    return ib.test_envelope(account="gym", test=test, answers={endpoint: text}, **kw)


def reading(frame: bytes) -> Reading:
    r = ib.parse(frame)
    assert isinstance(r, Reading)
    return r


@pytest.mark.parametrize("vector", vector_params("inbody", shared=False))
def test_own_vectors(vector: Vector) -> None:
    check_vector(SPEC, vector, "whole")  # message-oriented: one envelope per event, never split


def test_own_vectors_cover_the_documented_variants() -> None:
    names = {p.values[0].name for p in vector_params("inbody", shared=False)}  # type: ignore[union-attr]
    assert {"full_descriptive_numbers", "abbreviated_text_numbers_iso_time", "addon_missing_401"} <= names


def test_spec_is_a_cloud_source() -> None:
    assert SPEC.link is LinkKind.CLOUD and SPEC.dedupe_key is ib.dedupe_key
    assert SPEC.ble is None and SPEC.serial is None


def test_smm_is_skeletal_muscle_and_raw_keeps_the_whole_answer() -> None:
    answer = [{"Weight": 80.5, "SMM(SkeletalMuscleMass)": 36.2, "SLM(SoftLeanMass)": 61.8, "ECW": 17.3}]
    frame = env(answer)
    assert reading(frame) == Reading(
        driver="inbody",
        measurement=Measurement(weight_kg=80.5, skeletal_muscle_mass_kg=36.2, soft_lean_mass_kg=61.8),
        stable=True,
        raw=frame.decode(),  # the envelope verbatim: the whole answer, ECW included
        device_id="3220338716",
        device_time="2026-11-22T10:30:00",
        model="InBody (LookinBody Web)",
        fields={
            "Weight": "80.5",
            "SMM(SkeletalMuscleMass)": "36.2",
            "SLM(SoftLeanMass)": "61.8",
            "ECW": "17.3",
            "account": "gym",
            "mass_unit": "kg",
        },
    )
    assert json.loads(json.loads(frame)["answers"][ib.ENDPOINT_FULL_BY_ID]) == answer


def test_full_answer_wins_over_abbreviated() -> None:
    frame = ib.test_envelope(
        account="gym",
        test=T,
        answers={ib.ENDPOINT_ABBR_BY_ID: '{"WT": 99.0, "PBF": 30}', ib.ENDPOINT_FULL_BY_ID: '{"Weight": 80.5}'},
    )
    m = reading(frame).measurement
    assert m.weight_kg == 80.5 and m.fat_percent == 30  # missing in the full answer: the abbreviated fills in


def test_segmental_lean_and_fat_kg_map_percent_relative_to_ideal_does_not() -> None:
    answer = {"WT": 80.5, "LMRA": 3.5, "RA_BFM": 0.9, "PLMRA": 104.0, "LeanPercentOfTrunk": 99.0, "FatOfLeftLeg": 2.1}
    r = reading(env(answer))
    assert r.measurement == Measurement(  # no segment percent at all: PLMRA is % of the ideal, not of the segment
        weight_kg=80.5,
        segments={
            Segment.RIGHT_ARM: SegmentValues(fat_free_mass_kg=3.5, fat_mass_kg=0.9),
            Segment.LEFT_LEG: SegmentValues(fat_mass_kg=2.1),
        },
    )
    assert r.fields["PLMRA"] == "104" and r.fields["LeanPercentOfTrunk"] == "99"


def test_lbm_is_fat_free_mass_only_when_it_is_weight_minus_bfm() -> None:
    assert reading(env({"WT": 80, "BFM": 15, "LBM": 65})).measurement.fat_free_mass_kg == 65
    r = reading(env({"WT": 80, "BFM": 15, "LBM": 60}))
    assert r.measurement.fat_free_mass_kg is None and "LBM" in r.fields["notes"]


@pytest.mark.parametrize("when", ["20261122103000", "2026-11-22T10:30:00", "2026-11-22 10:30:00", "2026-11-22T10:30"])
def test_both_time_formats_give_one_dedupe_key(when: str) -> None:
    a = ib.dedupe_key("x", env({"WT": 80}))
    b = ib.dedupe_key("y", env({"WT": 81}, test=ib.TestRef(T.user_id, T.user_token, when)))
    assert a == b
    assert reading(env({"WT": 80}, test=ib.TestRef(T.user_id, "", when))).device_time == "2026-11-22T10:30:00"


def test_dedupe_key_separates_account_user_and_time_and_hides_the_member() -> None:
    base = ib.dedupe_key("", env({"WT": 80}))
    other_time = ib.dedupe_key("", env({"WT": 80}, test=ib.TestRef(T.user_id, "", "20261122103001")))
    other_user = ib.dedupe_key("", env({"WT": 80}, test=ib.TestRef("42", "", T.datetimes)))
    other_account = ib.dedupe_key(
        "", ib.test_envelope(account="gym2", test=T, answers={ib.ENDPOINT_FULL: '{"WT": 80}'})
    )
    assert len({base, other_time, other_user, other_account}) == 4
    assert T.user_id not in base and base.startswith("inbody:")


def test_identify_by_phone_uses_the_token_digits() -> None:
    assert reading(env({"WT": 80}, identify_by=ib.IdentifyBy.PHONE)).device_id == "15550102000"
    assert reading(env({"WT": 80})).device_id == "3220338716"
    assert reading(env({"WT": 80}, test=ib.TestRef("", "", T.datetimes))).device_id is None  # parked as unidentified


def test_several_records_pick_the_test_time() -> None:
    answer = [{"Weight": 70, "TestDatetimes": "20261121090000"}, {"Weight": 80.5, "TestDatetimes": "20261122103000"}]
    assert reading(env(answer)).measurement.weight_kg == 80.5


def test_wrapped_answer_and_numbers_with_comma() -> None:
    assert reading(env({"Data": [{"WT": "80,5"}]})).measurement.weight_kg == 80.5


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-", "", "80.5 stone", True, None, [80.5]])
def test_unusable_weight_is_a_frame_error(bad: Any) -> None:
    with pytest.raises(FrameError):
        ib.parse(env({"WT": bad}))


def test_nan_literal_in_the_answer_is_not_a_number() -> None:
    with pytest.raises(FrameError):
        ib.parse(env('{"WT": NaN}'))


def test_listing_variants() -> None:
    text = json.dumps(
        [
            {"UserID": "1", "UserToken": "555", "DateTimes": "20261122103000"},
            {"userid": 2, "usertoken": "556", "Datetimes": ["2026-11-22T11:00:00", "20261122120000"]},
            {"UserID": "3", "DateTimes": "20261122130000,20261122140000"},
            {"UserID": "1", "DateTimes": "2026-11-22T10:30:00"},  # the first one again, other format
            {"UserID": "4", "DateTimes": "yesterday"},
            "junk",
        ]
    )
    tests = ib.parse_listing(text)
    assert [(t.user_id, ib.compact_time(t.datetimes)) for t in tests] == [
        ("1", "20261122103000"),
        ("2", "20261122110000"),
        ("2", "20261122120000"),
        ("3", "20261122130000"),
        ("3", "20261122140000"),
    ]
    assert ib.parse_listing("[]") == [] and ib.parse_listing('{"Data": []}') == []
    for bad in ("", "{", '"ok"', "42"):
        with pytest.raises(FrameError):
            ib.parse_listing(bad)
    assert repr(tests[0]) == "TestRef(datetimes='20261122103000')"  # no UserID or phone in a repr


def test_error_envelope_is_a_device_report_with_what_to_do() -> None:
    r = ib.parse(ib.error_envelope(account="gym", endpoint=ib.ENDPOINT_TODAY, status=401, answer="no"))
    assert isinstance(r, DeviceReport) and r.is_error and r.code == "http_401"
    assert "add-on" in r.message and "InBody support" in r.message
    key = ib.parse(ib.error_envelope(account="gym", endpoint=ib.ENDPOINT_TEST, status=401, answer=""))
    assert isinstance(key, DeviceReport) and "API-KEY" in key.message


def test_redaction_replaces_member_data_and_keeps_values() -> None:
    answer = [{"UserID": "3220338716", "Name": "Alex", "TelHP": "010-1234-5678", "Weight": 80.5}]
    listing = json.dumps([{"UserID": "3220338716", "UserToken": "01012345678", "DateTimes": T.datetimes}])

    def fake(value: str) -> str:
        return "X" * len(value)

    red = ib.redact_envelope(env(answer), fake)
    text = red.decode()
    for secret in ("3220338716", "Alex", "010-1234-5678", "555"):
        assert secret not in text
    r = reading(red)
    assert r.measurement.weight_kg == 80.5 and r.device_id == "XXXXXXXXXX"
    red_list = ib.redact_envelope(ib.list_envelope(account="gym", day="20261122", answer=listing), fake).decode()
    assert "3220338716" not in red_list and "01012345678" not in red_list and T.datetimes in red_list
    assert ib.redact_envelope(b"not an envelope", fake) == b"not an envelope"


# ------------------------------------------------------------------------------- random input


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        ib.parse(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
keys = st.sampled_from(["WT", "Weight", "PBF", "SMM(SkeletalMuscleMass)", "HT", "BMI", "LMRA", "PLMRA", "LBM", "BFM"])


@FAST
@given(
    st.dictionaries(keys | st.text(max_size=10), json_values, max_size=8),
    st.sampled_from(list(ib.MassUnit)),
    st.text(max_size=20),
)
def test_random_answers_raise_only_frame_error(answer: dict[str, Any], unit: ib.MassUnit, when: str) -> None:
    frame = env(json.dumps(answer), test=ib.TestRef("1", "2", when), mass_unit=unit)
    try:
        r = ib.parse(frame)
    except FrameError:
        return
    assert isinstance(r, Reading) and r.is_weighing
    m = r.measurement
    assert m.weight_kg is not None and 2 <= m.weight_kg <= 450
    for attr in ("fat_mass_kg", "skeletal_muscle_mass_kg", "total_body_water_kg", "fat_free_mass_kg"):
        value = getattr(m, attr)
        assert value is None or 0 <= value <= m.weight_kg


@FAST
@given(json_values)
def test_random_envelopes_and_listings_raise_only_frame_error(doc: Any) -> None:
    as_envelope = {"format": ib.FORMAT, "kind": "test", **(doc if isinstance(doc, dict) else {})}
    for frame in (json.dumps(doc), json.dumps(as_envelope)):
        with contextlib.suppress(FrameError):
            ib.parse(frame.encode())
        with contextlib.suppress(FrameError):
            ib.parse_listing(frame)
        ib.dedupe_key("", frame.encode())


# ------------------------------------------------------------------------------- the scheduler

NY = ZoneInfo("America/New_York")


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=NY).timestamp()


def refs(*times: str, user: str = "1") -> list[ib.TestRef]:
    return [ib.TestRef(user, "", t) for t in times]


def test_first_steps_list_lookback_days_then_today() -> None:
    s = ib.PollScheduler(NY, interval_s=60, pace_s=0, lookback_days=2)
    now = at(2026, 11, 22, 9)
    steps = []
    for _ in range(3):
        step = s.next(now)
        assert isinstance(step, ib.ListDay)
        steps.append(step.day)
        s.listed(step.day, [], now)
    assert steps == [date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)]
    assert s.next(now) == ib.Wait(now + 60)
    assert s.next(now + 60) == ib.ListDay(date(2026, 11, 22))


def test_new_tests_are_fetched_once_in_order_and_a_second_listing_adds_nothing() -> None:
    s = ib.PollScheduler(NY, pace_s=0, lookback_days=0)
    now = at(2026, 11, 22, 9)
    a, b = refs("20261122080000", "20261122083000")
    assert s.listed(date(2026, 11, 22), [a, b], now) == [a, b]
    assert s.listed(date(2026, 11, 22), [b, ib.TestRef("1", "", "2026-11-22T08:00:00")], now) == []
    assert s.next(now) == ib.FetchTest(a)
    s.fetched(a, now)
    assert s.next(now) == ib.FetchTest(b)
    s.fetched(b, now)
    assert s.pending == 0
    assert s.listed(date(2026, 11, 22), [a, b], now + 60) == []  # fetched tests stay known


def test_pacing_between_requests() -> None:
    s = ib.PollScheduler(NY, pace_s=1.5, lookback_days=0)
    now = at(2026, 11, 22, 9)
    s.listed(date(2026, 11, 22), refs("20261122080000"), now)
    assert s.next(now + 1) == ib.Wait(now + 1.5)
    assert isinstance(s.next(now + 1.5), ib.FetchTest)


def test_backoff_doubles_is_bounded_and_resets_on_success() -> None:
    s = ib.PollScheduler(NY, pace_s=0, backoff_base_s=5, backoff_cap_s=60, lookback_days=0)
    now = at(2026, 11, 22, 9)
    delays = [s.failed(s.next(now + 1000 * i), now + 1000 * i) for i in range(8)]
    assert delays == [5, 10, 20, 40, 60, 60, 60, 60]
    assert s.failed(ib.ListDay(date(2026, 11, 22)), now, retry_after_s=3600) == 60  # Retry-After, capped
    t = now + 100_000
    step = s.next(t)
    s.listed(step.day, [], t)  # type: ignore[union-attr]
    assert s.failures == 0 and s.failed(s.next(t + 60), t + 60) == 5


def test_a_failing_test_goes_to_the_back_and_blocks_nothing() -> None:
    s = ib.PollScheduler(NY, pace_s=0, backoff_base_s=1, backoff_cap_s=1, lookback_days=0)
    now = at(2026, 11, 22, 9)
    a, b = refs("20261122080000", "20261122083000")
    s.listed(date(2026, 11, 22), [a, b], now)
    s.failed(s.next(now), now)
    assert s.next(now + 1) == ib.FetchTest(b)
    s.fetched(b, now + 1)
    assert s.next(now + 2) == ib.FetchTest(a) and s.pending == 1


def test_day_boundary_in_the_accounts_zone_sweeps_the_day_that_ended() -> None:
    s = ib.PollScheduler(NY, interval_s=60, pace_s=0, lookback_days=0)
    evening = at(2026, 11, 22, 23, 0)
    assert s.next(evening) == ib.ListDay(date(2026, 11, 22))
    s.listed(date(2026, 11, 22), refs("20261122225800"), evening)
    s.fetched(refs("20261122225800")[0], evening)
    # 23:59 in New York is already the 23rd in UTC: still the 22nd for the account
    late_evening = at(2026, 11, 22, 23, 59)
    assert datetime.fromtimestamp(late_evening, UTC).date() == date(2026, 11, 23)
    assert s.next(late_evening) == ib.ListDay(date(2026, 11, 22))
    s.listed(date(2026, 11, 22), [], late_evening)
    after = at(2026, 11, 23, 0, 1)
    assert s.next(after) == ib.ListDay(date(2026, 11, 22))  # the final sweep of the 22nd
    late = refs("20261122235930")
    assert s.listed(date(2026, 11, 22), late, after) == late  # a test seen only after midnight
    assert s.next(after) == ib.FetchTest(late[0])
    s.fetched(late[0], after)
    assert s.next(after) == ib.ListDay(date(2026, 11, 23))


def test_dst_change_keeps_the_local_date() -> None:
    s = ib.PollScheduler(NY, pace_s=0, lookback_days=0)
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice, both on the 1st
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC).timestamp()
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC).timestamp()
    assert s.local_date(first) == s.local_date(second) == date(2026, 11, 1)


def test_known_tests_are_forgotten_only_after_the_lookback() -> None:
    s = ib.PollScheduler(UTC, pace_s=0, lookback_days=1)
    day1 = datetime(2026, 11, 22, 12, tzinfo=UTC).timestamp()
    a = refs("20261122080000")[0]
    s.next(day1)
    s.listed(date(2026, 11, 22), [a], day1)
    s.fetched(a, day1)
    s.next(day1 + 86400)
    assert s.listed(date(2026, 11, 22), [a], day1 + 86400) == []  # still known on the next day
    s.next(day1 + 3 * 86400)
    assert s.known([]) and not s.known([a])


def test_bad_scheduler_settings() -> None:
    for kw in ({"interval_s": 0}, {"pace_s": -1}, {"backoff_base_s": 10, "backoff_cap_s": 5}, {"lookback_days": -1}):
        with pytest.raises(ValueError):
            ib.PollScheduler(UTC, **kw)  # type: ignore[arg-type]
