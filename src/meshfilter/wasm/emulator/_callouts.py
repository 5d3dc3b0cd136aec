"""Host functions: HTTP and gRPC callouts (Envoy's Context::httpCall, grpcCall, grpcStream, ...).

A call is checked as Envoy checks it (a declared cluster, the ``:method``, ``:path`` and ``:authority``
headers of an HTTP call, a parsable GrpcService of a gRPC call), recorded as an
:class:`~meshfilter.wasm.emulator.HttpCall` / :class:`~meshfilter.wasm.emulator.GrpcCall`, and answered
by the test through that handle: the answer runs the module's ``proxy_on_http_call_response`` or
``proxy_on_grpc_*`` callbacks on the root context that made the call, as Envoy does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshfilter.errors import WasmError
from meshfilter.wasm.emulator._headers import to_pairs
from meshfilter.wasm.emulator._module import read_leb128
from meshfilter.wasm.emulator._records import GrpcCall, HeadersIn, HttpCall
from meshfilter.wasm.emulator._state import GuestMemory, HostState, decode, encode, normalize

OK, NOT_FOUND, BAD_ARGUMENT, PARSE_FAILURE, BROKEN_CONNECTION = 0, 1, 2, 4, 11
Invoke = Callable[..., Any]


def _fields(data: bytes) -> dict[int, bytes]:
    """Length-delimited fields of a protobuf message (others skipped); ValueError when malformed."""
    out: dict[int, bytes] = {}
    pos = 0
    try:
        while pos < len(data):
            key, pos = read_leb128(data, pos)
            num, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = read_leb128(data, pos)
            elif wire == 2:
                n, pos = read_leb128(data, pos)
                if pos + n > len(data):
                    raise ValueError("truncated")
                out[num] = data[pos:pos + n]
                pos += n
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            else:
                raise ValueError("bad wire type")
    except IndexError:
        raise ValueError("truncated") from None
    if pos != len(data):
        raise ValueError("truncated")
    return out


def grpc_service_cluster(service: bytes) -> str:
    """The cluster of a serialized envoy.config.core.v3.GrpcService (envoy_grpc.cluster_name, or
    google_grpc.target_uri); ValueError when it does not parse."""
    fields = _fields(service)
    if 1 in fields:
        return _fields(fields[1]).get(1, b"").decode("utf-8", "replace")
    if 2 in fields:
        return _fields(fields[2]).get(1, b"").decode("utf-8", "replace")
    return ""


def grpc_service(cluster: str) -> bytes:
    """A serialized GrpcService naming ``cluster`` (envoy_grpc), for tests and tools."""
    name = cluster.encode()
    inner = b"\x0a" + bytes([len(name)]) + name
    return b"\x0a" + bytes([len(inner)]) + inner


class Callouts:
    def __init__(self, state: HostState, mem: GuestMemory, invoke: Invoke) -> None:
        self.state = state
        self.mem = mem
        self.invoke = invoke  # (callback name, context id, *args) -> result
        # cpp-host's callout ids: the type in the low 2 bits (HTTP 0, gRPC call 1, gRPC stream 2), +4 each
        self.next_http_token = 0
        self.next_grpc_call = 1
        self.next_grpc_stream = 2
        self.grpc_ops: dict[str, Callable[..., None]] = {
            "initial_metadata": self._grpc_initial, "message": self._grpc_message,
                         "trailing_metadata": self._grpc_trailing, "close": self._grpc_close}

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {"proxy_http_call": self.http_call, "proxy_grpc_call": self.grpc_call,
                "proxy_grpc_stream": self.grpc_stream, "proxy_grpc_send": self.grpc_send,
                "proxy_grpc_cancel": self.grpc_cancel, "proxy_grpc_close": self.grpc_close}

    def _record(self, call: HttpCall | GrpcCall) -> None:
        ctx = self.state.context()
        calls = getattr(ctx, "http_calls" if isinstance(call, HttpCall) else "grpc_calls", None)
        if calls is not None:
            calls.append(call)

    # -- HTTP ------------------------------------------------------------------------------------

    def http_call(self, up: int, us: int, hp: int, hs: int, bp: int, bs: int, tp: int, ts: int,
                  timeout: int, ret: int) -> int:
        cluster = self.mem.read(up, us).decode("utf-8", "replace")
        body = self.mem.read(bp, bs)
        headers = to_pairs(self.mem.read(hp, hs))
        trailers = to_pairs(self.mem.read(tp, ts))
        self.mem.write_u32(ret, 0)
        if timeout >= 0x80000000 or cluster not in self.state.clusters:
            return BAD_ARGUMENT
        names = {k.lower() for k, _ in headers}
        if not {b":path", b":method", b":authority"} <= names:
            return BAD_ARGUMENT
        self.next_http_token += 4
        token = self.next_http_token
        call = HttpCall(token, cluster, [(decode(k), decode(v)) for k, v in headers], body,
                        [(decode(k), decode(v)) for k, v in trailers], timeout, self.state.effective,
                        self._deliver_http)
        self.state.http_calls.append(call)
        self._record(call)
        self.mem.write_u32(ret, token)
        return OK

    def _deliver_http(self, call: HttpCall, headers: HeadersIn, body: bytes | str, trailers: HeadersIn,
                      failure: str | None) -> None:
        if call.answered:
            raise WasmError(f"HTTP call {call.token} to {call.upstream!r} was answered already",
                            where="http_calls", hint="answer each call once")
        call.answered = True
        st = self.state
        hs, ts, raw = normalize(headers), normalize(trailers), encode(body)
        st.http_response = (hs, raw, ts)
        if failure is not None:
            st.status = (BROKEN_CONNECTION, failure.encode())
        try:
            self.invoke("proxy_on_http_call_response", st.root_context_id(), call.token, len(hs), len(raw),
                        len(ts))
        finally:
            st.http_response = None
            st.status = (0, b"")

    # -- gRPC ------------------------------------------------------------------------------------

    def _grpc_token(self, stream: bool) -> int:
        if stream:
            self.next_grpc_stream += 4
            return self.next_grpc_stream
        self.next_grpc_call += 4
        return self.next_grpc_call

    def _grpc_start(self, sp: int, ss: int, np: int, ns: int, mp: int, ms: int, ip: int, isz: int,
                    message: bytes, timeout: int, ret: int, stream: bool) -> int:
        service = self.mem.read(sp, ss)
        name = self.mem.read(np, ns).decode("utf-8", "replace")
        method = self.mem.read(mp, ms).decode("utf-8", "replace")
        metadata = to_pairs(self.mem.read(ip, isz))
        try:
            cluster = grpc_service_cluster(service)
        except ValueError:
            return PARSE_FAILURE
        if cluster not in self.state.clusters:
            return BAD_ARGUMENT
        token = self._grpc_token(stream)
        call = GrpcCall(token, cluster, name, method, [(decode(k), decode(v)) for k, v in metadata], message,
                        timeout, self.state.effective, stream, self.grpc_ops)
        self.state.grpc_calls.append(call)
        self._record(call)
        self.mem.write_u32(ret, token)
        return OK

    def grpc_call(self, sp: int, ss: int, np: int, ns: int, mp: int, ms: int, ip: int, isz: int, rp: int,
                  rsz: int, timeout: int, ret: int) -> int:
        message = self.mem.read(rp, rsz)
        return self._grpc_start(sp, ss, np, ns, mp, ms, ip, isz, message, timeout, ret, stream=False)

    def grpc_stream(self, sp: int, ss: int, np: int, ns: int, mp: int, ms: int, ip: int, isz: int,
                    ret: int) -> int:
        return self._grpc_start(sp, ss, np, ns, mp, ms, ip, isz, b"", 0, ret, stream=True)

    def _open(self, token: int) -> GrpcCall | None:
        return next((c for c in self.state.grpc_calls if c.token == token and not c.closed
                     and not c.cancelled and not (c.closed_by_module and not c.stream)), None)

    def grpc_send(self, token: int, mp: int, ms: int, eos: int) -> int:
        message = self.mem.read(mp, ms)
        if token & 3 == 1:  # a unary call has nothing to send
            return BAD_ARGUMENT
        call = self._open(token)
        if call is None:
            return NOT_FOUND
        call.sent.append(message)
        call.end_of_stream_sent = call.end_of_stream_sent or bool(eos)
        return OK

    def grpc_cancel(self, token: int) -> int:
        call = self._open(token)
        if call is None:
            return NOT_FOUND
        call.cancelled = True
        return OK

    def grpc_close(self, token: int) -> int:
        call = self._open(token)
        if call is None or call.closed_by_module:
            return NOT_FOUND
        call.closed_by_module = True
        return OK

    def _grpc_check(self, call: GrpcCall) -> None:
        if call.closed or call.cancelled:
            raise WasmError(f"gRPC {call!r} is closed", where="grpc_calls",
                            hint="a closed or cancelled call receives nothing more")

    def _grpc_initial(self, call: GrpcCall, metadata: HeadersIn) -> None:
        self._grpc_check(call)
        st = self.state
        st.grpc_metadata = normalize(metadata)
        try:
            self.invoke("proxy_on_grpc_receive_initial_metadata", st.root_context_id(), call.token,
                        len(st.grpc_metadata))
        finally:
            st.grpc_metadata = None

    def _grpc_message(self, call: GrpcCall, message: bytes) -> None:
        self._grpc_check(call)
        st = self.state
        st.grpc_buffer = bytes(message)
        try:
            self.invoke("proxy_on_grpc_receive", st.root_context_id(), call.token, len(message))
        finally:
            st.grpc_buffer = None

    def _grpc_trailing(self, call: GrpcCall, metadata: HeadersIn) -> None:
        self._grpc_check(call)
        st = self.state
        st.grpc_metadata = normalize(metadata)
        try:
            self.invoke("proxy_on_grpc_receive_trailing_metadata", st.root_context_id(), call.token,
                        len(st.grpc_metadata))
        finally:
            st.grpc_metadata = None

    def _grpc_close(self, call: GrpcCall, status: int, message: str) -> None:
        self._grpc_check(call)
        call.closed = True
        st = self.state
        st.status = (status, message.encode())
        try:
            self.invoke("proxy_on_grpc_close", st.root_context_id(), call.token, status)
        finally:
            st.status = (0, b"")
