"""Host functions: properties (Envoy's Context::getProperty / setProperty).

Paths are Envoy's (``request.path``, ``source.address``, ``plugin_root_id``, ...), segments separated
by NUL on the wire. Values are serialized as Envoy does: strings raw, integers as 8 little-endian bytes,
booleans as one byte, maps as header pairs. What each path answers, and when, was measured on Envoy
1.40 (envoy-tests/test_wasm_properties_envoy.py): the root context sees only ``plugin_*``; a stream sees
``request.*``, ``source.*``, ``destination.*``, ``connection.*``, ``xds.*`` from its request headers;
``response.*``, ``upstream.*`` and ``request.duration`` once the response is there; whole maps such as
``request`` or ``filter_state`` answer SerializationFailure; unknown paths NotFound. Properties a test
sets (``HostEmulator(properties=...)``) win over these defaults and are seen by every context.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any

from meshfilter.wasm.emulator._state import GuestMemory, HostState, prop_key
from meshfilter.wasm.pairs import serialize_pairs

OK, NOT_FOUND, SERIALIZATION_FAILURE = 0, 1, 3
_MAPS = frozenset({"request", "response", "connection", "upstream", "source", "destination", "filter_state",
                   "xds"})


def serialize(value: Any) -> bytes:
    """A Python value as Envoy serializes a property value."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return struct.pack("<q" if value < 0 else "<Q", value)
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, Mapping):
        return serialize_pairs([(serialize(k), serialize(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return serialize_pairs([(serialize(v), b"") for v in value])
    raise TypeError(f"cannot serialize a {type(value).__name__} as a property value")


class Properties:
    def __init__(self, state: HostState, mem: GuestMemory) -> None:
        self.state = state
        self.mem = mem

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"proxy_get_property": self.get_property, "proxy_set_property": self.set_property}

    def get_property(self, pp: int, ps: int, rp: int, rs: int) -> int:
        path = prop_key(self.mem.read(pp, ps).decode("utf-8", "replace"))
        status, value = self.lookup(path)
        if status != OK:
            return status
        return self.mem.copy_out(value, rp, rs)

    def set_property(self, pp: int, ps: int, vp: int, vs: int) -> int:
        path = prop_key(self.mem.read(pp, ps).decode("utf-8", "replace"))
        value = self.mem.read(vp, vs)
        ctx = self.state.context()
        state = getattr(ctx, "filter_state", None)
        if state is None:  # no stream: Envoy has no filter state to write to
            return NOT_FOUND
        state[path] = value
        return OK

    def lookup(self, path: tuple[str, ...]) -> tuple[int, bytes]:
        st = self.state
        if path in st.properties:
            return OK, serialize(st.properties[path])
        if not path:
            return NOT_FOUND, b""
        top = path[0]
        ctx = st.context()
        view: Callable[[], dict[str, Any]] | None = getattr(ctx, "property_view", None)
        if view is None:
            return NOT_FOUND, b""
        fs = ctx.filter_state
        if len(path) == 1 and path in fs:
            return OK, fs[path]
        tree = view()
        if top not in tree:
            return NOT_FOUND, b""
        node: Any = tree[top]
        for part in path[1:]:
            if not isinstance(node, Mapping) or part not in node:
                return NOT_FOUND, b""
            node = node[part]
        if node is None:
            return NOT_FOUND, b""
        if isinstance(node, dict) and not getattr(node, "is_value", False) and (
                len(path) == 1 and top in _MAPS or top == "filter_state"):
            return SERIALIZATION_FAILURE, b""
        return OK, serialize(node)


class HeaderMapValue(dict[str, str]):
    """A property that is a header map (``request.headers``): serialized as pairs, not refused."""

    is_value = True
