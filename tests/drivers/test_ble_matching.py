"""Guard: no BLE matcher shadows another, over realistic advertisement samples.

Rule (docs in drivers/mi_scale.py and drivers/ble_standard.py): ``mi_scale`` claims an advertisement by
its service data under 0x181D/0x181B or by a Mi name; ``ble_standard`` claims connectable devices that
list 0x181D/0x181B among their services, unless they carry such service data, a Mi name or Huami
(0x0157) manufacturer data. Samples are synthetic, shaped like what bleak reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from drivers.bleuuid import full_uuid
from drivers.registry import BleMatcher, BleMode, find_ble_drivers, registry

WSS, BCS, UDS = full_uuid("181d"), full_uuid("181b"), full_uuid("181c")
HRS, BATTERY = full_uuid("180d"), full_uuid("180f")
HUAMI = 0x0157
FFE0, FFF0, FFB0, MEDISANA = full_uuid("ffe0"), full_uuid("fff0"), full_uuid("ffb0"), full_uuid("78b2")


@dataclass(frozen=True)
class Adv:
    name: str | None
    service_uuids: frozenset[str] = frozenset()
    service_data_uuids: frozenset[str] = frozenset()
    manufacturer_ids: frozenset[int] = frozenset()
    connectable: bool | None = None
    expect: str | None = None
    note: str = field(default="", compare=False)


SAMPLES = [
    Adv("MI_SCALE", frozenset({WSS}), frozenset({WSS}), expect="mi_scale", note="Mi v1 weighing"),
    Adv("MISCA", frozenset(), frozenset({WSS}), expect="mi_scale", note="Mi v1, newer name"),
    Adv("MIBFS", frozenset({BCS}), frozenset({BCS}), frozenset({HUAMI}), True, "mi_scale", "Mi v2 weighing"),
    Adv("MIBCS", frozenset(), frozenset({BCS}), frozenset({HUAMI}), expect="mi_scale", note="Mi v2, older name"),
    Adv("MI SCALE2", frozenset({WSS}), frozenset({WSS}), expect="mi_scale", note="Mi Scale 2 name"),
    Adv(None, frozenset(), frozenset({BCS}), expect="mi_scale", note="passive scan: no scan response, no name"),
    Adv("MIBFS", frozenset({BCS}), frozenset(), frozenset({HUAMI}), True, "mi_scale", "Mi v2 idle: no service data"),
    Adv(None, frozenset({BCS}), frozenset(), frozenset({HUAMI}), True, None, "Mi v2 idle, passive: nobody's"),
    Adv("BF600", frozenset({WSS, BCS, UDS}), connectable=True, expect="ble_standard", note="standard BCS scale"),
    Adv("UC-352BLE", frozenset({WSS, BATTERY}), connectable=True, expect="ble_standard", note="standard weight"),
    Adv(None, frozenset({BCS}), connectable=None, expect="ble_standard", note="connectability unknown"),
    Adv("BF600", frozenset({WSS, BCS}), connectable=False, expect=None, note="not connectable: cannot be GATT"),
    Adv("HRM-Pro", frozenset({HRS}), connectable=True, expect=None, note="heart-rate strap"),
    Adv(None, expect=None, note="empty advertisement"),
    # consumer vendor families (drivers/qn_scale.py ... drivers/lefu_ffb0.py): shared vendor UUIDs
    # (0xFFE0, 0xFFF0) never claim on their own; names, 0x78B2, 0xFFB0 and 0xFFFF data do
    Adv("QN-Scale", frozenset({FFE0}), connectable=True, expect="qn_scale", note="QN type 1"),
    Adv("Renpho ES-26M", frozenset({FFF0}), connectable=True, expect="qn_scale", note="QN type 2"),
    Adv("Renpho-Scale", frozenset({WSS, BCS}), connectable=True, expect="ble_standard", note="ES-WBE28 is SIG"),
    Adv("QN-Scale", manufacturer_ids=frozenset({0xFFFF}), connectable=False, expect="qn_broadcast", note="QN bcast"),
    Adv(None, manufacturer_ids=frozenset({0xFFFF}), expect="qn_broadcast", note="QN broadcast, passive scan"),
    Adv("eufy T9146", frozenset({FFF0}), connectable=True, expect="eufy_1byone", note="Eufy C1"),
    Adv("Health Scale", frozenset({FFF0}), connectable=True, expect="eufy_1byone", note="1byone classic"),
    # Eufy P2 / P2 Pro (drivers/eufy_p2.py): the same 0xFFF0 as the C1/P1 and QN, so by name only
    Adv("eufy T9148", frozenset({FFF0}), connectable=True, expect="eufy_p2", note="Eufy P2"),
    Adv("eufy T9149", frozenset({FFF0}), connectable=True, expect="eufy_p2", note="Eufy P2 Pro"),
    Adv("eufy T9149", frozenset(), frozenset(), frozenset({0xFF48}), True, "eufy_p2", "P2 Pro, no UUID list"),
    Adv(None, frozenset({FFF0}), frozenset(), frozenset({0xFF48}), True, None, "P2 advert, no name: nobody's"),
    Adv("eufy T9147", frozenset({FFF0}), connectable=True, expect="eufy_1byone", note="Eufy P1 is not a P2"),
    Adv("eufy T9149", frozenset({FFF0}), connectable=False, expect=None, note="P2 Pro not connectable"),
    Adv("YUNMAI-ISM", frozenset({FFE0, full_uuid("ffe5")}), connectable=True, expect="yunmai", note="Yunmai Mini"),
    Adv("013197", frozenset({MEDISANA}), connectable=True, expect="medisana_bs44x", note="Medisana BS444"),
    Adv(None, frozenset({MEDISANA}), connectable=True, expect="medisana_bs44x", note="Medisana, no name"),
    Adv("1byone scale", frozenset({FFB0}), connectable=True, expect="lefu_ffb0", note="1byone new"),
    Adv(None, frozenset({FFB0}), connectable=True, expect="lefu_ffb0", note="FFB0, no name"),
    # the AC 02 dialect (ble-scale-sync #254/#278/#322): 0xFFB0 (+ 0xD618) and 0x02AC manufacturer data
    Adv(
        "Hutbit Scale",
        frozenset({FFB0, full_uuid("d618")}),
        manufacturer_ids=frozenset({0x02AC}),
        connectable=True,
        expect="lefu_ffb0",
        note="Hutbit 218008",
    ),
    Adv(
        "SWAN",
        frozenset({FFB0}),
        manufacturer_ids=frozenset({0x02AC}),
        connectable=True,
        expect="lefu_ffb0",
        note="Juniper / Lefu OEM SWAN",
    ),
    Adv("SWAN", connectable=None, expect="lefu_ffb0", note="SWAN, passive scan: name only"),
    Adv("FitTrack", frozenset({FFB0}), connectable=True, expect="lefu_ffb0", note="FitTrack Dara 2.0"),
    Adv(None, frozenset({FFE0}), connectable=True, expect=None, note="nameless FFE0: nobody's"),
    Adv(None, frozenset({FFF0}), connectable=True, expect=None, note="nameless FFF0: nobody's"),
    Adv("eufy T9146", frozenset({FFF0}), connectable=False, expect=None, note="Eufy not connectable"),
    # Beurer/Sanitas vendor family (drivers/beurer_sanitas.py): 0xFFE0 like QN and Yunmai, so by name only
    Adv("SANITAS SBF70", frozenset({FFE0}), connectable=True, expect="beurer_sanitas", note="Sanitas SBF70"),
    Adv("BEURER BF710", frozenset({FFE0}), connectable=True, expect="beurer_sanitas", note="Beurer BF710"),
    Adv("BF700", frozenset({FFE0}), connectable=True, expect="beurer_sanitas", note="Beurer BF700, short name"),
    Adv("RT-Libra-W", frozenset({FFE0}), connectable=None, expect="beurer_sanitas", note="Runtastic Libra"),
    Adv("SBF75", frozenset({FFE0}), connectable=True, expect="beurer_sanitas", note="Sanitas SBF75 short name"),
    Adv("SANITAS SBF72", frozenset({WSS, BCS, UDS}), connectable=True, expect="ble_standard", note="SBF72 is SIG"),
    Adv("BF720", frozenset({WSS, BCS, UDS}), connectable=True, expect="ble_standard", note="BF720 is SIG"),
    Adv("SANITAS SBF70", frozenset({FFE0}), connectable=False, expect=None, note="SBF70 not connectable"),
]


def claimants(adv: Adv) -> list[str]:
    return find_ble_drivers(
        name=adv.name,
        service_uuids=adv.service_uuids,
        service_data_uuids=adv.service_data_uuids,
        manufacturer_ids=adv.manufacturer_ids,
        connectable=adv.connectable,
    )


@pytest.mark.parametrize("adv", SAMPLES, ids=[s.note for s in SAMPLES])
def test_no_ble_matcher_shadows_another(adv: Adv) -> None:
    found = claimants(adv)
    assert len(found) <= 1, f"{adv.note}: claimed by {found}"
    assert found == ([adv.expect] if adv.expect else []), f"{adv.note}: claimed by {found}"


@pytest.mark.parametrize("adv", [s for s in SAMPLES if s.service_data_uuids], ids=lambda s: s.note)
def test_caller_that_merges_uuid_lists(adv: Adv) -> None:
    """A link that cannot tell the service list from service data passes the union as both."""
    union = adv.service_uuids | adv.service_data_uuids
    found = find_ble_drivers(
        name=adv.name,
        service_uuids=union,
        service_data_uuids=union,
        manufacturer_ids=adv.manufacturer_ids,
        connectable=adv.connectable,
    )
    assert found == ["mi_scale"]


def test_every_ble_driver_is_covered_by_a_sample() -> None:
    ble_drivers = {name for name, spec in registry().items() if spec.ble is not None}
    assert {"mi_scale", "ble_standard"} <= ble_drivers
    claimed = {s.expect for s in SAMPLES if s.expect}
    assert ble_drivers <= claimed, f"add advertisement samples for {sorted(ble_drivers - claimed)}"


def test_matcher_defaults_unchanged() -> None:
    """The exclusions are additive: a plain matcher still claims on any one criterion."""
    m = BleMatcher(mode=BleMode.GATT, service_uuids=frozenset({HRS}), name_prefixes=("X",))
    assert m.matches(name=None, service_uuids=frozenset({HRS}), manufacturer_ids=frozenset())
    assert m.matches(name="X1", service_uuids=frozenset(), manufacturer_ids=frozenset())
    assert m.matches(name=None, service_uuids=frozenset(), manufacturer_ids=frozenset(), service_data_uuids={HRS})
