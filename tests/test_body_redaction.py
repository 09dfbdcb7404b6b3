"""M6 (issue 14): rawResults never carries a full card number (Tanita ID / CC / SN)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bridge.body import weighing_body
from drivers.tanita import checksum
from drivers.tanita import parse as tanita_parse

CARD = "0000003220338716"


def test_id_cc_and_sn_are_masked_in_raw_and_fields() -> None:
    b = f'{{0,16,MO,"MC-780",ID,"{CARD}",CC,"987654321",SN,"00012345",Wk,70.5,FW,20.1,'.encode()
    reading = tanita_parse(b + b"CS," + checksum(b).encode())
    body = weighing_body(reading, received_at=datetime(2026, 12, 1, tzinfo=UTC))
    text = json.dumps(body)
    for secret in (CARD, "3220338716", "987654321", "00012345"):
        assert secret not in text
    raw = json.loads(body["rawResults"])
    assert raw["fields"]["ID"] == "************8716" and raw["fields"]["CC"] == "*****4321"
    assert '"************8716"' in raw["raw"] and "Wk,70.5" in raw["raw"]
    assert body["weight"] == 70.5
