"""Regenerate tests/vectors/tanita/derived_quirks.jsonl from the test-only builder.

Run: ``.venv/bin/python tests/drivers/gen_tanita_vectors.py``. Every line is DERIVED (built from the
format in shared/reference/scales.md §A1, checksums computed by ``builders.tanita_line``); values are
synthetic (no real member numbers). Expected values are written out by hand below, in the driver's
attribute names (tests/drivers/expected.py): every attribute the decoder must produce, no more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builders import q, tanita_line

OUT = Path(__file__).resolve().parents[1] / "vectors" / "tanita" / "derived_quirks.jsonl"
SRC = "DERIVED: built by tests/drivers/builders.py from scales.md §A1"

SC240 = [
    ("MO", q("SC-240")),
    ("SN", q("00000002")),
    ("Bt", "0"),
    ("GE", "1"),
    ("AG", "30"),
    ("Hm", "170"),
    ("Pt", "0.0"),
    ("Wk", "82.7"),
    ("FW", "18.6"),
    ("fW", "15.4"),
    ("MW", "67.3"),
    ("mW", "64.0"),
    ("sW", "19"),
    ("bW", "3.3"),
    ("wW", "48.0"),
    ("ww", "58.0"),
    ("MI", "28.6"),
    ("Sw", "63.6"),
    ("OV", "30.0"),
    ("IF", "6"),
    ("rb", "8255"),
    ("rB", "1973"),
    ("rJ", "12"),
    ("rA", "28"),
    ("ZF", "369.4"),
]
SC240_EXPECT: dict[str, Any] = {
    "weight_kg": 82.7,
    "height_cm": 170,
    "fat_percent": 18.6,
    "fat_mass_kg": 15.4,
    "fat_free_mass_kg": 67.3,
    "total_body_water_kg": 48.0,
    "bmi": 28.6,
    "visceral_fat_rating": 6,
    "bmr_kcal": 1973,
    "stable": True,
    "impedance_ohm": 369.4,
    "model": "SC-240",
    "muscle_mass_kg": 64.0,
    "bone_mass_kg": 3.3,
    "total_body_water_percent": 58.0,
    "metabolic_age_years": 28,
}

SEGMENTS = [
    # letter, fat %, fat kg, FFM kg, muscle kg
    ("R", "19.8", "2.2", "8.9", "8.4"),
    ("L", "20.1", "2.3", "9.0", "8.5"),
    ("r", "15.2", "0.6", "3.4", "3.1"),
    ("l", "15.8", "0.6", "3.3", "3.0"),
    ("T", "23.0", "8.9", "29.8", "28.3"),
]
SEG_NAME = {"R": "right_leg", "L": "left_leg", "r": "right_arm", "l": "left_arm", "T": "trunk"}


def seg_pairs() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for letter, fp, fm, ffm, mm in SEGMENTS:
        out += [("F" + letter, fp), ("f" + letter, fm), ("M" + letter, ffm), ("m" + letter, mm)]
    return out


def seg_expect() -> dict[str, float]:
    """The segments' expected attributes (``segments.<segment>.<attr>``, tests/drivers/expected.py)."""
    out: dict[str, float] = {}
    for letter, fp, fm, ffm, mm in SEGMENTS:
        name = SEG_NAME[letter]
        out[f"segments.{name}.fat_percent"] = float(fp)
        out[f"segments.{name}.fat_mass_kg"] = float(fm)
        out[f"segments.{name}.fat_free_mass_kg"] = float(ffm)
        out[f"segments.{name}.muscle_mass_kg"] = float(mm)
    return out


def mc980(status: str, date: str = "25/09/2014") -> list[tuple[str, str]]:
    return [
        ("MO", q("MC-980")),
        ("ID", q("0000000000012345")),
        ("St", status),
        ("Da", q(date)),
        ("TI", q("10:15")),
        ("Bt", "0"),
        ("GE", "1"),
        ("AG", "35"),
        ("Hm", "178.0"),
        ("Pt", "1.0"),
        ("Wk", "80.2"),
        ("FW", "21.5"),
        ("fW", "17.2"),
        ("MW", "63.0"),
        ("mW", "59.8"),
        ("sW", "1"),
        ("bW", "3.2"),
        ("wW", "46.1"),
        ("ww", "57.5"),
        ("wI", "27.6"),
        ("wO", "18.5"),
        ("wo", "40.1"),
        ("MI", "25.3"),
        ("Sw", "69.7"),
        ("OV", "15.1"),
        ("IF", "8"),
        ("rb", "7850"),
        ("rB", "1876"),
        ("rA", "38"),
        *seg_pairs(),
    ]


MC980_EXPECT: dict[str, Any] = {
    "weight_kg": 80.2,
    "height_cm": 178.0,
    "fat_percent": 21.5,
    "fat_mass_kg": 17.2,
    "fat_free_mass_kg": 63.0,
    "total_body_water_kg": 46.1,
    "bmi": 25.3,
    "visceral_fat_rating": 8,
    "bmr_kcal": 1876,
    "stable": True,
    "model": "MC-980",
    "device_id": "0000000000012345",
    "muscle_mass_kg": 59.8,
    "bone_mass_kg": 3.2,
    "total_body_water_percent": 57.5,
    "metabolic_age_years": 38,
}


def vectors() -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = []

    def add(name: str, text: bytes, expect: Any, source: str = SRC) -> None:
        v.append({"driver": "tanita", "name": name, "source": source, "text": text.decode("latin-1"), "expect": expect})

    add(
        "mc980_Da_ddmmyyyy_TI_segmental",
        tanita_line(mc980("0")),
        {**MC980_EXPECT, **seg_expect(), "device_time": "2014-09-25T10:15:00", "fields": {"St": "0"}},
    )
    add(
        "mc980_St1_segmental_error_drops_segments",
        tanita_line(mc980("1")),
        {**MC980_EXPECT, "device_time": "2014-09-25T10:15:00", "fields": {"St": "1", "FR": "19.8"}},
    )
    add(
        "mc980_impossible_date_gives_no_device_time",
        tanita_line(mc980("0", date="31/02/2016")),
        {**MC980_EXPECT, **seg_expect(), "device_time": None, "fields": {"Da": "31/02/2016"}},
    )
    dc320 = [
        ("MO", q("DC-320")),
        ("DA", q("19/01/30")),
        ("TI", q("08:05")),
        ("Bt", "0"),
        ("GE", "2"),
        ("AG", "41"),
        ("Hm", "165.5"),
        ("Pt", "0.5"),
        ("Wk", "62.4"),
        ("FW", "29.3"),
        ("fW", "18.3"),
        ("MW", "44.1"),
        ("mW", "41.8"),
        ("bW", "2.3"),
        ("wW", "31.9"),
        ("MI", "22.8"),
        ("IF", "5"),
        ("rB", "1302"),
        ("rA", "39"),
        ("LP", "95"),
        ("UF", "612.3"),
        ("VF", "58.1"),
    ]
    add(
        "dc320_DA_yymmdd",
        tanita_line(dc320),
        {
            "weight_kg": 62.4,
            "height_cm": 165.5,
            "fat_percent": 29.3,
            "fat_mass_kg": 18.3,
            "fat_free_mass_kg": 44.1,
            "total_body_water_kg": 31.9,
            "bmi": 22.8,
            "visceral_fat_rating": 5,
            "bmr_kcal": 1302,
            "muscle_mass_kg": 41.8,
            "bone_mass_kg": 2.3,
            "metabolic_age_years": 39,
            "device_time": "2019-01-30T08:05:00",
            "model": "DC-320",
            "fields": {"UF": "612.3", "VF": "58.1"},
        },
    )
    mc780 = [
        ("MO", q("MC-780")),
        ("ID", q("0000000000000000")),
        ("St", "0"),
        ("DT", q("2026/06/03")),
        ("TI", q("07:30")),
        ("Bt", "0"),
        ("GE", "1"),
        ("AG", "29"),
        ("Hm", "181.5"),
        ("Pt", "0.0"),
        ("Wk", "70.5"),
        ("FW", "15.2"),
        ("fW", "10.7"),
        ("MW", "59.8"),
        ("MI", "21.4"),
        ("IF", "3"),
        ("rb", "7280"),
        ("RM", "498.1"),
        ("pH", "6.1"),
    ]
    add(
        "mc780_DT_yyyymmdd_zero_id_is_no_id_bmr_from_kj",
        tanita_line(mc780),
        {
            "weight_kg": 70.5,
            "height_cm": 181.5,
            "fat_percent": 15.2,
            "fat_mass_kg": 10.7,
            "fat_free_mass_kg": 59.8,
            "bmi": 21.4,
            "visceral_fat_rating": 3,
            "bmr_kcal": 1740,
            "device_time": "2026-06-03T07:30:00",
            "device_id": None,
            "model": "MC-780",
            "fields": {"pH": "6.1", "RM": "498.1"},
        },
    )
    bc601_imperial = [
        ("MO", q("BC-601")),
        ("DT", q("07/02/2024")),
        ("Ti", q("19:02:11")),
        ("Bt", "0"),
        ("GE", "1"),
        ("AG", "45"),
        ("Hm", "70.0"),
        ("AL", "2"),
        ("Wk", "180.4"),
        ("MI", "25.9"),
        ("FW", "22.1"),
        ("Fr", "18.0"),
        ("Fl", "18.4"),
        ("FR", "20.3"),
        ("FL", "20.9"),
        ("FT", "24.2"),
        ("mW", "133.6"),
        ("mr", "7.9"),
        ("ml", "8.0"),
        ("mR", "22.0"),
        ("mL", "21.8"),
        ("mT", "73.9"),
        ("bW", "7.1"),
        ("IF", "9"),
        ("rD", "2650"),
        ("rA", "47"),
        ("ww", "55.2"),
    ]
    add(
        "bc601_imperial_lb_and_inches",
        tanita_line(bc601_imperial, head="{0,16,~0,3,~1,2,~2,3,~3,4,"),
        {
            "weight_kg": 81.83,
            "height_cm": 177.8,
            "fat_percent": 22.1,
            "bmi": 25.9,
            "visceral_fat_rating": 9,
            "segments.right_arm.fat_percent": 18.0,
            "segments.left_arm.fat_percent": 18.4,
            "segments.right_leg.fat_percent": 20.3,
            "segments.left_leg.fat_percent": 20.9,
            "segments.trunk.fat_percent": 24.2,
            # the masses in lb (x 0.45359237): mW 133.6, bW 7.1, mr 7.9, ml 8.0, mR 22.0, mL 21.8, mT 73.9
            "muscle_mass_kg": 60.6,
            "bone_mass_kg": 3.22,
            "segments.right_arm.muscle_mass_kg": 3.58,
            "segments.left_arm.muscle_mass_kg": 3.63,
            "segments.right_leg.muscle_mass_kg": 9.98,
            "segments.left_leg.muscle_mass_kg": 9.89,
            "segments.trunk.muscle_mass_kg": 33.52,
            "total_body_water_percent": 55.2,
            "metabolic_age_years": 47,
            "device_time": "2024-02-07T19:02:11",
            "model": "BC-601",
            "fields": {"Wk": "180.4", "Hm": "70.0"},
        },
    )
    pro_lb = [
        ("MO", q("MC-980")),
        ("ID", q("0000000000000000")),
        ("St", "0"),
        ("Da", q("03/11/2025")),
        ("TI", q("18:40")),
        ("Bt", "0"),
        ("GE", "1"),
        ("AG", "52"),
        ("Hf", "5-10.0"),
        ("Pt", "2.0"),
        ("Wp", "176.8"),
        ("FW", "21.0"),
        ("fW", "37.1"),
        ("MW", "139.7"),
        ("wW", "101.6"),
        ("MI", "25.4"),
        ("IF", "11"),
        ("rB", "1702"),
    ]
    add(
        "mc980_lb_mode_Wp_Hf",
        tanita_line(pro_lb),
        {
            "weight_kg": 80.20,
            "height_cm": 177.8,
            "fat_percent": 21.0,
            "fat_mass_kg": 16.83,
            "fat_free_mass_kg": 63.37,
            "total_body_water_kg": 46.09,
            "bmi": 25.4,
            "visceral_fat_rating": 11,
            "bmr_kcal": 1702,
            "device_time": "2025-11-03T18:40:00",
            "model": "MC-980",
            "fields": {"Wp": "176.8", "Hf": "5-10.0"},
        },
        SRC + " (Hf text form is not documented: feet-inches written as 5-10.0)",
    )
    add(
        "hd351bt_lb_Wp",
        tanita_line([("MO", q("HD-351BT")), ("Wp", "165.2")], head="{0,16,~0,1,"),
        {"weight_kg": 74.93, "model": "HD-351BT"},
        SRC + ' (HD-351BT manual layout {0,16,~0,1,MO,"HD-351BT",Wp,xxx.x,CS,xx)',
    )
    add(
        "hd351bt_st_lb_Ws",
        tanita_line([("MO", q("HD-351BT")), ("Ws", "12.08.6")], head="{0,16,~0,1,"),
        {"weight_kg": 80.10, "model": "HD-351BT", "fields": {"Ws": "12.08.6"}},
    )
    add(
        "bd815_grams_Wg",
        tanita_line([("MO", q("BD-815")), ("Wg", "4250")]),
        {"weight_kg": 4.25, "model": "BD-815"},
    )
    add("sc240_trailing_brace", tanita_line(SC240, brace=True), SC240_EXPECT, SRC + " (hand-edited samples end in })")
    add(
        "sc240_noise_before_brace_same_line",
        b"\x00\x7f~" + tanita_line(SC240),
        SC240_EXPECT,
        SRC + " (WB-3000 'irrelevant signal' glued to the next record)",
    )
    for code in ("E0", "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9"):
        add(
            f"error_code_{code}",
            code.encode() + b"\r\n",
            {"device_report": {"code": code, "is_error": True}},
            "scales.md §A1b error code table (sent unsolicited or as a reply)",
        )
    echo = {"device_report": {"code": "D3", "is_error": False}}
    add("pc_echo_D3", b"D3\r\n", echo, "scales.md §A1b: set commands echo")
    add("pc_param_error_D3", b"D3!\r\n", {"device_report": {"code": "D3!", "is_error": True}}, "scales.md §A1b")
    add("pc_unknown_command", b"!\r\n", {"device_report": {"code": "!", "is_error": True}}, "scales.md §A1b")
    query = "D01.5,D11,D20,D3175.4,D430,D50000012345,D620"
    add(
        "pc_query_reply",
        query.encode() + b"\r\n",
        {"device_report": {"code": query, "is_error": False}},
        "MC-980MA PC-mode document, D? reply example (scales.md §A1b)",
    )
    bad = [("MO", q("SC-240")), ("Wk", "82.7")]
    add("unterminated_quote", tanita_line([("MO", '"SC-240'), ("Wk", "82.7")]), "FrameError")
    add("weight_not_a_number", tanita_line([("MO", q("SC-240")), ("Wk", "8x.7")]), "FrameError")
    add("weight_nan", tanita_line([("MO", q("SC-240")), ("Wk", "nan")]), "FrameError")
    add("weight_exponent", tanita_line([("MO", q("SC-240")), ("Wk", "8e1")]), "FrameError")
    add("no_checksum_field", b'{0,16,~0,1,MO,"SC-240",Wk,82.7\r\n', "FrameError")
    add("odd_token_count", tanita_line(bad, head="{0,16,~0,1,X,"), "FrameError")
    add("Ws_pounds_over_13", tanita_line([("MO", q("HD-351BT")), ("Ws", "12.15.0")]), "FrameError")
    add("random_text", b"hello scale\r\n", "FrameError")
    return v


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(doc, ensure_ascii=True) for doc in vectors()]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} vectors to {OUT}")


if __name__ == "__main__":
    main()
