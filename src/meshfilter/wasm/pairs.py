"""proxy-wasm serialization of header maps (key/value pairs), as in the ABI spec.

A non-empty map is: u32 count; count pairs of (u32 key length, u32 value length); then each key and
value followed by a NUL byte. Integers are little-endian. An empty map is zero bytes (or one 0x00
byte: both are accepted when parsing).
"""

from __future__ import annotations

import struct

Pairs = list[tuple[bytes, bytes]]


class PairsFormatError(ValueError):
    pass


def serialize_pairs(pairs: Pairs) -> bytes:
    if not pairs:
        return b""
    head = [struct.pack("<I", len(pairs))]
    body = []
    for k, v in pairs:
        head.append(struct.pack("<II", len(k), len(v)))
        body.append(k + b"\0" + v + b"\0")
    return b"".join(head) + b"".join(body)


def parse_pairs(data: bytes) -> Pairs:
    """Parse a serialized map; raise :class:`PairsFormatError` on malformed input."""
    if len(data) <= 1:
        if data in (b"", b"\0"):
            return []
        raise PairsFormatError("a serialized map of 1 byte must be 0x00")
    if len(data) < 4:
        raise PairsFormatError("serialized map shorter than its 4-byte count")
    (count,) = struct.unpack_from("<I", data, 0)
    if 4 + 8 * count > len(data):
        raise PairsFormatError(f"serialized map announces {count} pairs but holds only {len(data)} bytes")
    sizes = struct.unpack_from(f"<{2 * count}I", data, 4)
    pos = 4 + 8 * count
    out: Pairs = []
    for i in range(count):
        klen, vlen = sizes[2 * i], sizes[2 * i + 1]
        end = pos + klen + 1 + vlen + 1
        if end > len(data):
            raise PairsFormatError("serialized map is truncated")
        if data[pos + klen] != 0 or data[end - 1] != 0:
            raise PairsFormatError("serialized map misses a NUL separator")
        out.append((data[pos:pos + klen], data[pos + klen + 1:end - 1]))
        pos = end
    return out
