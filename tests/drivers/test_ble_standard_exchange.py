"""ble_standard's GATT exchange, sans I/O: the consent conversation and its failures."""

from __future__ import annotations

import pytest

from drivers import ble_standard as bs
from drivers.gatt import DEVICE_NAME, ExchangeContext, ExchangeError, Read, Subscribe, Write

ALL = frozenset(
    {
        bs.WEIGHT_MEASUREMENT,
        bs.BODY_COMPOSITION_MEASUREMENT,
        bs.USER_CONTROL_POINT,
        bs.CURRENT_TIME,
        bs.DATABASE_CHANGE_INCREMENT,
        bs.WEIGHT_SCALE_FEATURE,
    }
)


def ctx(**settings: str) -> ExchangeContext:
    return ExchangeContext(address="C4:00:00:00:00:72", characteristics=ALL, settings=settings, wall_time_s=0.0)


def test_without_settings_it_only_reads_and_subscribes() -> None:
    ex = bs.StandardExchange(ctx())
    assert ex.start(now_s=0.0) == [
        Read(DEVICE_NAME),
        Read(bs.WEIGHT_SCALE_FEATURE),
        Subscribe(bs.WEIGHT_MEASUREMENT),
        Subscribe(bs.BODY_COMPOSITION_MEASUREMENT),
    ]
    assert ex.deadline_s is None


def test_consent_then_increment_then_measurements() -> None:
    ex = bs.StandardExchange(ctx(user_index="1", consent_code="3752"))
    actions = ex.start(now_s=100.0)
    assert Write(bs.USER_CONTROL_POINT, bytes.fromhex("0201a80e")) == actions[-1]
    assert Subscribe(bs.USER_CONTROL_POINT) in actions
    assert Subscribe(bs.WEIGHT_MEASUREMENT) not in actions  # silent until consent
    assert actions[-3] == Write(bs.CURRENT_TIME, bytes.fromhex("b2070101000000040001"))  # 1970-01-01 Thursday
    assert ex.deadline_s == 100.0 + bs.CONSENT_TIMEOUT_S
    assert ex.on_notify(bs.USER_CONTROL_POINT, bytes.fromhex("200101"), now_s=101.0) == []  # another op's answer
    assert ex.on_notify(bs.USER_CONTROL_POINT, bytes.fromhex("200201"), now_s=101.0) == [
        Read(bs.DATABASE_CHANGE_INCREMENT)
    ]
    assert ex.on_read(bs.DATABASE_CHANGE_INCREMENT, bytes.fromhex("ffffffff"), now_s=101.5) == [
        Write(bs.DATABASE_CHANGE_INCREMENT, bytes(4)),
        Subscribe(bs.WEIGHT_MEASUREMENT),
        Subscribe(bs.BODY_COMPOSITION_MEASUREMENT),
    ]
    assert ex.deadline_s is None


@pytest.mark.parametrize(("result", "words"), [("05", "not authorized"), ("04", "failed"), ("7e", "0x7e")])
def test_refused_consent_is_an_exchange_error_with_the_reason(result: str, words: str) -> None:
    ex = bs.StandardExchange(ctx(user_index="2", consent_code="1"))
    ex.start(now_s=0.0)
    with pytest.raises(ExchangeError, match=words):
        ex.on_notify(bs.USER_CONTROL_POINT, bytes.fromhex("2002" + result), now_s=1.0)


def test_no_answer_is_an_exchange_error() -> None:
    ex = bs.StandardExchange(ctx(user_index="2", consent_code="1"))
    ex.start(now_s=0.0)
    with pytest.raises(ExchangeError, match="no answer"):
        ex.on_timeout(now_s=10.0)


def test_consent_on_a_scale_without_user_control_point_is_refused() -> None:
    ex = bs.StandardExchange(
        ExchangeContext(
            address="x",
            characteristics=frozenset({bs.WEIGHT_MEASUREMENT}),
            settings={"user_index": "1", "consent_code": "1"},
        )
    )
    with pytest.raises(ExchangeError, match="User Control Point"):
        ex.start(now_s=0.0)


def test_mi_vendor_characteristic_is_read_so_the_decoder_knows() -> None:
    ex = bs.StandardExchange(ExchangeContext(address="x", characteristics=ALL | {bs.MI_VENDOR_CHARACTERISTIC}))
    assert Read(bs.MI_VENDOR_CHARACTERISTIC) in ex.start(now_s=0.0)


@pytest.mark.parametrize(
    ("name", "quirk"),
    [
        ("Renpho-Scale", bs.Quirk.RENPHO_005),
        ("Renpho Body Scale", bs.Quirk.RENPHO_005),
        ("MIBCS", bs.Quirk.MI),
        ("BF720", bs.Quirk.NONE),
        ("Shape50", bs.Quirk.SOEHNLE_NO_BCM),
        ("", bs.Quirk.NONE),
    ],
)
def test_quirk_is_keyed_on_the_name(name: str, quirk: bs.Quirk) -> None:
    assert bs.quirk_for_name(name) is quirk


def test_matcher_never_claims_a_mi_scale() -> None:
    m = bs.SPEC.ble
    assert m is not None
    both = frozenset({bs.WEIGHT_SCALE_SERVICE, bs.BODY_COMPOSITION_SERVICE})
    for name in bs.MI_NAMES:
        assert not m.matches(name=name, service_uuids=both, manufacturer_ids=frozenset())
    assert not m.matches(name=None, service_uuids=both, manufacturer_ids=frozenset({bs.HUAMI_COMPANY_ID}))
    assert m.matches(name="BF720", service_uuids=both, manufacturer_ids=frozenset())
