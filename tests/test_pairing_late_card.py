"""`late_card_s`: a card tapped shortly AFTER an unidentified weighing claims it; never an older one,
never when a newer weighing came in between, never when off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.pairing import CardRead, LateCard, Paired, Pairing, Unidentified
from drivers.model import Measurement, Reading

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def weighing(kg: float = 70.0) -> Reading:
    return Reading("mi_scale", Measurement(weight_kg=kg), True, f"raw{kg}")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_off_by_default_the_card_opens_a_window() -> None:
    p = Pairing(60)
    assert isinstance(p.reading(weighing(), s(0), "a")[-1], Unidentified)
    assert not any(isinstance(e, LateCard) for e in p.card(CardRead("42", s(3), "a")))
    assert "a" in p.open_cards()


def test_late_card_claims_the_parked_weighing_and_opens_no_window() -> None:
    p = Pairing(60, late_card_s=10)
    p.reading(weighing(), s(0), "a")
    events = p.card(CardRead("42", s(4), "a"))
    assert events == [LateCard(CardRead("42", s(4), "a"), s(0))]
    assert p.open_cards() == {}
    # the next weighing is not given to that member a second time
    assert isinstance(p.reading(weighing(71.0), s(20), "a")[-1], Unidentified)


def test_too_late_other_scale_or_newer_weighing_do_not_claim() -> None:
    p = Pairing(60, late_card_s=10)
    p.reading(weighing(), s(0), "a")
    assert not any(isinstance(e, LateCard) for e in p.card(CardRead("42", s(11), "a")))  # too late
    p = Pairing(60, late_card_s=10)
    p.reading(weighing(), s(0), "a")
    assert not any(isinstance(e, LateCard) for e in p.card(CardRead("42", s(2), "b")))  # another scale
    p = Pairing(60, late_card_s=10)
    p.reading(weighing(), s(0), "a")
    p.reading(Reading("tanita", Measurement(weight_kg=80.0), True, "x", device_id="7"), s(1), "a")
    events = p.card(CardRead("42", s(2), "a"))
    assert not any(isinstance(e, LateCard) for e in events)  # a newer weighing came in between
    assert isinstance(p.reading(weighing(72.0), s(3), "a")[-1], Paired)


def test_dropped_weighings_cannot_be_claimed() -> None:
    from bridge.pairing import UnidentifiedPolicy

    p = Pairing(60, UnidentifiedPolicy.DROP, late_card_s=10)
    p.reading(weighing(), s(0), "a")
    assert not any(isinstance(e, LateCard) for e in p.card(CardRead("42", s(1), "a")))
