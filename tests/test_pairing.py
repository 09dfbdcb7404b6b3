from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bridge.pairing import (
    CardExpired,
    CardRead,
    CardSource,
    CardSuperseded,
    Ignored,
    Paired,
    Pairing,
    PairingEvent,
    Unidentified,
    UnidentifiedPolicy,
)
from drivers.model import Measurement, Reading

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def weighing(kg: float | None = 70.0, *, stable: bool = True, device_id: str | None = None, n: int = 0) -> Reading:
    return Reading("tanita", Measurement(weight_kg=kg), stable, raw=f"raw-{n}-{kg}", device_id=device_id)


def card(number: str, s: float, scale: str = "") -> CardRead:
    return CardRead(number, at(s), scale)


def kinds(events: list[PairingEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_card_then_weighing_pairs() -> None:
    p = Pairing(window_s=60)
    c = card("3220338716", 0)
    assert p.card(c) == []
    r = weighing()
    assert p.reading(r, at(30)) == [Paired(r, c, at(30))]
    assert p.open_cards() == {}


def test_window_bounds_inclusive() -> None:
    p = Pairing(window_s=60)
    c = card("1", 0)
    p.card(c)
    r = weighing()
    assert p.reading(r, at(60)) == [Paired(r, c, at(60))]
    p.card(c2 := card("2", 100))
    assert p.reading(r, at(160.001)) == [CardExpired(c2), Unidentified(r, at(160.001), park=True)]


def test_weighing_without_card_park_or_drop() -> None:
    r = weighing()
    assert Pairing(policy=UnidentifiedPolicy.PARK).reading(r, at(0)) == [Unidentified(r, at(0), park=True)]
    assert Pairing(policy=UnidentifiedPolicy.DROP).reading(r, at(0)) == [Unidentified(r, at(0), park=False)]


def test_second_card_inside_window_newer_wins() -> None:
    p = Pairing()
    a, b = card("A", 0), card("B", 10)
    p.card(a)
    assert p.card(b) == [CardSuperseded(a, b)]
    r = weighing()
    assert p.reading(r, at(20)) == [Paired(r, b, at(20))]


def test_same_card_again_refreshes_the_window() -> None:
    p = Pairing(window_s=60)
    p.card(card("A", 0))
    assert p.card(a2 := card("A", 50)) == []
    r = weighing()
    assert p.reading(r, at(100)) == [Paired(r, a2, at(100))]


def test_late_older_card_is_superseded_at_once() -> None:
    p = Pairing()
    b = card("B", 10)
    p.card(b)
    a = card("A", 5)  # delivered after B but read before it
    assert p.card(a) == [CardSuperseded(a, b)]
    assert p.open_cards() == {"": b}


def test_card_older_than_the_window_expires_at_once() -> None:
    p = Pairing(window_s=60)
    p.tick(at(200))
    old = card("A", 100)
    assert p.card(old) == [CardExpired(old)]
    assert p.open_cards() == {}


def test_reading_with_own_id_keeps_the_card_window_open() -> None:
    p = Pairing()
    c = card("A", 0)
    p.card(c)
    r1 = weighing(device_id="0000123", n=1)
    (ev,) = p.reading(r1, at(5))
    assert ev == Paired(r1, CardRead("0000123", at(5), "", CardSource.SCALE_ID), at(5))
    r2 = weighing(n=2)
    assert p.reading(r2, at(10)) == [Paired(r2, c, at(10))]


def test_blank_device_id_is_no_id() -> None:
    r = weighing(device_id="  ")
    assert kinds(Pairing().reading(r, at(0))) == ["Unidentified"]


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (weighing(stable=False), "unstable"),
        (weighing(0.0), "no weight"),
        (weighing(None), "no weight"),
        (weighing(-1.0), "no weight"),
        (weighing(float("nan")), "no weight"),
    ],
)
def test_unstable_or_zero_readings_are_ignored_and_keep_the_card(reading: Reading, reason: str) -> None:
    p = Pairing()
    c = card("A", 0)
    p.card(c)
    assert p.reading(reading, at(1)) == [Ignored(reading, reason)]
    assert p.open_cards() == {"": c}


def test_card_without_weighing_expires_and_is_reported() -> None:
    p = Pairing(window_s=60)
    c = card("A", 0)
    p.card(c)
    assert p.next_deadline() == at(60)
    assert p.tick(at(60)) == []
    assert p.tick(at(61)) == [CardExpired(c)]
    assert p.tick(at(62)) == []
    assert p.next_deadline() is None


def test_two_scales_have_their_own_windows() -> None:
    p = Pairing()
    a, b = card("A", 0, "left"), card("B", 1, "right")
    assert p.card(a) == []
    assert p.card(b) == []  # not a supersede: another scale
    rb, ra = weighing(n=1), weighing(n=2)
    assert p.reading(rb, at(2), "right") == [Paired(rb, b, at(2))]
    assert p.reading(ra, at(3), "left") == [Paired(ra, a, at(3))]
    r = weighing(n=3)
    assert kinds(p.reading(r, at(4), "left")) == ["Unidentified"]


def test_shared_reader_card_is_a_wildcard() -> None:
    p = Pairing()
    shared, own = card("S", 0, ""), card("L", 1, "left")
    p.card(shared)
    p.card(own)
    r1, r2, r3 = weighing(n=1), weighing(n=2), weighing(n=3)
    assert p.reading(r1, at(2), "left") == [Paired(r1, own, at(2))]  # the scale's own card first
    assert p.reading(r2, at(3), "right") == [Paired(r2, shared, at(3))]
    assert kinds(p.reading(r3, at(4), "right")) == ["Unidentified"]


def test_weighing_before_the_card_does_not_belong_to_it() -> None:
    p = Pairing()
    p.card(c := card("A", 10))
    r = weighing()
    assert kinds(p.reading(r, at(5))) == ["Unidentified"]  # delivered late, happened before the tap
    assert p.open_cards() == {"": c}


def test_clock_going_back_does_not_reopen() -> None:
    p = Pairing(window_s=60)
    p.card(c := card("A", 0))
    assert p.tick(at(100)) == [CardExpired(c)]
    assert p.tick(at(10)) == []  # host clock stepped back
    r = weighing()
    assert kinds(p.reading(r, at(20))) == ["Unidentified"]


def test_window_must_be_positive() -> None:
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            Pairing(window_s=bad)


# ------------------------------------------------------------------------------------------ properties

SCALES = ["", "left", "right"]


class PairingMachine(RuleBasedStateMachine):
    """Monotone time; cards and readings on three scale keys (one wildcard)."""

    def __init__(self) -> None:
        super().__init__()
        self.window_s = 30.0
        self.policy = UnidentifiedPolicy.PARK
        self.p = Pairing(self.window_s, self.policy)
        self.t = 0.0
        self.n = 0
        self.weighings: dict[int, int] = {}  # reading id -> outcome count
        self.others: dict[int, int] = {}
        self.paired_cards: dict[int, int] = {}  # id(CardRead) -> times paired
        self.ended_cards: set[int] = set()  # expired or superseded
        self.cards: list[CardRead] = []

    def _record(self, events: list[PairingEvent]) -> None:
        for ev in events:
            if isinstance(ev, Paired):
                if ev.card.source is CardSource.READER:
                    key = id(ev.card)
                    assert key not in self.ended_cards, "an expired/superseded card was paired"
                    self.paired_cards[key] = self.paired_cards.get(key, 0) + 1
                    assert self.paired_cards[key] == 1, "one card paired twice"
            elif isinstance(ev, CardExpired):
                assert id(ev.card) not in self.paired_cards
                self.ended_cards.add(id(ev.card))
            elif isinstance(ev, CardSuperseded):
                assert id(ev.old) not in self.paired_cards
                self.ended_cards.add(id(ev.old))

    @rule(dt=st.floats(0, 40), scale=st.sampled_from(SCALES), number=st.sampled_from(["A", "B", "C"]))
    def tap(self, dt: float, scale: str, number: str) -> None:
        self.t += dt
        c = CardRead(number, at(self.t), scale)
        self.cards.append(c)
        events = self.p.card(c)
        assert all(isinstance(e, CardExpired | CardSuperseded) for e in events)
        self._record(events)

    @rule(
        dt=st.floats(0, 40),
        scale=st.sampled_from(SCALES),
        stable=st.booleans(),
        kg=st.sampled_from([None, 0.0, 72.5]),
        device_id=st.sampled_from([None, None, "", "42"]),
    )
    def weigh(self, dt: float, scale: str, stable: bool, kg: float | None, device_id: str | None) -> None:
        self.t += dt
        self.n += 1
        r = weighing(kg, stable=stable, device_id=device_id, n=self.n)
        now = at(self.t)
        events = self.p.reading(r, now, scale)
        self._record(events)
        outcomes = [e for e in events if isinstance(e, Paired | Unidentified | Ignored)]
        assert len(outcomes) == 1, "every reading has exactly one outcome"
        (out,) = outcomes
        assert out.reading is r
        if r.is_weighing:
            assert isinstance(out, Paired | Unidentified), "a stable weighing is never lost"
            self.weighings[self.n] = 1
            if isinstance(out, Paired):
                if device_id:
                    assert out.card.source is CardSource.SCALE_ID and out.card.number == device_id
                else:
                    assert out.card.scale in (scale, "")
                    assert out.card.at <= now <= out.card.at + timedelta(seconds=self.window_s)
            else:
                assert out.park is (self.policy is UnidentifiedPolicy.PARK)
        else:
            assert isinstance(out, Ignored)

    @rule(dt=st.floats(0, 40))
    def tick(self, dt: float) -> None:
        self.t += dt
        events = self.p.tick(at(self.t))
        assert all(isinstance(e, CardExpired) for e in events)
        self._record(events)

    @precondition(lambda self: bool(self.cards))
    @invariant()
    def open_cards_are_live(self) -> None:
        now = at(self.t)
        for scale, c in self.p.open_cards().items():
            assert c.scale == scale
            assert now - c.at <= timedelta(seconds=self.window_s)
            assert id(c) not in self.paired_cards and id(c) not in self.ended_cards
        deadline = self.p.next_deadline()
        assert (deadline is None) == (not self.p.open_cards())

    def teardown(self) -> None:
        # every card has exactly one fate: paired, expired, superseded, refreshed by the same card, or open
        self._record(self.p.tick(at(self.t + 10 * self.window_s)))
        assert self.p.open_cards() == {}
        for c in self.cards:
            k = id(c)
            assert (k in self.paired_cards) + (k in self.ended_cards) <= 1


PairingMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestPairingMachine = PairingMachine.TestCase


class DropPairingMachine(PairingMachine):
    def __init__(self) -> None:
        super().__init__()
        self.policy = UnidentifiedPolicy.DROP
        self.p = Pairing(self.window_s, self.policy)


DropPairingMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)
TestDropPairingMachine = DropPairingMachine.TestCase
