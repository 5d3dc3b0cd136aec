"""Text as a filter sees it (*wire form*), and the names the SDK derives. Pure.

A filter's strings are the request's bytes, one character per byte, bytes 0x80-0xFF as the lone
surrogates U+DC80-U+DCFF: then Python's own ``str`` methods agree with the byte-level backends
(``lower``/``upper`` change ASCII letters only, ``len`` counts bytes, ``in`` is a byte substring test).
"""

from __future__ import annotations

import re

from meshfilter.filters.propagate import TCHARS  # RFC 9110 token characters (one copy)

__all__ = ["TCHARS", "from_wire", "kebab_case", "snake_case", "to_wire", "wire_bytes"]


def to_wire(text: str | bytes) -> str:
    """Text (or bytes) in wire form: its UTF-8 bytes, one character per byte. Lone surrogates
    U+DC80-U+DCFF already in ``text`` stand for those bytes; another lone surrogate raises ValueError."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    return raw.decode("ascii", "surrogateescape")


def from_wire(text: str) -> str:
    """The inverse of :func:`to_wire`: UTF-8 decoded, undecodable bytes kept as surrogate escapes."""
    return text.encode("ascii", "surrogateescape").decode("utf-8", "surrogateescape")


def wire_bytes(text: str) -> bytes:
    return text.encode("ascii", "surrogateescape")


def snake_case(name: str) -> str:
    """``GatewayTag`` -> ``gateway_tag`` (a filter's default root id)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def kebab_case(name: str) -> str:
    """``GatewayTag`` -> ``gateway-tag`` (the prefix of a filter's configuration problem lines)."""
    return snake_case(name).replace("_", "-")
