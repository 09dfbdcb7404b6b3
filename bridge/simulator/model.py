"""The simulated platform's state: studios, members, cards, benefit contingents, accepted weighings,
rate limits and injected faults. Pure Python, no I/O; the HTTP layer is ``bridge.simulator.app``."""

from __future__ import annotations

import random
import time
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DEFAULT_SEED = Path(__file__).with_name("seed.toml")

FAULT_KINDS = (
    "500",
    "502",
    "503",
    "504",
    "429",
    "reset_before",
    "reset_after",
    "timeout_after_commit",
    "slow",
    "malformed",
    "html",
    "huge",
    "403",
    "409",
)


@dataclass
class Studio:
    id: int
    name: str
    api_key: str


@dataclass
class Customer:
    id: int
    studio: int
    first_name: str
    last_name: str
    gender: str
    date_of_birth: str
    height_cm: float | None
    cards: list[int]
    benefits: list[str]

    def age(self, today: date) -> int:
        born = date.fromisoformat(self.date_of_birth)
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass
class Faults:
    rate: float = 0.0
    kinds: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()  # empty = all
    delay_s: float = 2.0
    script: deque[str] = field(default_factory=deque)  # exact faults for the next requests, in order
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def pick(self, operation: str) -> str | None:
        if self.operations and operation not in self.operations:
            return None
        if self.script:
            return self.script.popleft()
        if self.rate > 0 and self.kinds and self.rng.random() < self.rate:
            return self.rng.choice(self.kinds)
        return None


def card_value(number: str, fmt: str) -> int | None:
    """The integer a card number denotes under a platform cardNumberFormat."""
    try:
        if fmt == "DECIMAL":
            return int(number, 10)
        raw = bytes.fromhex(number if len(number) % 2 == 0 else "0" + number)
        if fmt == "HEX_MSB":
            return int.from_bytes(raw, "big")
        if fmt == "HEX_LSB":
            return int.from_bytes(raw, "little")
    except ValueError:
        return None
    return None


class PlatformState:
    def __init__(self, seed: dict[str, Any], *, rate_limit_per_min: int = 1000) -> None:
        self.tenant = str(seed.get("tenant", "sim"))
        self.studios = {s["id"]: Studio(s["id"], s["name"], s["api_key"]) for s in seed.get("studios", [])}
        self.by_key = {s.api_key: s for s in self.studios.values()}
        self.benefit_quota = {b["key"]: int(b["uses_per_month"]) for b in seed.get("benefits", [])}
        self.customers: dict[int, Customer] = {}
        for c in seed.get("customers", []):
            self.customers[c["id"]] = Customer(
                id=c["id"],
                studio=c["studio"],
                first_name=c["first_name"],
                last_name=c["last_name"],
                gender=c.get("gender", "UNISEX"),
                date_of_birth=c["date_of_birth"],
                height_cm=c.get("height_cm"),
                cards=[int(x) for x in c.get("cards", [])],
                benefits=list(c.get("benefits", [])),
            )
        self.usage: dict[tuple[int, str, str], int] = {}
        self.weighings: list[dict[str, Any]] = []
        self.benefit_uses: list[dict[str, Any]] = []
        #: the most recent requests (bounded: a soak test sends millions)
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        #: the clock of the rate limit (tests replace it with a fake one shared with the uploader)
        self.monotonic: Callable[[], float] = time.monotonic
        self.faults = Faults()
        self.rate_limit_per_min = rate_limit_per_min
        self._window: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self.counters: dict[str, int] = {"rate_limited": 0, "rejected_invalid": 0, "faults": 0}

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_SEED, **kw: Any) -> PlatformState:
        with open(path, "rb") as fh:
            return cls(tomllib.load(fh), **kw)

    # ---- lookups ---------------------------------------------------------------------------------

    def find_card(self, number: str, fmt: str, studio: int | None) -> Customer | None:
        value = card_value(number, fmt)
        if value is None:
            return None
        for c in self.customers.values():
            if value in c.cards and (studio is None or c.studio == studio):
                return c
        return None

    def visible(self, customer_id: int, studio: int) -> Customer | None:
        """A customer the calling studio may act for: its own, or the same tenant's (cross-facility)."""
        return self.customers.get(customer_id)

    @staticmethod
    def month(now: datetime) -> str:
        return now.strftime("%Y-%m")

    def benefit_valid(self, customer: Customer, key: str, now: datetime) -> bool:
        if key not in customer.benefits or key not in self.benefit_quota:
            return False
        used = self.usage.get((customer.id, key, self.month(now)), 0)
        return used < self.benefit_quota[key]

    def use_benefit(self, customer: Customer, key: str, now: datetime) -> None:
        k = (customer.id, key, self.month(now))
        self.usage[k] = self.usage.get(k, 0) + 1

    def contingent_left(self, customer_id: int, key: str, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        return self.benefit_quota.get(key, 0) - self.usage.get((customer_id, key, self.month(now)), 0)

    # ---- rate limit -------------------------------------------------------------------------------

    def rate_limited(self, endpoint: str, now_s: float) -> bool:
        """1000 requests/min per endpoint; beyond that every call is refused for the next minute."""
        if self._locked_until.get(endpoint, 0.0) > now_s:
            return True
        window = self._window.setdefault(endpoint, deque())
        while window and window[0] <= now_s - 60.0:
            window.popleft()
        if len(window) >= self.rate_limit_per_min:
            self._locked_until[endpoint] = now_s + 60.0
            window.clear()
            return True
        window.append(now_s)
        return False

    def lock_endpoint(self, endpoint: str, now_s: float) -> None:
        self._locked_until[endpoint] = now_s + 60.0
