"""The envelope every link yields and every capture file stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    RX = "rx"  # serial bytes as they arrived, in chunks
    TX = "tx"  # bytes the bridge sent to the device (PC mode, polls); replay ignores them
    ADV = "adv"  # BLE advertisement: service/manufacturer data
    NOTIFY = "notify"  # BLE GATT notification/indication value
    CARD = "card"  # a member card read
    HTTP = "http"  # a cloud API's answer in an envelope (drivers/inbody.py): one document per event
    #: a BLE GATT connection ended (empty payload, ``address`` set): that device's decoder flushes what
    #: it holds (drivers/registry.py ``flush_decoder``), e.g. a weight waiting for its composition
    SESSION_END = "session_end"


@dataclass(frozen=True, slots=True)
class LinkEvent:
    kind: EventKind
    payload: bytes
    #: host clock, UTC (scale clocks are not trusted)
    received_at: datetime
    #: BLE service UUID (adv) or characteristic UUID (notify); "" for serial
    channel: str = ""
    address: str | None = None
    rssi: int | None = None
    name: str | None = None
    #: which configured scale this event belongs to (multi-scale daemons)
    scale: str = ""
