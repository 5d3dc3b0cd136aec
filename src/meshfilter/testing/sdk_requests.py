"""A hypothesis generator of requests for the differential tests of filters written in Python.

Header lines with repeated names, empty values, names in mixed case and values with non-ASCII bytes
(raw bytes 0x80-0xFF, not always UTF-8), drawn so that Envoy's HTTP/1 codec passes them to the
filters unchanged: names are RFC 9110 tokens; values hold no control bytes and no leading or trailing
whitespace (the codec would strip it); ``user-agent``, a header Envoy folds into one line, appears at
most once; no HEAD requests (their answers carry no body, so the upstream's report would be lost).
Needs ``hypothesis`` (a test dependency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# names the examples and tests/data/sdk/kitchen_sink.py read or write, and some others
NAMES = ("x-api-key", "x-old-id", "x-id", "x-asm-prefer-tag", "route-v", "x-custom", "x-b", "x-ks-out",
         "x-ks-count", "x-upstream-error", "x-canary-tag", "x-other")
VALUES = ("k-123", "k-456", "iPhone13", "Mozilla/5.0 (iPhone13,2)", "mozilla bot", "abc", "a,b", "version-gray",
          "alpha beta", "caf\u00e9", "")
PATHS = ("/", "/old/", "/old/x?y=1", "/deny", "/deny/me", "/new/a", "/a/b/c")
# fixed requests every differential test sends first: (header lines, path, upstream status)
FIXED: list[tuple[list[tuple[str, Any]], str, int]] = [
    ([("user-agent", "Mozilla/5.0 (iPhone13,2)"), ("x-api-key", "k-123"), ("x-old-id", "7"), ("X-Old-Id", "8")],
     "/old/x?y=1", 200),
    ([("x-api-key", "nope"), ("x-custom", "alpha abc"), ("x-b", b"caf\xc3\xa9 \xff")], "/deny/me", 503),
    ([("x-old-id", ""), ("x-b", ""), ("user-agent", "")], "/", 500),
    ([("x-custom", "beta,alpha"), ("x-custom", "c"), ("user-agent", "GoogleBOT")], "/new/a", 404),
    ([], "/", 200),
]
_MIDDLE = b"".join(bytes([b]) for b in range(0x20, 0x7F)) + b"\t" + bytes(range(0x80, 0x100))
_EDGE = bytes(b for b in _MIDDLE if b not in b" \t")


@st.composite
def mixed_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))


@st.composite
def header_value(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(VALUES)).encode("utf-8")
    middle = draw(st.binary(max_size=12).map(lambda b: bytes(_MIDDLE[x % len(_MIDDLE)] for x in b)))
    if not middle:
        return b""
    first = _EDGE[draw(st.integers(0, len(_EDGE) - 1))]
    last = _EDGE[draw(st.integers(0, len(_EDGE) - 1))]
    return bytes([first]) + middle + bytes([last])


@dataclass(frozen=True)
class GeneratedRequest:
    headers: list[tuple[str, bytes]]
    method: str
    path: str
    status: int


@st.composite
def requests(draw: st.DrawFn) -> GeneratedRequest:
    lines: list[tuple[str, bytes]] = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(NAMES))
        lines.append((draw(mixed_case(name)), draw(header_value())))
    if draw(st.booleans()):  # user-agent once at most (Envoy folds repeated lines of it)
        lines.insert(draw(st.integers(0, len(lines))), (draw(mixed_case("user-agent")), draw(header_value())))
    repeat: bool = draw(st.booleans())
    if lines and repeat:  # a repeated name, on purpose
        lines.append((lines[0][0].swapcase() if lines[0][0].lower() != "user-agent" else "x-other",
                      draw(header_value())))
    return GeneratedRequest(headers=lines, method=draw(st.sampled_from(("GET", "POST", "PUT", "DELETE"))),
                            path=draw(st.sampled_from(PATHS)), status=draw(st.sampled_from((200, 404, 500, 503))))
