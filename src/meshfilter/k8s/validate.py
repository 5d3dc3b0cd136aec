"""Input checks for the deploy resources. Each failure is one :class:`UsageError` line naming the
flag, what is wrong and how to fix it (exit 2 in the CLI).

- patch contexts are enum values;
- label keys/values follow Kubernetes syntax, duplicate keys are refused;
- resource names are DNS-1123 subdomains, namespaces DNS-1123 labels;
- ``--parameters`` is a JSON object; for propagate-header it must pass
  :func:`meshfilter.filters.propagate.parse_config` (the one shared validation);
- sha256 digests, priorities (int32) and root ids are well-formed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from meshfilter.errors import UsageError
from meshfilter.filters import propagate

PATCH_CONTEXTS = ("SIDECAR_OUTBOUND", "SIDECAR_INBOUND", "GATEWAY", "ANY")
PROPAGATE_FILTER = "propagate-header"
FILTER_KINDS = (PROPAGATE_FILTER, "generic")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ROOT_ID = re.compile(r"^[A-Za-z0-9_.:/-]+$")


def check_patch_context(value: str, *, flag: str = "--patch-context",
                        allowed: Iterable[str] = PATCH_CONTEXTS) -> str:
    allowed = tuple(allowed)
    if value in allowed:
        return value
    hint = f"use one of {', '.join(allowed)}"
    if value.upper() in allowed:
        hint = f"enum values are upper case: {flag} {value.upper()}"
    raise UsageError(f"{value!r} is not a patch context", where=flag, hint=hint)


def check_dns1123_subdomain(value: str, *, flag: str = "--name") -> str:
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(value):
        raise UsageError(f"{value!r} is not a DNS-1123 name", where=flag,
                         hint="use at most 253 lower-case letters, digits, '-' and '.', "
                              "starting and ending with a letter or digit, e.g. hello1-propagate-header")
    return value


def check_dns1123_label(value: str, *, flag: str = "--namespace") -> str:
    if len(value) > 63 or not _DNS1123_LABEL.fullmatch(value):
        raise UsageError(f"{value!r} is not a DNS-1123 label", where=flag,
                         hint="use at most 63 lower-case letters, digits and '-', "
                              "starting and ending with a letter or digit")
    return value


def check_label_key(key: str, *, flag: str = "--label") -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        raise UsageError(f"label key {key!r} has an invalid prefix {prefix!r}", where=flag,
                         hint="the prefix must be a DNS-1123 subdomain such as example.com/")
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        raise UsageError(f"label key {key!r} is not a valid Kubernetes label name", where=flag,
                         hint="use at most 63 letters, digits, '-', '_' and '.', "
                              "starting and ending with a letter or digit")
    return key


def check_label_value(key: str, value: str, *, flag: str = "--label") -> str:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        raise UsageError(f"label value {value!r} of {key!r} is not a valid Kubernetes label value",
                         where=flag, hint="use at most 63 letters, digits, '-', '_' and '.', "
                                          "starting and ending with a letter or digit")
    return value


def check_labels(raw: Iterable[str] | None, *, flag: str = "--label",
                 required: bool = False) -> dict[str, str]:
    """Parse repeated ``k=v`` flags into labels; refuse bad syntax and duplicate keys."""
    out: dict[str, str] = {}
    for item in raw or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{item!r} is not key=value", where=flag, hint=f"write {flag} app=hello1")
        check_label_key(key, flag=flag)
        check_label_value(key, value, flag=flag)
        if key in out:
            raise UsageError(f"label key {key!r} is given twice", where=flag, hint="give each key once")
        out[key] = value
    if required and not out:
        raise UsageError("at least one label is required to select the workload", where=flag,
                         hint=f"for example {flag} app=hello1-deploy-v2 {flag} version=v2")
    return out


def is_propagate(root_id: str | None, filter_kind: str | None) -> bool:
    """propagate-header rules apply to its root id or when ``--filter propagate-header`` is given."""
    if filter_kind is not None:
        return filter_kind == PROPAGATE_FILTER
    return root_id == propagate.ROOT_ID


def check_parameters(text: str | None, *, propagate_header: bool,
                     flag: str = "--parameters") -> dict[str, Any]:
    """The parsed ``--parameters`` object. propagate-header: the module's own validation."""
    if text is None:
        if propagate_header:
            raise UsageError("propagate-header needs its parameters", where=flag,
                             hint=f"{flag} '{{\"head_tag_name\": \"route-v\", \"head_tag_value\": \"v2\"}}'")
        return {}
    if propagate_header:
        propagate.parse_config(text, where=flag)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", where=flag,
                         hint="give a JSON object in single quotes") from None
    if not isinstance(obj, dict):
        raise UsageError(f"must be a JSON object, not {type(obj).__name__}", where=flag,
                         hint="wrap the values in {...}")
    return obj


def check_sha256(value: str, *, flag: str = "--sha256") -> str:
    hexdigest = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.fullmatch(hexdigest):
        raise UsageError(f"{value!r} is not a SHA-256 hex digest", where=flag,
                         hint="give 64 hex characters, e.g. the output of sha256sum")
    return hexdigest


def check_priority(value: int | None, *, flag: str = "--priority") -> int | None:
    if value is not None and not -(2**31) <= value <= 2**31 - 1:
        raise UsageError(f"{value} is out of the int32 range", where=flag,
                         hint="use a value between -2147483648 and 2147483647")
    return value


def check_root_id(value: str, *, flag: str = "--root-id") -> str:
    if not value or len(value) > 256 or not _ROOT_ID.fullmatch(value):
        raise UsageError(f"{value!r} is not a valid root id", where=flag,
                         hint="use letters, digits and _ . : / - (at most 256), "
                              f"e.g. {propagate.ROOT_ID}")
    return value
