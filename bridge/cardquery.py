"""How a card as the reader produced it becomes the platform's ``cardNumber`` + ``cardNumberFormat``
queries: the configured conversion first, then the configured fallbacks (tried after a 404)."""

from __future__ import annotations

from .config import CardsConfig


def platform_queries(card: str, cards: CardsConfig) -> list[tuple[str, str]]:
    text = card.strip()
    try:
        from drivers.cards import numbers
    except ImportError:  # pragma: no cover - the conversion module ships with the package
        numbers = None  # type: ignore[assignment]
    queries: list[tuple[str, str]] = []
    if numbers is not None and hasattr(numbers, "platform_queries"):
        queries = list(numbers.platform_queries(text, cards.format, cards.byte_order, cards.platform_format,
                                                cards.fallbacks))
    else:
        queries = [(text, cards.platform_format)]
        queries += [(text, fmt) for fmt in cards.fallbacks if fmt in ("DECIMAL", "HEX_MSB", "HEX_LSB")]
    seen: set[tuple[str, str]] = set()
    return [q for q in queries if not (q in seen or seen.add(q))]
