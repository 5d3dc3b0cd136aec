"""Domain checks of the fields of the resources meshfilter renders. Pure.

Each check takes a value and the name of the *field* it is for (``field="name"``), and raises one
:class:`~meshfilter.errors.UsageError` naming that field (``where``), what is wrong and how to fix it.
The CLI spells a field as its own flag (see :mod:`meshfilter.cli._fields`); the library never names a
flag. Parsing command-line shapes (``k=v`` lists, ``KIND/NAME``, JSON text) lives in
:mod:`meshfilter.cli.deploy_checks`.

The Kubernetes name syntax is written here once: :data:`DNS1123_LABEL` and :data:`DNS1123_SUBDOMAIN`
are used by these checks and by the strict schema of ``metadata`` (:mod:`meshfilter.k8s.schema`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from meshfilter.errors import UsageError

PATCH_CONTEXTS = ("SIDECAR_OUTBOUND", "SIDECAR_INBOUND", "GATEWAY", "ANY")

# Kubernetes' IsDNS1123Label / IsDNS1123Subdomain (k8s.io/apimachinery/pkg/util/validation)
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
ROOT_ID = re.compile(r"^[A-Za-z0-9_.:/-]+$")
# RFC 9110 token: the characters of an HTTP header name
HTTP_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
INT32 = (-(2**31), 2**31 - 1)
EXAMPLE_ROOT_ID = "propaganda_filter_root"


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= DNS1123_SUBDOMAIN_MAX and bool(DNS1123_SUBDOMAIN.fullmatch(value))


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and bool(DNS1123_LABEL.fullmatch(value))


def check_patch_context(value: str, *, field: str = "patch_context",
                        allowed: Iterable[str] = PATCH_CONTEXTS, what: str = "a patch context") -> str:
    allowed = tuple(allowed)
    if value in allowed:
        return value
    hint = f"use one of {', '.join(allowed)}"
    if value.upper() in allowed:
        hint = f"enum values are upper case: `{field}` {value.upper()}"
    raise UsageError(f"{value!r} is not {what}", where=field, hint=hint)


def check_dns1123_subdomain(value: str, *, field: str = "name",
                            example: str = "hello1-propagate-header") -> str:
    if not is_dns1123_subdomain(value):
        raise UsageError(f"{value!r} is not a DNS-1123 name", where=field,
                         hint="use at most 253 lower-case letters, digits, '-' and '.', "
                              f"starting and ending with a letter or digit, e.g. {example}")
    return value


def check_dns1123_label(value: str, *, field: str = "namespace") -> str:
    if not is_dns1123_label(value):
        raise UsageError(f"{value!r} is not a DNS-1123 label", where=field,
                         hint="use at most 63 lower-case letters, digits and '-', "
                              "starting and ending with a letter or digit")
    return value


def check_label_key(key: str, *, field: str = "labels") -> str:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or not is_dns1123_subdomain(prefix)):
        raise UsageError(f"label key {key!r} has an invalid prefix {prefix!r}", where=field,
                         hint="the prefix must be a DNS-1123 subdomain such as example.com/")
    if not name or len(name) > 63 or not LABEL_NAME.fullmatch(name):
        raise UsageError(f"label key {key!r} is not a valid Kubernetes label name", where=field,
                         hint="use at most 63 letters, digits, '-', '_' and '.', "
                              "starting and ending with a letter or digit")
    return key


def check_label_value(key: str, value: str, *, field: str = "labels") -> str:
    if value and (len(value) > 63 or not LABEL_NAME.fullmatch(value)):
        raise UsageError(f"label value {value!r} of {key!r} is not a valid Kubernetes label value",
                         where=field, hint="use at most 63 letters, digits, '-', '_' and '.', "
                                           "starting and ending with a letter or digit")
    return value


def check_sha256(value: str, *, field: str = "sha256") -> str:
    """The lower-case hex digest (a ``sha256:`` prefix is dropped)."""
    hexdigest = value.strip().lower().removeprefix("sha256:")
    if not SHA256_HEX.fullmatch(hexdigest):
        raise UsageError(f"{value!r} is not a SHA-256 hex digest", where=field,
                         hint="give 64 hex characters, e.g. the output of sha256sum")
    return hexdigest


def check_int32(value: int | None, *, field: str = "priority") -> int | None:
    if value is not None and not INT32[0] <= value <= INT32[1]:
        raise UsageError(f"{value} is out of the int32 range", where=field,
                         hint="use a value between -2147483648 and 2147483647")
    return value


def check_root_id(value: str, *, field: str = "root_id") -> str:
    if not value or len(value) > 256 or not ROOT_ID.fullmatch(value):
        raise UsageError(f"{value!r} is not a valid root id", where=field,
                         hint="use letters, digits and _ . : / - (at most 256), "
                              f"e.g. {EXAMPLE_ROOT_ID}")
    return value


def check_port(value: int, *, field: str = "port") -> int:
    if not 1 <= int(value) <= 65535:
        raise UsageError(f"port {value} is out of range", where=field, hint="give 1..65535")
    return int(value)


def check_header_name(value: str, *, field: str = "header") -> str:
    if not HTTP_TOKEN.fullmatch(value):
        raise UsageError(f"{value!r} is not a valid HTTP header name", where=field,
                         hint="use letters, digits and !#$%&'*+-.^_`|~ (no spaces), e.g. x-user")
    return value
