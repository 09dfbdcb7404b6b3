"""How a card as the reader produced it becomes the platform's ``cardNumber`` + ``cardNumberFormat``
queries: the configured conversion first, then the configured fallbacks (tried after a 404)."""

from __future__ import annotations

from drivers.cards import numbers

from .config import CardsConfig


def platform_queries(card: str, cards: CardsConfig) -> list[tuple[str, str]]:
    return numbers.platform_queries(
        card.strip(), cards.format, cards.byte_order, cards.platform_format, cards.fallbacks
    )
