"""Decoding a TOML document section by section into a ``Config``, one problem per bad key."""

from __future__ import annotations

import difflib
import math
from enum import Enum
from typing import Any, get_args

import msgspec

from drivers.registry import registry

from ..errors import ConfigProblem
from .schema import _REQUIRED_SECTIONS, SECTIONS, Config, LogConfig, ScaleConfig


def _enum_of(tp: Any) -> type[Enum] | None:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    for arg in get_args(tp):
        if isinstance(arg, type) and issubclass(arg, Enum):
            return arg
    return None


def allowed_values(tp: Any) -> list[str] | None:
    """The allowed values of an enum-typed field (``None`` for other types)."""
    enum = _enum_of(tp)
    return None if enum is None else [str(m.value) for m in enum]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _elsewhere(name: str, here: str) -> str:
    """' (it belongs in [pairing])' when ``name`` is a key of another section."""
    homes = [s for s, tp in SECTIONS.items() if s != here and name in {f.name for f in msgspec.structs.fields(tp)}]
    return f" (it belongs in [{homes[0]}])" if len(homes) == 1 else ""


def _type_problem(key: str, tp: Any, raw: Any, exc: msgspec.ValidationError) -> ConfigProblem:
    allowed = allowed_values(tp)
    if allowed is not None:
        got = repr(raw) if isinstance(raw, str) else f"a {type(raw).__name__}"
        return ConfigProblem(key, f"must be one of {', '.join(allowed)} (got {got})")
    msg = str(exc).split(" - at `", 1)[0].replace("Expected", "expected").replace("`", "")
    return ConfigProblem(key, msg)


def _decode_section(
    name: str, tp: type[msgspec.Struct], table: dict[str, Any], problems: list[ConfigProblem], bad: set[str]
) -> msgspec.Struct:
    fields = {f.encode_name: f for f in msgspec.structs.fields(tp)}
    good: dict[str, Any] = {}
    for key, raw in table.items():
        path = f"{name}.{key}"
        f = fields.get(key)
        if f is None:
            hint = _elsewhere(key, name) or _suggest(key, list(fields))
            problems.append(ConfigProblem(path, f"unknown key{hint}"))
            bad.add(path)
            continue
        given = raw.lower() if tp is LogConfig and key == "level" and isinstance(raw, str) else raw  # "INFO" is fine
        try:
            value = msgspec.convert(given, f.type, strict=True)
        except msgspec.ValidationError as exc:
            problems.append(_type_problem(path, f.type, raw, exc))
            bad.add(path)
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(ConfigProblem(path, "must be a finite number (not nan or inf)"))
            bad.add(path)
            continue
        good[f.name] = value
    for f in fields.values():
        if f.required and f.name not in good:
            path = f"{name}.{f.encode_name}"
            if f.encode_name not in table:
                problems.append(ConfigProblem(path, "required key is missing"))
                bad.add(path)
            good[f.name] = ""  # a placeholder: its problems are already reported
    return tp(**good)


def _decode(doc: dict[str, Any]) -> tuple[Config, list[ConfigProblem], set[str]]:
    problems: list[ConfigProblem] = []
    bad: set[str] = set()
    sections: dict[str, Any] = {}
    for name, table in doc.items():
        tp = SECTIONS.get(name)
        if tp is None:
            problems.append(ConfigProblem(name, f"unknown section{_suggest(name, list(SECTIONS))}"))
            bad.add(name)
            continue
        if not isinstance(table, dict):
            problems.append(ConfigProblem(name, f"must be a table ([{name}]), got a {type(table).__name__}"))
            bad.add(name)
        sections[name] = _decode_section(name, tp, table if isinstance(table, dict) else {}, problems, bad)
    for name in _REQUIRED_SECTIONS:
        if name not in sections:
            if name not in bad:
                problems.append(ConfigProblem(name, f"required section [{name}] is missing"))
                bad.add(name)
            sections[name] = _decode_section(name, SECTIONS[name], {}, [], set())
    return Config(**sections), problems, bad


def _driver_settings(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[ConfigProblem]]:
    """Move the ``[scale]`` keys that drivers list in ``DriverSpec.settings`` into ``scale.settings``
    (as text). Returns the document without them, the settings and one problem per bad value."""
    scale = doc.get("scale")
    if not isinstance(scale, dict):
        return doc, {}, []
    own = {f.encode_name for f in msgspec.structs.fields(ScaleConfig)} - {"settings"}
    listed = {key for spec in registry().values() for key in spec.settings} - own
    settings: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    rest: dict[str, Any] = {}
    items = list(scale.items())
    if isinstance(scale.get("settings"), dict):  # a loaded config turned back into a dict (replay)
        items = [(k, v) for k, v in items if k != "settings"] + list(scale["settings"].items())
    for key, value in items:
        if key == "settings":
            problems.append(ConfigProblem("scale.settings", "unknown key (driver settings are plain [scale] keys)"))
        elif key not in listed:
            rest[key] = value
        elif isinstance(value, bool) or not isinstance(value, int | str):
            problems.append(ConfigProblem(f"scale.{key}", "must be a whole number or text"))
        else:
            settings[key] = str(value)
    return {**doc, "scale": rest}, settings, problems
