"""propagate-header: what the filter does, in pure Python (the reference semantics).

The plugin configuration is a JSON object with string keys ``head_tag_name`` and ``head_tag_value``
(unknown keys are ignored; for a key given twice the last one wins, as in most JSON parsers).
On every request the filter replaces the header ``head_tag_name`` so that it holds exactly one value,
``head_tag_value``.

:func:`parse_config` is the single validation used everywhere: by ``meshfilter deploy`` to check
the plugin parameters, by tests as the oracle for the Wasm module, and its problem texts are the
very lines the module logs (``PROBLEMS``), so the Wasm module and Python agree word for word.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from meshfilter.errors import ConfigError

NAME_KEY = "head_tag_name"
VALUE_KEY = "head_tag_value"
MAX_DEPTH = 64
ROOT_ID = "propaganda_filter_root"

# problem id -> the exact text logged by the module (after the "propagate-header: " prefix)
PROBLEMS: dict[str, str] = {
    "invalid_json": "configuration is not valid JSON",
    "not_object": "configuration is not a JSON object",
    "missing_name": f"missing key {NAME_KEY}",
    "missing_value": f"missing key {VALUE_KEY}",
    "name_not_string": f"{NAME_KEY} is not a string",
    "value_not_string": f"{VALUE_KEY} is not a string",
    "empty_name": f"{NAME_KEY} is empty",
    "bad_name": f"{NAME_KEY} is not a valid HTTP header name",
    "bad_value": f"{VALUE_KEY} contains CR, LF or NUL",
}
LOG_PREFIX = "propagate-header: "

# RFC 9110 token characters: the valid characters of an HTTP header name.
TCHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class PropagateConfig:
    name: str  # lower-cased header name
    value: str

    def to_json(self) -> str:
        return json.dumps({NAME_KEY: self.name, VALUE_KEY: self.value})


class PropagateConfigError(ConfigError):
    def __init__(self, problem: str, *, where: str | None = None) -> None:
        self.problem = problem
        super().__init__(PROBLEMS[problem], where=where or "propagate-header configuration",
                         hint='expected {"head_tag_name": "route-v", "head_tag_value": "hello2v2"}')


class _Pairs(list):
    """An object's members as parsed, duplicates included (object_pairs_hook)."""


def _check_tree(obj: object) -> None:
    """Iteratively: nesting at most MAX_DEPTH containers, no lone surrogate in any string
    (keys, values, duplicates that a dict would drop)."""
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(item, list):
            level += 1
            if level > MAX_DEPTH:
                raise ValueError("too deep")
            if isinstance(item, _Pairs):
                for key, value in item:
                    stack.append((key, level))
                    stack.append((value, level))
            else:
                stack.extend((v, level) for v in item)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _any_number(text: str) -> object:
    """Numbers only need to be well-formed (int() would refuse more than 4300 digits)."""
    return 0


def parse_config(data: str | bytes, *, where: str | None = None) -> PropagateConfig:
    """Validate a propagate-header configuration; raise :class:`PropagateConfigError` naming the problem.

    Strict JSON (RFC 8259): UTF-8 input, no NaN/Infinity, no trailing data, no lone surrogate in
    any ``\\u`` escape (anywhere in the document), nesting at most ``MAX_DEPTH`` containers deep,
    numbers of any length; for a key given twice the last one wins.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        tree = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_Pairs,
                          parse_int=_any_number, parse_float=_any_number)
        _check_tree(tree)
    except (ValueError, RecursionError):  # UnicodeDecodeError/EncodeError are ValueErrors
        raise PropagateConfigError("invalid_json", where=where) from None
    obj = dict(tree) if isinstance(tree, _Pairs) else tree
    if not isinstance(obj, dict):
        raise PropagateConfigError("not_object", where=where)
    if NAME_KEY not in obj:
        raise PropagateConfigError("missing_name", where=where)
    if VALUE_KEY not in obj:
        raise PropagateConfigError("missing_value", where=where)
    name, value = obj[NAME_KEY], obj[VALUE_KEY]
    if not isinstance(name, str):
        raise PropagateConfigError("name_not_string", where=where)
    if not isinstance(value, str):
        raise PropagateConfigError("value_not_string", where=where)
    name_b, value_b = name.encode("utf-8"), value.encode("utf-8")
    if not name_b:
        raise PropagateConfigError("empty_name", where=where)
    if any(b not in TCHARS for b in name_b):
        raise PropagateConfigError("bad_name", where=where)
    if any(b in (0x0D, 0x0A, 0x00) for b in value_b):
        raise PropagateConfigError("bad_value", where=where)
    return PropagateConfig(name=name.lower(), value=value)


def apply(config: PropagateConfig, headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Reference semantics on a header list: drop every value of the header, append the one value."""
    kept = [(k, v) for k, v in headers if k.lower() != config.name]
    return [*kept, (config.name, config.value)]
