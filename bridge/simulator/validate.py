"""Request validation against the OpenAPI description, compiled once (the simulator's hot path).

What openapi-core checked per request, done here with schemas compiled by jsonschema-rs (JSON Schema
2020-12, the dialect of OpenAPI 3.1) and a few lines for the parts that are OpenAPI, not JSON Schema:

- the operation: path template and method (a path or method the description does not have is an error);
- parameters (path, query, header; style ``form``/``simple``, ``explode`` true, the defaults): a
  required one must be there; each value is read as the type its schema says (``integer``, ``number``,
  ``boolean``, ``string``, ``array`` of those: a query array repeats its name) and then validated with
  the schema, formats included (``date``, ``date-time``, ``uuid``; ``int32``/``int64`` as ranges, the
  way openapi-schema-validator checks them);
- the body: present when ``required``, a media type the operation lists, JSON that parses, and the
  media type's schema (with every ``$ref`` into ``components``).

Pure: ``validate_request`` takes the parts of a request and returns the problems (empty: valid).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

_INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


class SchemaCompileError(ValueError):
    """The description uses something this validator does not implement (refused at load, not per request)."""


def _with_int_ranges(node: Any) -> Any:
    """openapi-schema-validator's int32/int64 format checks, as minimum/maximum (which compile)."""
    if isinstance(node, dict):
        out = {k: _with_int_ranges(v) for k, v in node.items()}
        fmt = out.get("format")
        if fmt in _INT_RANGES:
            lo, hi = _INT_RANGES[fmt]
            out.setdefault("minimum", lo)
            out.setdefault("maximum", hi)
        return out
    if isinstance(node, list):
        return [_with_int_ranges(v) for v in node]
    return node


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    location: str  # path | query | header
    required: bool
    kind: str  # the schema's type after $ref: string | integer | number | boolean | array
    item_kind: str  # for arrays
    validator: Any


@dataclass(frozen=True, slots=True)
class _Operation:
    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    params: tuple[_Param, ...]
    body_required: bool
    body_media: Mapping[str, Any]  # media type -> validator (None: no schema)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    rx = "".join(f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{rx}$")


def _kind(schema: Mapping[str, Any], components: Mapping[str, Any]) -> str:
    seen = 0
    while "$ref" in schema and seen < 16:
        ref = schema["$ref"]
        if not ref.startswith("#/components/schemas/"):
            raise SchemaCompileError(f"unsupported $ref {ref!r}")
        schema = components["schemas"][ref.rsplit("/", 1)[1]]
        seen += 1
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return str(t)


def _coerce(raw: str, kind: str) -> tuple[bool, Any]:
    if kind == "integer":
        try:
            return True, int(raw, 10)
        except ValueError:
            return False, f"{raw!r} is not an integer"
    if kind == "number":
        try:
            return True, float(raw)
        except ValueError:
            return False, f"{raw!r} is not a number"
    if kind == "boolean":
        if raw in ("true", "false"):
            return True, raw == "true"
        return False, f"{raw!r} is not a boolean"
    return True, raw


class RequestValidator:
    """Compiled from an OpenAPI 3.1 description (a dict); ``validate_request`` is cheap."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        spec = _with_int_ranges(copy.deepcopy(dict(spec)))
        self._components = spec.get("components", {})
        ops: list[_Operation] = []
        for template, item in spec.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in _METHODS:
                op = item.get(method)
                if op is None:
                    continue
                ops.append(self._compile(template, method, op, shared))
        self.operations = tuple(ops)

    def _schema_validator(self, schema: Mapping[str, Any]) -> Any:
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "components": self._components}
        return jsonschema_rs.validator_for(doc, validate_formats=True)

    def _compile(self, template: str, method: str, op: Mapping[str, Any], shared: Iterable[Any]) -> _Operation:
        params: dict[tuple[str, str], _Param] = {}
        for p in [*shared, *op.get("parameters", [])]:
            if "$ref" in p:
                raise SchemaCompileError(f"{template}: parameter $ref is not supported")
            loc = p["in"]
            if loc not in ("path", "query", "header"):
                raise SchemaCompileError(f"{template}: parameters in {loc} are not supported")
            style = p.get("style", "form" if loc == "query" else "simple")
            if (loc == "query" and style != "form") or (loc != "query" and style != "simple"):
                raise SchemaCompileError(f"{template}: parameter style {style!r} is not supported")
            if p.get("explode", loc == "query") is not (loc == "query"):
                raise SchemaCompileError(f"{template}: explode={p.get('explode')} is not supported")
            schema = p.get("schema", {})
            kind = _kind(schema, self._components)
            item_kind = _kind(schema.get("items", {}), self._components) if kind == "array" else ""
            name = p["name"].lower() if loc == "header" else p["name"]
            params[(loc, name)] = _Param(
                name=name,
                location=loc,
                required=bool(p.get("required", loc == "path")),
                kind=kind,
                item_kind=item_kind,
                validator=self._schema_validator(schema),
            )
        body = op.get("requestBody", {})
        if "$ref" in body:
            raise SchemaCompileError(f"{template}: requestBody $ref is not supported")
        media = {
            mt.lower(): (self._schema_validator(doc["schema"]) if "schema" in doc else None)
            for mt, doc in body.get("content", {}).items()
        }
        return _Operation(
            operation_id=op.get("operationId", f"{method} {template}"),
            method=method,
            template=template,
            pattern=_template_regex(template),
            params=tuple(params.values()),
            body_required=bool(body.get("required", False)),
            body_media=media,
        )

    def find(self, method: str, path: str) -> tuple[_Operation, dict[str, str]] | None:
        m = method.lower()
        for op in self.operations:
            if op.method != m:
                continue
            hit = op.pattern.match(path)
            if hit is not None:
                return op, hit.groupdict()
        return None

    def validate_request(
        self,
        method: str,
        path: str,
        *,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        content_type: str | None,
        body: bytes,
    ) -> list[str]:
        """The problems of one request (empty: it conforms). ``headers`` keys are lower-case."""
        found = self.find(method, path)
        if found is None:
            return [f"no operation for {method.upper()} {path}"]
        op, path_values = found
        problems: list[str] = []
        query_values: dict[str, list[str]] = {}
        for k, v in query:
            query_values.setdefault(k, []).append(v)
        for p in op.params:
            raws = _raw_values(p, path_values, query_values, headers)
            if not raws:
                if p.required:
                    problems.append(f"missing required {p.location} parameter {p.name!r}")
                continue
            problems += self._param(p, raws)
        problems += self._body(op, content_type, body)
        return problems

    def _param(self, p: _Param, raws: list[str]) -> list[str]:
        """The problems of one parameter given (``raws``: its values as sent, at least one)."""
        where = f"{p.location} parameter {p.name!r}"
        if p.kind == "array":
            values: list[Any] = []
            for raw in raws:
                ok, value = _coerce(raw, p.item_kind)
                if not ok:
                    return [f"{where}: {value}"]
                values.append(value)
            return self._errors(p.validator, values, where)
        if len(raws) > 1:
            return [f"{where} given {len(raws)} times"]
        ok, value = _coerce(raws[0], p.kind)
        if not ok:
            return [f"{where}: {value}"]
        return self._errors(p.validator, value, where)

    @staticmethod
    def _errors(validator: Any, value: Any, where: str) -> list[str]:
        if validator.is_valid(value):
            return []
        return [f"{where}: {e.message}" for e in validator.iter_errors(value)][:5]

    def _body(self, op: _Operation, content_type: str | None, body: bytes) -> list[str]:
        if not body:
            return ["missing required request body"] if op.body_required else []
        if not op.body_media:
            return []  # the description says nothing about a body here; openapi-core ignores it too
        mt = (content_type or "").split(";", 1)[0].strip().lower()
        if mt not in op.body_media:
            return [f"media type {mt or '(none)'!r} not allowed (expected {', '.join(op.body_media)})"]
        validator = op.body_media[mt]
        if mt != "application/json" and not mt.endswith("+json"):
            return []
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return [f"request body is not JSON: {exc}"]
        if validator is None:
            return []
        return self._errors(validator, doc, "request body")


def _raw_values(
    p: _Param, path_values: Mapping[str, str], query_values: Mapping[str, list[str]], headers: Mapping[str, str]
) -> list[str]:
    """The values sent for ``p``, as text (empty: not given)."""
    if p.location == "path":
        return [path_values[p.name]] if p.name in path_values else []
    if p.location == "query":
        return query_values.get(p.name, [])
    return [headers[p.name]] if p.name in headers else []
