"""The AE00 ("Jieli") authentication of newer QN firmware, the part of ``drivers/qn_scale.py``'s
``QnExchange`` that answers the scale's challenge. Pure: no clock, no I/O (times are the caller's).

The scale sends ``00 <16-byte challenge>`` on AE02; the answer is ``01 <E1 of it>`` on AE01, written
without response (``drivers/bt_e1.py``: the Bluetooth E1 function under Jieli's fixed RCSP constants,
verified on the spec's sample sets and on ten pairs captured from a GE CS 10 G, ble-scale-sync#235);
the scale then sends ``02 "pass"``. A challenge of another layout, a challenge with no AE01 to answer
on, a further challenge after :data:`MAX_ANSWERS` answers (the scale refuses them) and no "pass"
within :data:`PASS_WAIT_S` of an answer each end the session with that reason.
"""

from __future__ import annotations

from .bt_e1 import jieli_answer
from .gatt import Action, Disconnect, Write

CHALLENGE_SIZE = 17
#: Jieli RCSP frame kinds (first byte): challenge, answer, and ``02 "pass"`` (authenticated)
CHALLENGE, ANSWER = 0x00, 0x01
PASS = b"\x02pass"
#: answers given before a further challenge counts as the scale rejecting them
MAX_ANSWERS = 3
#: how long after an answer the scale's "pass" may take before the session ends (s)
PASS_WAIT_S = 5.0


def kind(data: bytes) -> str:
    """What an AE02 notification is, for the decoder's report."""
    if len(data) == CHALLENGE_SIZE and data[0] == CHALLENGE:
        return "Jieli authentication challenge"
    if data == PASS:
        return 'Jieli authentication "pass"'
    return "not a weighing"


class JieliGate:
    """One connection's authentication. ``ae_write`` is AE01's UUID, or None when the device has none."""

    def __init__(self, ae_write: str | None) -> None:
        self._ae_write = ae_write
        self.answers = 0
        #: when the scale's "pass" is due (monotonic s), None when nothing is awaited
        self.deadline_s: float | None = None
        self.authenticated = False

    def on_ae02(self, data: bytes, now_s: float) -> list[Action]:
        if data == PASS:
            self.authenticated = True
            self.deadline_s = None
            return []
        if data[:1] != bytes([CHALLENGE]):
            return []  # not a challenge (an answer to one we never sent, or unknown): nothing to do
        if len(data) != CHALLENGE_SIZE:
            why = f"AE00 (Jieli) challenge of an unknown layout ({len(data)} bytes, not 17): not supported"
            return [Disconnect(why)]
        if self._ae_write is None:
            return [Disconnect("AE00 (Jieli) authentication challenge, but the device offers no AE01 to answer on")]
        if self.answers >= MAX_ANSWERS:
            return [
                Disconnect(
                    f"AE00 (Jieli) authentication: the scale challenged again after {self.answers} answers, "
                    "so it rejects them (firmware with another key?)"
                )
            ]
        self.answers += 1
        self.deadline_s = now_s + PASS_WAIT_S
        return [Write(self._ae_write, bytes([ANSWER]) + jieli_answer(data[1:]), with_response=False)]

    def on_timeout(self, now_s: float) -> list[Action]:
        if self.deadline_s is None or now_s < self.deadline_s:
            return []
        return [
            Disconnect(
                f'AE00 (Jieli) authentication: no "pass" from the scale within {PASS_WAIT_S:g} s of the answer '
                "(firmware with another key?)"
            )
        ]
