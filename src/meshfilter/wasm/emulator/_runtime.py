"""The VM: links the module to the host functions, calls its exports, fails like Envoy's VM (private).

The host table is :func:`meshfilter.wasm.abi.host_functions` for the module's ABI: every function
cpp-host registers, with cpp-host's signature, bound to the implementation of its area (``_headers``,
``_properties``, ``_shared``, ``_timers``, ``_callouts``, ``_metrics``, ``_wasi``, ``_general``). While
the VM starts (``_initialize`` and ``main``/``__main_void``, or ``_start``) only cpp-host's
:data:`~meshfilter.wasm.abi.START_ALLOWED` host calls work; any other traps with
"restricted_callback", as in Envoy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wasmtime

from meshfilter.errors import HostCallError, WasmError, WasmTrap
from meshfilter.wasm import abi as _abi
from meshfilter.wasm._fastcall import FastInstance, GuestTrap, HostTrap, Signature, signature_of
from meshfilter.wasm.abi import Action
from meshfilter.wasm.emulator._callouts import Callouts
from meshfilter.wasm.emulator._contexts import HttpContext, RootContext, TcpContext
from meshfilter.wasm.emulator._general import General
from meshfilter.wasm.emulator._headers import HeadersAndBuffers
from meshfilter.wasm.emulator._metrics import Metrics
from meshfilter.wasm.emulator._module import EPOCH_SECONDS, NO_ABI_HINT, check_module, engine, function_names
from meshfilter.wasm.emulator._properties import Properties
from meshfilter.wasm.emulator._records import Frame, LocalResponse
from meshfilter.wasm.emulator._shared import SharedDataAndQueues
from meshfilter.wasm.emulator._state import Fault, GuestMemory, HostState
from meshfilter.wasm.emulator._timers import Timers
from meshfilter.wasm.emulator._wasi import Wasi

_FAULT = 21
_INVALID_MEMORY_ACCESS = 6
# wasmtime's trap codes in V8's words (what Envoy logs after "Function: X failed: ")
_V8_REASONS = {
    "UNREACHABLE": "Uncaught RuntimeError: unreachable",
    "MEMORY_OUT_OF_BOUNDS": "Uncaught RuntimeError: memory access out of bounds",
    "HEAP_MISALIGNED": "Uncaught RuntimeError: operation does not support unaligned accesses",
    "TABLE_OUT_OF_BOUNDS": "Uncaught RuntimeError: table index is out of bounds",
    "INDIRECT_CALL_TO_NULL": "Uncaught RuntimeError: null function or function signature mismatch",
    "BAD_SIGNATURE": "Uncaught RuntimeError: null function or function signature mismatch",
    "INTEGER_OVERFLOW": "Uncaught RuntimeError: divide result unrepresentable",
    "INTEGER_DIVISION_BY_ZERO": "Uncaught RuntimeError: divide by zero",
    "BAD_CONVERSION_TO_INTEGER": "Uncaught RuntimeError: float unrepresentable in integer range",
    "STACK_OVERFLOW": "Uncaught RangeError: Maximum call stack size exceeded",
}
Host = dict[tuple[str, str], tuple[Any, ...]]  # (signature, function[, value on Fault])


def _unlinked(where: str, why: str) -> Callable[..., Any]:
    def stub(*args: int) -> int:
        raise HostCallError(f"the module called {where}, {why}", import_name=where, where="module",
                            hint="Envoy refuses a module importing it: remove the import")
    return stub


def _restricted(*args: int) -> int:
    raise HostTrap("Uncaught Error: restricted_callback")


class Runtime:
    """One instantiated module and the host around it."""

    def __init__(self, raw: bytes, mod: wasmtime.Module, state: HostState, *, strict_imports: bool,
                 timeout: float | None) -> None:
        self.state = state
        self.abi01 = state.abi == "0.1.0"
        self.timeout = timeout
        self.calls = 0
        self.stopped = False
        self.failed_reason: str | None = None
        self.trace: list[str] | None = None  # when a list: "name(args)" of every proxy_on_* callback
        self._depth = 0
        check = check_module(mod)
        for problem in check.problems:
            if problem.kind == "import":
                missing = "missing import" in problem.message
                if missing and not strict_imports:
                    continue
                raise HostCallError(problem.message, import_name=problem.name, where="module",
                                    hint="Envoy refuses this module too: import only what proxy-wasm-cpp-host "
                                         "provides for the module's ABI (meshfilter wasm check lists them)")
            raise WasmError(problem.message, where="module",
                            hint=NO_ABI_HINT if problem.kind == "abi" else
                            "Envoy refuses this module too (meshfilter wasm check lists every problem)")
        self.names = function_names(raw)
        self.mem = GuestMemory(lambda: (0, 0), self.alloc)
        self.callouts = Callouts(state, self.mem, self.callback)
        general = General(state, self.mem, {"continue": self._continue, "close": self._close,
                                            "local_reply": self._local_reply, "done": self._root_done})
        areas: list[Any] = [general, HeadersAndBuffers(state, self.mem), Properties(state, self.mem),
                 SharedDataAndQueues(state, self.mem, self._queue_ready), Timers(state, self.mem), self.callouts,
                 Metrics(state, self.mem)]
        env: dict[str, Callable[..., Any]] = {}
        for area in areas:
            env.update(area.functions())
        wasi = Wasi(state, self.mem).functions()
        registered = _abi.host_functions(state.abi)
        host: Host = {}
        for imp in mod.imports:
            if not isinstance(imp.type, wasmtime.FuncType):
                continue
            key = (imp.module, imp.name or "")
            where = f"{imp.module}.{imp.name}"
            spec = registered.get(key)
            if spec is None:  # only without strict_imports: linked, fails when called
                host[key] = (signature_of(imp.type), _unlinked(where, "which Envoy's host does not provide"))
                continue
            is_wasi = imp.module in _abi.WASI_MODULES
            impl = (wasi if is_wasi else env).get(key[1])
            if impl is None:
                impl = _unlinked(where, "which the emulator does not emulate")
            host[key] = (spec.signature, impl, _FAULT if is_wasi else _INVALID_MEMORY_ACCESS)
        ticks = 2**62 if timeout is None else max(1, int(timeout / EPOCH_SECONDS) + 1)
        try:
            self.inst = FastInstance(engine(), mod, host, deadline_ticks=ticks, fault=Fault)
        except wasmtime.WasmtimeError as exc:
            raise WasmError(f"cannot instantiate module: {str(exc).splitlines()[0]}", where="module") from None
        except GuestTrap as exc:
            raise WasmError(f"the module's start function trapped: {exc.message}", where="module") from None
        self.mem.bounds = self.inst.memory_bounds
        exports = frozenset(e.name for e in mod.exports if isinstance(e.type, wasmtime.FuncType))
        self.funcs: dict[str, tuple[Any, Signature]] = {}
        for name in _abi.looked_up_callbacks(state.abi, exports):
            fn = self.inst.func(name)
            if fn is not None:
                self.funcs[name] = fn
        self._alloc_fn = self.funcs.get("malloc") or self.funcs.get("proxy_on_memory_allocate")

    # -- calling the module --------------------------------------------------------------------------

    def exports(self, name: str) -> bool:
        return name in self.funcs

    def callback(self, name: str, *args: int) -> int | None:
        """Call export ``name`` with the context id first (the effective context during the call);
        None when the module does not export it. Actions Envoy defers run after the outermost call."""
        fn = self.funcs.get(name)
        if fn is None:
            return None
        return self.invoke(name, fn, args, args[0] if args else 0)

    def call_raw(self, name: str, *args: int) -> int | None:
        """Call any function export (tests: exports that are not callbacks), in the VM context."""
        fn = self.funcs.get(name) or self.inst.func(name)
        if fn is None:
            raise WasmError(f"the module exports no function {name!r}", where="module")
        return self.invoke(name, fn, args, self.state.effective)

    def invoke(self, name: str, fn: tuple[Any, Signature], args: tuple[int, ...], ctx_id: int) -> int | None:
        if self.failed_reason is not None:
            raise WasmError(f"cannot call {name}: the VM failed earlier ({self.failed_reason})", where="module",
                            hint="create a new HostEmulator: Envoy fails the VM after a trap")
        st = self.state
        saved = st.effective
        st.effective = ctx_id
        self.calls += 1
        if self.trace is not None and name.startswith("proxy_on_") and name != "proxy_on_memory_allocate":
            self.trace.append(f"{name}({', '.join(map(str, args))})")
        depth = self._depth
        self._depth = depth + 1
        try:
            result = self.inst.call(fn[0], fn[1], args)
        except GuestTrap as exc:
            raise self._trap(name, exc) from None
        except WasmError as exc:
            self.failed_reason = exc.what
            raise
        finally:
            self._depth = depth
            st.effective = saved
        if not depth:
            stopped = st.stop_iteration
            if stopped:
                st.stop_iteration = False
            after = st.after_call
            while after:
                after.pop(0)()
            self.stopped = stopped
        return result

    def action(self, name: str, value: int | None) -> Action:
        try:
            return Action(value or 0)
        except ValueError:
            return Action.STOP_ALL_ITERATION_AND_WATERMARK  # Envoy: any larger answer stops all

    def alloc(self, size: int) -> int:
        """The module's allocator (``malloc``, else ``proxy_on_memory_allocate``), in the VM context."""
        if self._alloc_fn is None:
            raise Fault()
        name = "malloc" if self._alloc_fn is self.funcs.get("malloc") else "proxy_on_memory_allocate"
        return self.invoke(name, self._alloc_fn, (size,), 0) or 0

    def _trap(self, name: str, exc: GuestTrap) -> WasmError:
        st = self.state
        if exc.code is not None and exc.code.name == "INTERRUPT":
            self.failed_reason = f"{name} did not return within {self.timeout} s"
            return WasmError(self.failed_reason, where="module",
                             hint="the module seems to loop forever (HostEmulator timeout=...)")
        code = exc.code.name if exc.code is not None else ""
        reason = _V8_REASONS.get(code, exc.message if exc.code is None else f"Uncaught RuntimeError: {exc.message}")
        frames = tuple(Frame(i, off, self.names.get(i, f"unknown(function index:{i})")) for i, off in exc.frames)
        envoy = f"Function: {name} failed: {reason}"
        if self.names:
            envoy += "\nProxy-Wasm plugin in-VM backtrace:" + "".join(
                f"\n{n:>3}:  {f}" for n, f in enumerate(frames))
        last = tuple(r.message for r in st.logs[-5:])
        self.failed_reason = f"{name} trapped: {reason}"
        what = self.failed_reason
        if frames:
            what += "; backtrace: " + " < ".join(f.name for f in frames[:8])
        if last:
            what += f"; last log: {last[-1]!r}"
        return WasmTrap(what, callback=name, reason=reason, backtrace=tuple(str(f) for f in frames),
                        last_logs=last, envoy_message=envoy, where="module",
                        hint="the module hit a Wasm trap; Envoy fails the VM the same way")

    # -- VM start ------------------------------------------------------------------------------------

    def start_functions(self) -> None:
        """``_initialize`` then ``main(0, 0)`` or ``__main_void``, or ``_start``, with cpp-host's
        restricted host calls."""
        inst = self.inst
        saved = {key: inst.replace(key, _restricted) for key in inst.host_keys()
                 if f"{key[0]}.{key[1]}" not in _abi.START_ALLOWED}
        try:
            if "_initialize" in self.funcs:
                self.invoke("_initialize", self.funcs["_initialize"], (), 0)
                if "main" in self.funcs:
                    self.invoke("main", self.funcs["main"], (0, 0), 0)
                elif "__main_void" in self.funcs:
                    self.invoke("__main_void", self.funcs["__main_void"], (), 0)
            elif "_start" in self.funcs:
                self.invoke("_start", self.funcs["_start"], (), 0)
        finally:
            for key, fn in saved.items():
                inst.replace(key, fn)

    # -- contexts ------------------------------------------------------------------------------------

    def new_root(self) -> RootContext:
        st = self.state
        root = RootContext(st.next_context_id)
        st.next_context_id += 1
        st.contexts[root.context_id] = root
        st.root = root
        return root

    def new_stream(self, kind: type[HttpContext] | type[TcpContext]) -> HttpContext | TcpContext:
        st = self.state
        ctx = kind(self, st.next_context_id, st.next_connection_id, 40000 + st.next_connection_id % 20000)
        st.next_context_id += 1
        st.next_connection_id += 1
        st.contexts[ctx.context_id] = ctx
        return ctx

    def forget(self, context_id: int) -> None:
        self.state.contexts.pop(context_id, None)

    # -- what host functions ask of the streams (deferred until the callback returns, as in Envoy) ----

    def _stream(self) -> HttpContext | TcpContext | None:
        ctx = self.state.context()
        return ctx if isinstance(ctx, HttpContext | TcpContext) else None

    def _continue(self, stream: int) -> None:
        ctx = self._stream()
        if ctx is not None:
            self.state.defer(lambda: ctx.resume(stream))

    def _close(self, stream: int) -> None:
        ctx = self._stream()
        if ctx is not None:
            ctx.close(stream)

    def _local_reply(self, resp: LocalResponse) -> None:
        self.state.local_responses.append(resp)
        ctx = self._stream()
        if isinstance(ctx, HttpContext):
            ctx.local_response = resp
            self.state.defer(lambda: ctx.send_local_reply(resp))

    def _queue_ready(self, root_id: int, token: int) -> None:
        if self.failed_reason is None and root_id in self.state.contexts:
            self.callback("proxy_on_queue_ready", root_id, token)

    def _root_done(self) -> None:
        root = self.state.root
        if root is not None and root.pending_done:
            root.pending_done = False
            self.callback("proxy_on_delete", root.context_id)
            root.deleted = True
