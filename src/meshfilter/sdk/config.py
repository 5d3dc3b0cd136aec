"""A filter's ``Config``: the JSON plugin configuration checked against the field types. Pure.

:func:`problem_texts` is the ordered table of every problem a configuration can have; the Wasm
module (``meshfilter.wasm.json_config``) returns an index into the same table and logs
``<log_name>: <text>``, and :func:`parse_config` raises :class:`ConfigProblem` with the same text,
found in the same order:

1. ``configuration is not valid JSON`` (strict RFC 8259: UTF-8, no NaN, no trailing data, no lone
   surrogate in a ``\\u`` escape, nesting at most 64 deep);
2. ``configuration is not a JSON object``;
3. for every required field, in order: ``missing key <field>``;
4. for every field, in order: its type (``<field> is not a string`` / ``an integer`` / ``a boolean``
   / ``a list of strings``);
5. for every field, in order: its content (a header name: ``is empty``, ``is not a valid HTTP header
   name``; a header value: ``contains CR, LF or NUL``; an int: ``is out of range``; a list: ``has more
   than 65536 entries``).

An empty configuration (zero bytes) is ``{}``. Unknown keys are ignored; for a key given twice the
last one wins. String values come back in wire form (:func:`meshfilter.sdk.api.to_wire`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from meshfilter.errors import ConfigError
from meshfilter.sdk.ir import CONFIG_INT_MAX, LIST_MAX, ConfigField
from meshfilter.sdk.wire import TCHARS, to_wire

MAX_DEPTH = 64
INVALID_JSON = "configuration is not valid JSON"
NOT_OBJECT = "configuration is not a JSON object"
_TYPE_TEXT = {"str": "is not a string", "header_name": "is not a string", "header_value": "is not a string",
              "int": "is not an integer", "bool": "is not a boolean", "list": "is not a list of strings"}
_CONTENT_TEXTS = {"header_name": ("is empty", "is not a valid HTTP header name"),
                  "header_value": ("contains CR, LF or NUL",), "int": ("is out of range",),
                  "list": (f"has more than {LIST_MAX} entries",), "str": (), "bool": ()}


def problem_texts(fields: tuple[ConfigField, ...]) -> list[tuple[str, str, str]]:
    """Every problem as ``(phase, field, text)``, in the order they are checked."""
    out = [("json", "", INVALID_JSON), ("json", "", NOT_OBJECT)]
    out += [("missing", f.name, f"missing key {f.name}") for f in fields if f.required]
    out += [("type", f.name, f"{f.name} {_TYPE_TEXT[f.kind]}") for f in fields]
    out += [("content", f.name, f"{f.name} {t}") for f in fields for t in _CONTENT_TEXTS[f.kind]]
    return out


class ConfigProblem(ConfigError):
    """A configuration the filter refuses; ``problem`` is the exact text the module logs."""

    def __init__(self, problem: str, *, where: str, example: str) -> None:
        self.problem = problem
        super().__init__(problem, where=where, hint=f"expected a JSON object like {example}")


class _Int(str):
    """A JSON integer, as written (checked for range later)."""


class _Float(str):
    """A JSON number with a fraction or exponent."""


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _check_tree(obj: object) -> None:
    """Nesting at most MAX_DEPTH and no lone surrogate in any string (keys and dropped duplicates too)."""
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, (list, _Object)):
            level += 1
            if level > MAX_DEPTH:
                raise ValueError("too deep")
            for sub in item:
                if isinstance(item, _Object):
                    stack.extend((part, level) for part in sub)
                else:
                    stack.append((sub, level))


class _Object(list[Any]):
    """A JSON object's members as parsed, duplicates included."""


def _loads(data: str | bytes) -> object:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    tree = json.loads(text, parse_constant=_reject_constant, parse_int=_Int, parse_float=_Float,
                      object_pairs_hook=_Object)
    _check_tree(tree)
    return tree


def parse_config(fields: tuple[ConfigField, ...], data: str | bytes | Mapping[str, Any] | None, *,
                 where: str = "config", example: str = "{}") -> dict[str, Any]:
    """The configuration's field values (defaults filled in), or :class:`ConfigProblem`."""
    if isinstance(data, Mapping):
        data = json.dumps(dict(data))
    if data is None or data in ("", b""):
        data = "{}"

    def fail(text: str) -> ConfigProblem:
        return ConfigProblem(text, where=where, example=example)

    try:
        tree = _loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError/EncodeError are ValueErrors
        raise fail(INVALID_JSON) from None
    if not isinstance(tree, _Object):
        raise fail(NOT_OBJECT)
    members: dict[str, Any] = dict(tree)  # the last duplicate wins
    for f in fields:
        if f.required and f.name not in members:
            raise fail(f"missing key {f.name}")
    for f in fields:
        if f.name in members and not _type_ok(f.kind, members[f.name]):
            raise fail(f"{f.name} {_TYPE_TEXT[f.kind]}")
    out: dict[str, Any] = {}
    for f in fields:
        if f.name not in members:
            out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
            continue
        value = members[f.name]
        texts = _CONTENT_TEXTS[f.kind]
        if f.kind == "header_name":
            raw = value.encode("utf-8")
            if not raw:
                raise fail(f"{f.name} {texts[0]}")
            if any(b not in TCHARS for b in raw):
                raise fail(f"{f.name} {texts[1]}")
            out[f.name] = value.lower()
        elif f.kind == "header_value":
            if any(b in (0, 10, 13) for b in value.encode("utf-8")):
                raise fail(f"{f.name} {texts[0]}")
            out[f.name] = to_wire(value)
        elif f.kind == "int":
            digits = value.lstrip("-")
            if len(digits) > 10 or not -CONFIG_INT_MAX - 1 <= int(value) <= CONFIG_INT_MAX:
                raise fail(f"{f.name} {texts[0]}")
            out[f.name] = int(value)
        elif f.kind == "list":
            if len(value) > LIST_MAX:
                raise fail(f"{f.name} {texts[0]}")
            out[f.name] = [to_wire(v) for v in value]
        elif f.kind == "bool":
            out[f.name] = value
        else:
            out[f.name] = to_wire(value)
    return out


def _type_ok(kind: str, value: object) -> bool:
    if kind in ("str", "header_name", "header_value"):
        return isinstance(value, str) and not isinstance(value, (_Int, _Float))
    if kind == "int":
        return isinstance(value, _Int)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list) and not isinstance(value, _Object) and all(
            isinstance(v, str) and not isinstance(v, (_Int, _Float)) for v in value)
    raise AssertionError(kind)


def example_config(fields: tuple[ConfigField, ...]) -> str:
    """A one-line JSON example for hints: every required field with a placeholder value."""
    sample = {"str": "text", "header_name": "x-my-header", "header_value": "value", "int": 1, "bool": True,
              "list": ["a", "b"]}
    return json.dumps({f.name: sample[f.kind] for f in fields if f.required})
