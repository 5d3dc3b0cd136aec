"""Host functions: header maps and buffers (Envoy's Context::getMap/getConstMap/getBuffer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._state import Fault, GuestMemory, HostState
from meshfilter.wasm.pairs import PairsFormatError, parse_pairs, serialize_pairs

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
_REQUEST_HEADERS, _RESPONSE_HEADERS = 0, 2
_GRPC_INITIAL, _GRPC_TRAILING, _CALL_HEADERS, _CALL_TRAILERS = 4, 5, 6, 7
_BODY_REQ, _BODY_RESP, _NET_DOWN, _NET_UP, _CALL_BODY, _GRPC_BUF, _VM_CONF, _PLUGIN_CONF, _CALL_DATA = range(9)
_MAX_MAP, _MAX_BUFFER = 7, 8


def to_pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    """cpp-host's PairsUtil::toPairs: malformed input gives no pairs."""
    try:
        return parse_pairs(data)
    except PairsFormatError:
        return []


class HeadersAndBuffers:
    def __init__(self, state: HostState, mem: GuestMemory) -> None:
        self.state = state
        self.mem = mem
        self.abi01 = state.abi == "0.1.0"

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "proxy_get_header_map_value": self.get_header_map_value,
            "proxy_add_header_map_value": self.add_header_map_value,
            "proxy_replace_header_map_value": self.replace_header_map_value,
            "proxy_remove_header_map_value": self.remove_header_map_value,
            "proxy_get_header_map_pairs": self.get_header_map_pairs,
            "proxy_set_header_map_pairs": self.set_header_map_pairs,
            "proxy_get_header_map_size": self.get_header_map_size,
            "proxy_get_buffer_status": self.get_buffer_status,
            "proxy_get_buffer_bytes": self.get_buffer_bytes,
            "proxy_set_buffer_bytes": self.set_buffer_bytes,
            "proxy_get_configuration": self.get_configuration,
        }

    # -- maps ------------------------------------------------------------------------------------

    def _const_map(self, t: int) -> list[tuple[bytes, bytes]] | None:
        """The map a module may read (getConstMap); None when Envoy has none at this point."""
        if t <= 3:
            ctx = self.state.context()
            maps = getattr(ctx, "maps", None)
            if maps is None or t not in ctx.readable:
                return None
            return maps[t]
        if t in (_GRPC_INITIAL, _GRPC_TRAILING):
            return self.state.grpc_metadata
        resp = self.state.http_response
        if resp is None:
            return None
        return resp[0] if t == _CALL_HEADERS else resp[2]

    def _map(self, t: int) -> list[tuple[bytes, bytes]] | None:
        """The map a module may change (getMap): the stream's four maps while Envoy holds them."""
        ctx = self.state.context()
        maps = getattr(ctx, "maps", None)
        if maps is None or t not in ctx.writable:
            return None
        return maps[t]

    def get_header_map_value(self, t: int, kp: int, ks: int, rp: int, rs: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        key = self.mem.read(kp, ks).lower()
        m = self._const_map(t)
        if m is None:
            return BAD_ARGUMENT
        for k, v in m:
            if k == key:
                return self.mem.copy_out(v, rp, rs)
        if self.abi01:
            return self.mem.copy_out(b"", rp, rs)
        return NOT_FOUND

    def _key_value(self, t: int, kp: int, ks: int, vp: int, vs: int
                   ) -> tuple[list[tuple[bytes, bytes]] | None, bytes, bytes]:
        key, value = self.mem.read(kp, ks).lower(), self.mem.read(vp, vs)
        return self._map(t), key, value

    def add_header_map_value(self, t: int, kp: int, ks: int, vp: int, vs: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        m, key, value = self._key_value(t, kp, ks, vp, vs)
        if m is None:
            return BAD_ARGUMENT
        m.append((key, value))
        return OK

    def replace_header_map_value(self, t: int, kp: int, ks: int, vp: int, vs: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        m, key, value = self._key_value(t, kp, ks, vp, vs)
        if m is None:
            return BAD_ARGUMENT
        # as Envoy 1.40 does it (measured): every value of the name goes, one is appended
        m[:] = [p for p in m if p[0] != key]
        m.append((key, value))
        return OK

    def remove_header_map_value(self, t: int, kp: int, ks: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        key = self.mem.read(kp, ks).lower()
        m = self._map(t)
        if m is None:
            return BAD_ARGUMENT
        m[:] = [p for p in m if p[0] != key]
        return OK

    def get_header_map_pairs(self, t: int, rp: int, rs: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        m = self._const_map(t)
        return self.mem.copy_out(serialize_pairs(m) if m else b"", rp, rs)

    def set_header_map_pairs(self, t: int, ptr: int, size: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        pairs = to_pairs(self.mem.read(ptr, size))
        m = self._map(t)
        if m is None:
            return BAD_ARGUMENT
        m[:] = [(k.lower(), v) for k, v in pairs]
        return OK

    def get_header_map_size(self, t: int, ret: int) -> int:
        if t > _MAX_MAP:
            return BAD_ARGUMENT
        m = self._map(t)
        if m is None:
            return BAD_ARGUMENT
        self.mem.write_u32(ret, sum(len(k) + len(v) for k, v in m))
        return OK

    # -- buffers -----------------------------------------------------------------------------------

    def buffer(self, t: int) -> bytes | None:
        """The buffer a module reads (getBuffer); None when Envoy has none (NotFound)."""
        st = self.state
        if t == _PLUGIN_CONF:
            return st.plugin_config if getattr(st.root, "configuring", False) else None
        if t == _VM_CONF:
            return st.vm_config
        if t == _CALL_DATA:
            return st.foreign_args
        if t == _CALL_BODY:
            return st.http_response[1] if st.http_response is not None else None
        if t == _GRPC_BUF:
            return st.grpc_buffer or b""
        buffers = getattr(st.context(), "buffers", None)
        if buffers is None:
            return b""
        return buffers.get(t, b"")

    def get_buffer_status(self, t: int, len_ptr: int, flags_ptr: int) -> int:
        if t > _MAX_BUFFER:
            return BAD_ARGUMENT
        buf = self.buffer(t)
        if buf is None:
            return NOT_FOUND
        self.mem.write_u32(len_ptr, len(buf))
        self.mem.write_u32(flags_ptr, 0)
        return OK

    def get_buffer_bytes(self, t: int, start: int, length: int, rp: int, rs: int) -> int:
        if t > _MAX_BUFFER:
            return BAD_ARGUMENT
        buf = self.buffer(t)
        if buf is None:
            return NOT_FOUND
        if start + length > 0xFFFFFFFF:
            return BAD_ARGUMENT
        if start > len(buf):
            length = 0
        elif start + length > len(buf):
            length = len(buf) - start
        if length == 0:
            self.mem.write_u32(rp, 0)
            self.mem.write_u32(rs, 0)
            return OK
        return self.mem.copy_out(buf[start:start + length], rp, rs)

    def set_buffer_bytes(self, t: int, start: int, length: int, dp: int, ds: int) -> int:
        if t > _MAX_BUFFER:
            return BAD_ARGUMENT
        buf = self.buffer(t)
        if buf is None:
            return NOT_FOUND
        data = self.mem.read(dp, ds)
        buffers = getattr(self.state.context(), "buffers", None)
        if buffers is None or t not in (_BODY_REQ, _BODY_RESP, _NET_DOWN, _NET_UP):
            return BAD_ARGUMENT  # an immutable buffer
        # Envoy's Buffer::copyFrom on a body or connection buffer
        if start == 0:
            if length == 0:
                buffers[t] = data + buf
            elif length >= len(buf):
                buffers[t] = data
            else:
                return BAD_ARGUMENT
        elif start >= len(buf):
            buffers[t] = buf + data
        else:
            return BAD_ARGUMENT
        return OK

    def get_configuration(self, rp: int, rs: int) -> int:
        st = self.state
        conf = st.plugin_config if getattr(st.root, "configuring", False) else st.vm_config
        return self.mem.copy_out(conf, rp, rs)


__all__ = ["Fault", "HeadersAndBuffers", "to_pairs"]
