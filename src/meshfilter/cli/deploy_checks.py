"""Command-line shapes of ``meshfilter deploy`` (and ``lua tag``, ``transcoder``), parsed once at the edge.

Each function turns what a user typed (repeated ``k=v``, ``KIND/NAME``, ``NAME=VALUE``, JSON text)
into a typed value, or raises one :class:`~meshfilter.errors.UsageError` line (exit 2). Errors name the
argument's field (its argparse ``dest``, e.g. ``label``); the CLI spells it as the flag of the command
that ran (:mod:`meshfilter.cli._fields`). The field checks themselves (DNS-1123 names, label syntax,
patch contexts, sha256, int32, root ids) are the library's, :mod:`meshfilter.k8s.checks`.

``--parameters`` is parsed here once into :class:`FilterParameters`: for propagate-header a
:class:`~meshfilter.filters.propagate.PropagateConfig` (the module's own validation), otherwise the
JSON object; the renderers get the forms they write from that one parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshfilter.errors import UsageError
from meshfilter.filters import propagate
from meshfilter.k8s.checks import (
    PATCH_CONTEXTS,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_int32,
    check_label_key,
    check_label_value,
    check_patch_context,
    check_root_id,
    check_sha256,
)

__all__ = [
    "FILTER_KINDS", "PATCH_CONTEXTS", "PROPAGATE_FILTER", "FilterParameters", "check_dns1123_label",
    "check_dns1123_subdomain", "check_int32", "check_label_key", "check_label_value", "check_labels",
    "check_parameters", "check_patch_context", "check_root_id", "check_sha256", "is_propagate", "parse_env",
    "parse_parameters", "parse_target_refs",
]

PROPAGATE_FILTER = "propagate-header"
FILTER_KINDS = (PROPAGATE_FILTER, "generic")


def check_labels(raw: Iterable[str] | None, *, field: str = "label", required: bool = False) -> dict[str, str]:
    """Parse repeated ``k=v`` arguments into labels; refuse bad syntax and duplicate keys."""
    out: dict[str, str] = {}
    for item in raw or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} is not key=value", where=field, hint=f"write `{field}` app=hello1")
        check_label_key(key, field=field)
        check_label_value(key, value, field=field)
        if key in out:
            raise UsageError(f"label key {key!r} is given twice", where=field, hint="give each key once")
        out[key] = value
    if required and not out:
        raise UsageError("at least one label is required to select the workload", where=field,
                         hint=f"for example `{field}` app=hello1-deploy-v2 `{field}` version=v2")
    return out


def is_propagate(root_id: str | None, filter_kind: str | None) -> bool:
    """propagate-header rules apply to its root id or when ``filter_kind`` says propagate-header."""
    if filter_kind is not None:
        return filter_kind == PROPAGATE_FILTER
    return root_id == propagate.ROOT_ID


@dataclass(frozen=True)
class FilterParameters:
    """The plugin configuration, parsed once: a propagate-header config, a JSON object, or nothing."""

    value: propagate.PropagateConfig | dict[str, Any] | None

    @property
    def obj(self) -> dict[str, Any]:
        """As a JSON object (WasmPlugin ``pluginConfig``, EnvoyExtensionPolicy ``config``)."""
        if isinstance(self.value, propagate.PropagateConfig):
            return {propagate.NAME_KEY: self.value.name, propagate.VALUE_KEY: self.value.value}
        return dict(self.value or {})

    @property
    def text(self) -> str | None:
        """As JSON text (ASM ``parameters``, the EnvoyFilter's StringValue); None when not given."""
        if self.value is None:
            return None
        if isinstance(self.value, propagate.PropagateConfig):
            return self.value.to_json()
        return json.dumps(self.value, ensure_ascii=False)


def parse_parameters(text: str | None, *, propagate_header: bool, field: str = "parameters") -> FilterParameters:
    """``--parameters`` text -> :class:`FilterParameters`. propagate-header: the module's own validation."""
    if text is None:
        if propagate_header:
            raise UsageError("propagate-header needs its parameters", where=field,
                             hint=f"`{field}` '{{\"head_tag_name\": \"route-v\", \"head_tag_value\": \"v2\"}}'")
        return FilterParameters(None)
    if propagate_header:
        return FilterParameters(propagate.parse_config(text, where=field))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", where=field,
                         hint="give a JSON object in single quotes") from None
    if not isinstance(obj, dict):
        raise UsageError(f"must be a JSON object, not {type(obj).__name__}", where=field,
                         hint="wrap the values in {...}")
    return FilterParameters(obj)


def check_parameters(text: str | None, *, propagate_header: bool, field: str = "parameters") -> dict[str, Any]:
    """The parsed ``--parameters`` object (see :func:`parse_parameters`)."""
    return parse_parameters(text, propagate_header=propagate_header, field=field).obj


def parse_target_refs(raw: Iterable[str] | None, kinds: Mapping[str, str], *,
                      field: str = "target_ref") -> list[tuple[str, str, str]]:
    """Repeated ``KIND/NAME`` -> ``(group, kind, name)``; ``kinds`` maps each allowed kind to its API group."""
    out: list[tuple[str, str, str]] = []
    allowed = ", ".join(kinds)
    for item in raw or ():
        kind, sep, name = item.partition("/")
        if not sep or not kind or not name:
            raise UsageError(f"{item!r} is not KIND/NAME", where=field,
                             hint=f"write `{field}` Gateway/my-gateway (KIND one of {allowed})")
        if kind not in kinds:
            match = next((k for k in kinds if k.lower() == kind.lower()), None)
            hint = f"kinds are spelled {match}" if match else f"use one of {allowed}"
            raise UsageError(f"{kind!r} is not a kind this resource can target", where=field, hint=hint)
        check_dns1123_subdomain(name, field=field, example="my-gateway")
        ref = (kinds[kind], kind, name)
        if ref in out:
            raise UsageError(f"{item!r} is given twice", where=field, hint="give each target once")
        out.append(ref)
    return out


def parse_env(raw: Iterable[str] | None, *, field: str = "env") -> list[tuple[str, str]]:
    """Repeated ``NAME=VALUE`` -> ``(name, value)`` pairs, in order (names unique)."""
    out: list[tuple[str, str]] = []
    for item in raw or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{item!r} is not NAME=VALUE", where=field, hint=f"write `{field}` LOG_FORMAT=json")
        out.append((name, value))
    return out
