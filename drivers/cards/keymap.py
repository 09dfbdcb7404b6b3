"""USB "keyboard wedge" card readers: evdev key codes -> card text. Pure: the caller passes the time.

Maps **scancodes** (linux/input-event-codes.h), not layout characters: a reader "typing" on a German
or French layout still sends KEY_1 for "1". Digits (top row and keypad), A-F for hex readers, comma
for W26 ``facility,card``; KEY_ENTER / KEY_KPENTER end a card. Shift and other modifiers are ignored
(hex comes out uppercase); any other key is ignored and counted.
"""

from __future__ import annotations

EV_KEY = 1
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2

KEY_ENTER = 28
KEY_KPENTER = 96
TERMINATORS = frozenset({KEY_ENTER, KEY_KPENTER})

#: evdev code -> character
KEYMAP: dict[int, str] = {
    # top row KEY_1..KEY_9 = 2..10, KEY_0 = 11
    **{code: str((code - 1) % 10) for code in range(2, 12)},
    # keypad
    71: "7",
    72: "8",
    73: "9",
    75: "4",
    76: "5",
    77: "6",
    79: "1",
    80: "2",
    81: "3",
    82: "0",
    # hex digits
    30: "A",
    48: "B",
    46: "C",
    32: "D",
    18: "E",
    33: "F",
    # W26 "facility,card"
    51: ",",
}

#: modifiers a reader may press around letters; not counted as noise
MODIFIERS = frozenset({29, 42, 54, 56, 97, 100, 58, 69})  # ctrl, shifts, alts, caps lock, num lock


class KeyAccumulator:
    """Collect key-down events into card texts.

    ``feed(code, value, at)`` returns the finished card text when a terminator arrives, else None.
    A partial input older than ``timeout_s`` (no key for that long) is dropped before the next key, so
    a half-read card never glues onto the next one; input longer than ``max_len`` is dropped up to the
    next terminator. Empty input (a bare Enter) yields nothing.
    """

    def __init__(self, *, timeout_s: float = 0.5, max_len: int = 32) -> None:
        if timeout_s <= 0 or max_len <= 0:
            raise ValueError("timeout_s and max_len must be positive")
        self.timeout_s = timeout_s
        self.max_len = max_len
        self._chars: list[str] = []
        self._last_at: float | None = None
        self._overflow = False
        self.dropped_partials = 0
        self.ignored_keys = 0

    @property
    def pending(self) -> int:
        return len(self._chars)

    def expire(self, now: float) -> bool:
        """Drop a stale partial input; True if one was dropped."""
        if (self._chars or self._overflow) and self._last_at is not None and now - self._last_at > self.timeout_s:
            self._drop()
            return True
        return False

    def _drop(self) -> None:
        self.dropped_partials += 1
        self._chars.clear()
        self._overflow = False

    def feed(self, code: int, value: int, at: float) -> str | None:
        if value != KEY_DOWN:
            return None  # key up and autorepeat
        self.expire(at)
        self._last_at = at
        if code in TERMINATORS:
            if self._overflow:
                self._drop()
                return None
            text = "".join(self._chars)
            self._chars.clear()
            return text or None
        char = KEYMAP.get(code)
        if char is None:
            if code not in MODIFIERS:
                self.ignored_keys += 1
            return None
        if self._overflow:
            return None
        self._chars.append(char)
        if len(self._chars) > self.max_len:
            self._chars.clear()
            self._overflow = True
        return None
