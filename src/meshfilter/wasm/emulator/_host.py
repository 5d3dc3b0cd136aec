"""The public face of the emulator: :class:`HostEmulator`, one plugin in one VM."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from meshfilter.errors import WasmError
from meshfilter.wasm import abi as _abi
from meshfilter.wasm.abi import Action, PeerType
from meshfilter.wasm.emulator._contexts import HttpContext, RootContext, TcpContext
from meshfilter.wasm.emulator._module import compile_module, export_names, load_module_bytes
from meshfilter.wasm.emulator._records import (
    LEVELS,
    ConnectionResult,
    ForeignCall,
    GrpcCall,
    HeaderList,
    HeadersIn,
    HttpCall,
    LocalResponse,
    LogRecord,
    Metric,
    RequestResult,
)
from meshfilter.wasm.emulator._runtime import Runtime
from meshfilter.wasm.emulator._state import Fault, HostState, encode, prop_key

HttpCallAnswer = tuple[HeadersIn, bytes | str, HeadersIn] | Callable[[HttpCall], Any]


class HostEmulator:
    """Emulates Envoy's proxy-wasm host (proxy-wasm-cpp-host in Envoy 1.40) for one plugin.

    One instance serves any number of requests and connections: :meth:`run_request` runs one HTTP
    stream, :meth:`run_connection` one TCP connection; :meth:`new_http_context` and
    :meth:`new_tcp_context` drive one step by step. Records across all contexts: :attr:`logs`,
    :attr:`foreign_calls`, :attr:`local_responses`, :attr:`http_calls`, :attr:`grpc_calls`,
    :attr:`metrics`, :attr:`shared_data` (:meth:`clear_records` empties the lists).

    A module Envoy refuses is refused here with Envoy's words: no ABI marker, an import the host
    does not provide (``strict_imports=False`` links it to a stub that raises when called), a callback
    with the wrong signature. ``vm_id`` and ``plugin_name`` default to the root id, as in
    ``meshfilter envoy run``'s bootstrap. ``clusters`` are the cluster names HTTP and gRPC calls may
    use (others answer BadArgument, as Envoy does for an unknown cluster).
    """

    def __init__(self, module: bytes | str | os.PathLike[str], *, root_id: str = "",
                 plugin_config: bytes | str = b"", vm_config: bytes | str = b"", vm_id: str | None = None,
                 plugin_name: str | None = None,
                 properties: Mapping[str | tuple[str, ...], Any] | None = None,
                 foreign_functions: Mapping[str, Callable[[bytes], bytes | None]] | None = None,
                 environ: Mapping[str, str] | None = None, log_level: str = "trace",
                 clock: Callable[[], int] | None = None, strict_imports: bool = True,
                 timeout: float | None = 30.0, clusters: Iterable[str] = ()) -> None:
        raw = load_module_bytes(module)
        if log_level not in LEVELS:
            raise WasmError(f"unknown log level {log_level!r}", where="log_level",
                            hint=f"use one of {', '.join(LEVELS)}")
        self.module_size = len(raw)
        mod = compile_module(raw)
        abi = _abi.abi_of_exports(export_names(mod))
        self._state = HostState(
            abi=abi or "0.2.1", root_id=root_id, vm_id=root_id if vm_id is None else vm_id,
            plugin_name=root_id if plugin_name is None else plugin_name, plugin_config=encode(plugin_config),
            vm_config=encode(vm_config), log_level=log_level, clock=clock, environ=environ or {},
            properties=properties or {}, foreign_functions=foreign_functions or {}, clusters=clusters)
        self._rt = Runtime(raw, mod, self._state, strict_imports=strict_imports, timeout=timeout)
        self.abi_version = self._state.abi
        self.vm_started = False
        self.configured: bool | None = None
        self._root: RootContext | None = None
        self._current: HttpContext | None = None

    # -- settings and records (views of the host's state) ----------------------------------------------

    root_id = property(lambda self: self._state.root_id)
    vm_id = property(lambda self: self._state.vm_id)
    plugin_name = property(lambda self: self._state.plugin_name)
    timeout = property(lambda self: self._rt.timeout)

    @property
    def plugin_config(self) -> bytes:
        return self._state.plugin_config

    @property
    def vm_config(self) -> bytes:
        return self._state.vm_config

    @property
    def properties(self) -> dict[tuple[str, ...], Any]:
        """Properties the test set (path tuple -> value); they win over Envoy's defaults."""
        return self._state.properties

    def set_property(self, path: str | Sequence[str], value: Any) -> None:
        self._state.properties[prop_key(path)] = value

    @property
    def foreign_functions(self) -> dict[str, Callable[[bytes], bytes | None]]:
        return self._state.foreign_functions

    @property
    def clusters(self) -> set[str]:
        return self._state.clusters

    @property
    def environ(self) -> dict[str, str]:
        return self._state.environ

    @property
    def log_level(self) -> str:
        return self._state.log_level

    @property
    def logs(self) -> list[LogRecord]:
        return self._state.logs

    @property
    def foreign_calls(self) -> list[ForeignCall]:
        return self._state.foreign_calls

    @property
    def local_responses(self) -> list[LocalResponse]:
        return self._state.local_responses

    @property
    def http_calls(self) -> list[HttpCall]:
        return self._state.http_calls

    @property
    def grpc_calls(self) -> list[GrpcCall]:
        return self._state.grpc_calls

    @property
    def host_messages(self) -> list[str]:
        """What Envoy itself logs about the module (e.g. ``wasi_unstable proc_exit``)."""
        return self._state.host_messages

    @property
    def metrics(self) -> dict[str, Metric]:
        return self._state.metrics

    def metric(self, name: str) -> int | None:
        m = self._state.metrics.get(name)
        return m.value if m is not None else None

    @property
    def shared_data(self) -> dict[bytes, tuple[bytes, int]]:
        """Shared data: key -> (value, cas)."""
        return self._state.shared_data

    @property
    def queues(self) -> dict[int, list[bytes]]:
        """Shared queues: token -> pending items."""
        return self._state.queues

    def enqueue(self, name: str, item: bytes | str, *, vm_id: str | None = None) -> None:
        """Put ``item`` on the module's shared queue ``name`` (as another plugin would):
        ``proxy_on_queue_ready`` runs on the root context that registered it."""
        st = self._state
        token = st.queue_names.get((st.vm_id if vm_id is None else vm_id, name))
        if token is None:
            raise WasmError(f"no shared queue named {name!r}", where="name",
                            hint="the module registers its queues with proxy_register_shared_queue")
        st.queues[token].append(encode(item))
        owner = st.queue_owner.get(token, 0)
        if owner:
            self._rt.callback("proxy_on_queue_ready", owner, token)

    @property
    def tick_period_ms(self) -> int:
        return self._state.tick_period_ms

    @property
    def calls(self) -> int:
        """How many callbacks the host has made into the module."""
        return self._rt.calls

    @property
    def root_context_id(self) -> int:
        return self._root.context_id if self._root is not None else 1

    def logs_at(self, level: str) -> list[str]:
        return [r.message for r in self._state.logs if r.level == level]

    def clear_records(self) -> None:
        st = self._state
        for records in (st.logs, st.foreign_calls, st.local_responses, st.http_calls, st.grpc_calls,
                        st.host_messages):
            records.clear()
        if self._root is not None:
            self._root.logs.clear()

    def memory_size(self) -> int:
        """Size of the module's linear memory, in bytes."""
        return self._rt.inst.memory_bounds()[1]

    def read_memory(self, ptr: int, size: int) -> bytes:
        """Bytes of the module's linear memory (WasmError outside it)."""
        try:
            return self._rt.mem.read(ptr, size)
        except Fault:
            raise WasmError(f"{size} bytes at {ptr} are outside the module's memory", where="ptr") from None

    def write_memory(self, ptr: int, data: bytes) -> None:
        """Write into the module's linear memory (a test setting up an argument for :meth:`call_export`)."""
        try:
            self._rt.mem.write(ptr, data)
        except Fault:
            raise WasmError(f"{len(data)} bytes at {ptr} are outside the module's memory", where="ptr") from None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> bool:
        """start_vm() then configure(); returns whether both succeeded."""
        return self.start_vm() and self.configure()

    def start_vm(self) -> bool:
        """Envoy's VM start: ``_initialize`` (+ ``main``) or ``_start`` with only cpp-host's allowed host
        calls, then the root context: ``proxy_on_context_create``, ``proxy_on_vm_start``."""
        if self.vm_started:
            return True
        if self._root is None:
            self._rt.start_functions()
            self._root = self._rt.new_root()
            rid = self._root.context_id
            self._rt.callback("proxy_on_context_create", rid, 0)
        ok = self._rt.callback("proxy_on_vm_start", self._root.context_id, len(self._state.vm_config))
        self.vm_started = ok is None or bool(ok)
        return self.vm_started

    def configure(self, plugin_config: bytes | str | None = None) -> bool:
        """Call proxy_on_configure (again, with a new configuration when given)."""
        if not self.vm_started and not self.start_vm():
            self.configured = False
            return False
        if plugin_config is not None:
            self._state.plugin_config = encode(plugin_config)
        assert self._root is not None
        self._root.configuring = True
        try:
            ok = self._rt.callback("proxy_on_configure", self._root.context_id, len(self._state.plugin_config))
        finally:
            self._root.configuring = False
        self.configured = ok is None or bool(ok)
        return self.configured

    def _ensure_started(self) -> None:
        if self.configured is None:
            self.start()
        if not self.vm_started:
            raise WasmError("proxy_on_vm_start returned false, so Envoy would not run the filter", where="module",
                            hint="see the logs (HostEmulator.logs) for the module's reason")
        if not self.configured:
            raise WasmError("the plugin configuration was refused (proxy_on_configure returned false), "
                            "so Envoy would not run the filter", where="plugin_config",
                            hint="see the logs (HostEmulator.logs) for the module's reason")

    def tick(self) -> None:
        """One ``proxy_on_tick`` on the root context."""
        self._ensure_started()
        self._rt.callback("proxy_on_tick", self.root_context_id)

    def advance(self, milliseconds: int) -> int:
        """Move the clock on by ``milliseconds``, firing every tick due on the way (the tick period the
        module set); returns how many fired."""
        self._ensure_started()
        st = self._state
        target = st.time_offset_ns + milliseconds * 1_000_000
        fired = 0
        while st.tick_period_ms and st.next_tick_ms * 1_000_000 <= target:
            st.time_offset_ns = st.next_tick_ms * 1_000_000
            st.next_tick_ms += st.tick_period_ms
            self._rt.callback("proxy_on_tick", self.root_context_id)
            fired += 1
        st.time_offset_ns = target
        return fired

    def shutdown(self) -> bool:
        """Envoy removes the plugin: ``proxy_on_done`` on the root context; when it answers false the
        root waits for ``proxy_done`` before ``proxy_on_delete``. Returns whether it was deleted."""
        if self._root is None or self._root.deleted:
            return True
        root = self._root
        done = self._rt.callback("proxy_on_done", root.context_id)
        if done is None or done:
            self._rt.callback("proxy_on_delete", root.context_id)
            root.deleted = True
        else:
            root.pending_done = True
        return root.deleted

    # -- HTTP -------------------------------------------------------------------------------------------

    def new_http_context(self) -> HttpContext:
        self._ensure_started()
        ctx = self._rt.new_stream(HttpContext)
        assert isinstance(ctx, HttpContext)
        self._current = ctx
        self._rt.callback("proxy_on_context_create", ctx.context_id, self.root_context_id)
        return ctx

    @property
    def current(self) -> HttpContext:
        if self._current is None or self._current.finished:
            return self.new_http_context()
        return self._current

    def request_headers(self, headers: HeadersIn, end_of_stream: bool = True) -> Action:
        return self.current.request_headers(headers, end_of_stream)

    def response_headers(self, headers: HeadersIn, end_of_stream: bool = True) -> Action:
        return self.current.response_headers(headers, end_of_stream)

    @property
    def request_header_map(self) -> HeaderList:
        return self.current.request_header_map

    @property
    def response_header_map(self) -> HeaderList:
        return self.current.response_header_map

    def run_request(self, headers: HeadersIn, *, end_of_stream: bool = True,
                    response_headers: HeadersIn | None = None, body: bytes | str | None = None,
                    trailers: HeadersIn | None = None, response_body: bytes | str | None = None,
                    response_trailers: HeadersIn | None = None,
                    http_call_response: HttpCallAnswer | None = None) -> RequestResult:
        """One whole stream as Envoy runs it: context create, request headers (body, trailers); when the
        request goes upstream and ``response_headers`` is given, the response (body, trailers); a
        local reply instead runs through the response callbacks; then log, done, delete.

        ``http_call_response`` answers every HTTP call the module makes: ``(headers, body, trailers)``
        or a function of the :class:`HttpCall`. Without it, calls stay unanswered (``result.paused`` if
        the module waits for them)."""
        ctx = self.new_http_context()
        req_body = encode(body) if body is not None else None
        eos = end_of_stream and req_body is None and trailers is None
        action = ctx.request_headers(headers, eos)
        self._answer_calls(ctx, http_call_response)
        # a paused request holds its body and trailers (Envoy: StopAllIteration) until it continues
        if req_body is not None and not ctx.request_ended and not ctx.request_paused and not ctx.finished:
            ctx.request_body(req_body, end_of_stream and trailers is None)
            self._answer_calls(ctx, http_call_response)
        if trailers is not None and not ctx.request_ended and not ctx.request_paused and not ctx.finished:
            ctx.request_trailers(trailers)
            self._answer_calls(ctx, http_call_response)
        reached = not ctx.request_paused and ctx.local_response is None and not ctx.reset
        r_action: Action | None = None
        resp_body = encode(response_body) if response_body is not None else None
        if reached and response_headers is not None and not ctx.response_started:
            ctx.request_ended = True
            r_action = ctx.response_headers(response_headers, resp_body is None and response_trailers is None)
            self._answer_calls(ctx, http_call_response)
            if resp_body is not None and not ctx.finished:
                ctx.response_body(resp_body, response_trailers is None)
            if response_trailers is not None and not ctx.finished:
                ctx.response_trailers(response_trailers)
        result = RequestResult(
            request_action=action, request_headers=ctx.request_header_map, response_action=r_action,
            response_headers=ctx.response_header_map if ctx.response_started else None,
            local_response=ctx.local_response, logs=ctx.logs, foreign_calls=ctx.foreign_calls,
            route_cache_clears=ctx.route_cache_clears, request_body=ctx.buffers[0],
            request_trailers=ctx.request_trailer_map,
            response_body=ctx.buffers[1] if ctx.response_started else None,
            response_trailers=ctx.response_trailer_map, http_calls=ctx.http_calls, grpc_calls=ctx.grpc_calls,
            paused=ctx.request_paused, reached_upstream=reached, context_id=ctx.context_id)
        ctx.done()
        return result

    def _answer_calls(self, ctx: HttpContext, answer: HttpCallAnswer | None) -> None:
        if answer is None:
            return
        while True:
            pending = [c for c in ctx.http_calls if not c.answered]
            if not pending or ctx.finished:
                return
            for call in pending:
                if callable(answer):
                    answer(call)
                    call.answered = True
                else:
                    call.respond(*answer)

    # -- TCP --------------------------------------------------------------------------------------------

    def new_tcp_context(self) -> TcpContext:
        """A new downstream connection (its ``proxy_on_new_connection`` runs on
        :meth:`TcpContext.new_connection`)."""
        self._ensure_started()
        ctx = self._rt.new_stream(TcpContext)
        assert isinstance(ctx, TcpContext)
        return ctx

    def run_connection(self, downstream: Sequence[bytes | str] | bytes | str = (),
                       upstream: Sequence[bytes | str] | bytes | str = (), *, close: str = "upstream"
                       ) -> ConnectionResult:
        """One TCP connection as Envoy's network filter sees it (measured on Envoy 1.40 with tcp_proxy):
        new connection, each downstream chunk (client -> upstream), each upstream chunk (upstream ->
        client), then the close. ``close="upstream"`` (default): the upstream ends first (an empty
        end-of-stream chunk and its close event), then the client (an empty end-of-stream chunk, its
        close event, and the context ends); ``"downstream"``: the client ends first and the context
        ends; ``"none"``: left open."""
        ctx = self.new_tcp_context()
        first = ctx.new_connection()
        down = [downstream] if isinstance(downstream, bytes | str) else list(downstream)
        up = [upstream] if isinstance(upstream, bytes | str) else list(upstream)
        d_status = [int(ctx.downstream_data(encode(chunk))) for chunk in down]
        u_status = [int(ctx.upstream_data(encode(chunk))) for chunk in up]
        if close == "upstream":
            ctx.upstream_data(b"", end_of_stream=True)  # the upstream's FIN: then its close event
        if close in ("upstream", "downstream"):
            ctx.downstream_data(b"", end_of_stream=True)
            ctx.downstream_close(PeerType.REMOTE)
        return ConnectionResult(new_connection=int(first), downstream=d_status, upstream=u_status,
                                downstream_data=b"".join(ctx.sent_upstream),
                                upstream_data=b"".join(ctx.sent_downstream), logs=ctx.logs,
                                closed=list(ctx.closed), context_id=ctx.context_id)

    # -- low level ---------------------------------------------------------------------------------------

    def call_export(self, name: str, *args: int) -> int | None:
        """Call any function the module exports (in the effective context), e.g. a test hook."""
        return self._rt.call_raw(name, *args)

    def trace_callbacks(self, on: bool = True) -> list[str]:
        """Record every ``proxy_on_*`` callback as Envoy's trace log prints it (``proxy_on_log(2)``);
        returns the list that fills up (``on=False`` stops recording)."""
        if on and self._rt.trace is None:
            self._rt.trace = []
        elif not on:
            self._rt.trace = None
            return []
        assert self._rt.trace is not None
        return self._rt.trace

    def set_effective_context(self, context_id: int) -> None:
        """Make host calls made through :meth:`call_export` act on this context."""
        self._state.effective = context_id
