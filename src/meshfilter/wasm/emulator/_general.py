"""Host functions: logging, status, contexts, foreign functions, stream control and local replies,
and the two emscripten runtime helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._headers import to_pairs
from meshfilter.wasm.emulator._records import LEVELS, ForeignCall, LocalResponse
from meshfilter.wasm.emulator._state import GuestMemory, HostState, decode

OK, NOT_FOUND, BAD_ARGUMENT = 0, 1, 2
_REQUEST, _RESPONSE, _DOWNSTREAM, _UPSTREAM = 0, 1, 2, 3


class General:
    def __init__(self, state: HostState, mem: GuestMemory, stream_ops: dict[str, Callable[..., None]]) -> None:
        self.state = state
        self.mem = mem
        self.stream_ops = stream_ops  # "continue", "close", "local_reply", "done"
        self.foreign: dict[str, Callable[[bytes], bytes | None]] = {"clear_route_cache": self._clear_route_cache}

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "proxy_log": self.log, "proxy_get_log_level": self.get_log_level, "proxy_get_status": self.get_status,
            "proxy_set_effective_context": self.set_effective_context, "proxy_done": self.done,
            "proxy_call_foreign_function": self.call_foreign_function,
            "proxy_continue_stream": self.continue_stream, "proxy_close_stream": self.close_stream,
            "proxy_continue_request": lambda: self.continue_stream(_REQUEST),
            "proxy_continue_response": lambda: self.continue_stream(_RESPONSE),
            "proxy_send_local_response": self.send_local_response,
            "proxy_clear_route_cache": self._clear_route_cache_call,
            "pthread_equal": lambda a, b: int(a == b),
            "emscripten_notify_memory_growth": lambda index: None,
        }

    def log(self, level: int, ptr: int, size: int) -> int:
        if level > 5:
            return BAD_ARGUMENT
        self.state.log(level, self.mem.read(ptr, size).decode("utf-8", "replace"))
        return OK

    def get_log_level(self, ret: int) -> int:
        self.mem.write_u32(ret, LEVELS.index(self.state.log_level))
        return OK

    def get_status(self, code_ptr: int, rp: int, rs: int) -> int:
        code, message = self.state.status
        self.mem.write_u32(code_ptr, code)
        return self.mem.copy_out(message, rp, rs)

    def set_effective_context(self, context_id: int) -> int:
        if context_id not in self.state.contexts:
            return BAD_ARGUMENT
        self.state.effective = context_id
        return OK

    def done(self) -> int:
        root = self.state.root
        if root is None or not root.pending_done or self.state.effective != root.context_id:
            return NOT_FOUND
        self.state.defer(self.stream_ops["done"])
        return OK

    def _clear_route_cache_call(self) -> int:
        self._clear_route_cache(b"")
        return OK

    def _clear_route_cache(self, args: bytes) -> None:
        st = self.state
        st.route_cache_clears += 1
        ctx = st.contexts.get(st.effective)
        if ctx is not None and ctx.context_id != st.root_context_id():
            ctx.route_cache_clears += 1
        return None

    def call_foreign_function(self, np: int, ns: int, ap: int, asz: int, rp: int, rs: int) -> int:
        name = self.mem.read(np, ns).decode("utf-8", "replace")
        args = self.mem.read(ap, asz)
        st = self.state
        call = ForeignCall(name, args, st.effective)
        st.foreign_calls.append(call)
        calls = getattr(st.contexts.get(st.effective), "foreign_calls", None)
        if calls is not None:
            calls.append(call)
        fn = st.foreign_functions.get(name) or self.foreign.get(name)
        if fn is None:
            return NOT_FOUND
        result = fn(args) or b""
        mem = self.mem
        ptr = 0
        if rp and result:
            ptr = mem.alloc(len(result))
            mem.write(ptr, result)
        if rp:
            mem.write_u32(rp, ptr)
        if rs:
            mem.write_u32(rs, len(result))
        return OK

    def continue_stream(self, stream: int) -> int:
        if stream > _UPSTREAM:
            return BAD_ARGUMENT
        if stream > _RESPONSE:
            return BAD_ARGUMENT  # Envoy continues HTTP streams only
        self.stream_ops["continue"](stream)
        return OK

    def close_stream(self, stream: int) -> int:
        if stream > _UPSTREAM:
            return BAD_ARGUMENT
        self.stream_ops["close"](stream)
        return OK

    def send_local_response(self, status: int, dp: int, ds: int, bp: int, bs: int, hp: int, hs: int,
                            grpc_status: int) -> int:
        details = self.mem.read(dp, ds).decode("utf-8", "replace")
        body = self.mem.read(bp, bs)
        headers = [(decode(k.lower()), decode(v)) for k, v in to_pairs(self.mem.read(hp, hs))]
        st = self.state
        resp = LocalResponse(status, details, body, headers, grpc_status, st.effective)
        self.stream_ops["local_reply"](resp)
        st.stop_iteration = True
        return OK
