"""Fast calls between Python and a wasmtime instance (the emulator's hot path).

``wasmtime.Func.__call__`` re-reads and compares the function type on every call and a Python host
function goes through ``Val`` conversions; together they cost ~100 µs per call. The proxy-wasm
emulator makes several calls per request, so it uses wasmtime's *unchecked* C API instead: raw
``wasmtime_val_raw_t`` arrays, with the signature checked once, when the function is defined or
looked up. This module is the only place that touches ``wasmtime._ffi``.

Host functions receive plain ints (i32 as unsigned 32-bit, i64 as signed 64-bit) and return an int
(or a float for an ``f64`` result, or None when there is no result). An exception raised by a host
function becomes a trap that unwinds the guest; :meth:`FastInstance.call` then re-raises the
original exception in Python.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from ctypes import POINTER, byref, c_void_p, cast
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from meshfilter.wasm.abi import Signature

MASK32 = 0xFFFFFFFF

# wasm value type name -> kind letter used in signatures here
_KIND = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}
_VALTYPE = {"i": wasmtime.ValType.i32, "I": wasmtime.ValType.i64,
            "f": wasmtime.ValType.f32, "F": wasmtime.ValType.f64}
_NO_FINALIZER = ctypes.CFUNCTYPE(None, c_void_p)(0)
_RAW_ARRAYS = [ffi.wasmtime_val_raw_t * n for n in range(17)]
_TRAP_PTR = POINTER(ffi.wasm_trap_t)
_call_unchecked = ffi.dll["wasmtime_func_call_unchecked"]
_call_unchecked.restype = c_void_p  # wasmtime_error_t*, as an int
_call_unchecked.argtypes = [POINTER(ffi.wasmtime_context_t), POINTER(ffi.wasmtime_func_t),
                            POINTER(ffi.wasmtime_val_raw_t), ctypes.c_size_t, POINTER(_TRAP_PTR)]
_ERROR_PTR = POINTER(ffi.wasmtime_error_t)
_set_epoch_deadline = ffi.wasmtime_context_set_epoch_deadline
# private prototypes (a fresh _FuncPtr, so wasmtime's own bindings are untouched) returning plain ints
_memory_data = ffi.dll["wasmtime_memory_data"]
_memory_data.restype = c_void_p
_memory_data.argtypes = [POINTER(ffi.wasmtime_context_t), POINTER(ffi.wasmtime_memory_t)]
_memory_data_size = ffi.dll["wasmtime_memory_data_size"]
_memory_data_size.restype = ctypes.c_size_t
_memory_data_size.argtypes = [POINTER(ffi.wasmtime_context_t), POINTER(ffi.wasmtime_memory_t)]


def functype(sig: Signature) -> wasmtime.FuncType:
    return wasmtime.FuncType([_VALTYPE[k]() for k in sig.params], [_VALTYPE[k]() for k in sig.results])


def signature_of(ty: wasmtime.FuncType) -> Signature:
    try:
        return Signature("".join(_KIND[str(t)] for t in ty.params),
                         "".join(_KIND[str(t)] for t in ty.results))
    except KeyError:
        return Signature("?", "?")


class GuestTrap(Exception):
    """The guest trapped: ``message`` is wasmtime's reason (first line), ``code`` its
    :class:`wasmtime.TrapCode` (None for a trap raised by a host function through :class:`HostTrap`),
    ``frames`` the Wasm backtrace as ``(function index, module offset)``, innermost first."""

    def __init__(self, message: str, code: Any = None, frames: tuple[tuple[int, int], ...] = ()) -> None:
        self.message = message
        self.code = code
        self.frames = frames
        super().__init__(message)


class HostTrap(Exception):
    """Raised by a host function to trap the guest with ``message`` (as cpp-host's
    ``restricted_callback``): the outer :meth:`FastInstance.call` raises :class:`GuestTrap` with
    the guest's backtrace."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def _frames(trap: wasmtime.Trap) -> tuple[tuple[int, int], ...]:
    try:
        return tuple((f.func_index, f.module_offset) for f in trap.frames)
    except Exception:  # noqa: BLE001 - a backtrace is best effort
        return ()


def _reason(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "Caused by:" in lines:
        after = lines[lines.index("Caused by:") + 1:]
        if after:
            return after[0]
    return lines[0] if lines else "unknown trap"


class FastInstance:
    """A wasmtime Store + Instance with raw host functions and raw export calls."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module,
                 host: dict[tuple[str, str], tuple[Any, ...]], *,
                 deadline_ticks: int = 2**62, fault: type[BaseException] | None = None) -> None:
        """``host`` maps (module, name) to ``(signature, function)`` or ``(signature, function,
        fault_value)``: a host function raising ``fault`` then returns ``fault_value`` to the guest
        (e.g. InvalidMemoryAccess for a pointer outside memory) instead of trapping."""
        self.store = wasmtime.Store(engine)
        # the engine runs with epoch interruption: every top-level call gets this many ticks
        self.deadline_ticks = deadline_ticks
        self.store.set_epoch_deadline(deadline_ticks)
        self._ctx_stack: list[Any] = [self.store._context()]
        self._pending: BaseException | None = None
        self._callbacks: list[Any] = []  # keep ctypes callbacks alive
        self._cells: dict[tuple[str, str], list[Callable[..., Any]]] = {}
        linker = wasmtime.Linker(engine)
        imported_memory: wasmtime.Memory | None = None
        for imp in module.imports:  # memories and tables the module imports are made here (as V8 does)
            if isinstance(imp.type, wasmtime.MemoryType):
                imported_memory = wasmtime.Memory(self.store, imp.type)
                linker.define(self.store, imp.module, imp.name or "", imported_memory)
            elif isinstance(imp.type, wasmtime.TableType):
                table = wasmtime.Table(self.store, imp.type, None)
                linker.define(self.store, imp.module, imp.name or "", table)
        for (mod, name), entry in host.items():
            sig, fn = entry[0], entry[1]
            cell = [fn]
            self._cells[(mod, name)] = cell
            cb = self._make_callback(sig, cell, fault, entry[2] if len(entry) > 2 else None)
            self._callbacks.append(cb)
            ty = functype(sig)
            mb, nb = mod.encode(), name.encode()
            err = ffi.wasmtime_linker_define_func_unchecked(
                linker.ptr(), mb, len(mb), nb, len(nb), ty.ptr(), cb, None, _NO_FINALIZER)
            if err:
                raise wasmtime.WasmtimeError._from_ptr(err)
        self.instance = linker.instantiate(self.store, module)
        self.exports = self.instance.exports(self.store)
        mem = self.exports.get("memory") or imported_memory
        self._memory = mem._memory if isinstance(mem, wasmtime.Memory) else None
        self._memory_ref = byref(self._memory) if self._memory is not None else None
        self._mem_base = 0
        self._mem_size = -1
        # (base, size) while no guest code ran since: a host function reads it once, however many
        # reads and writes it makes (guest code may grow the memory, so entering a host function and
        # returning from a call into the guest forget it)
        self._bounds: tuple[int, int] | None = None

    # -- host functions --------------------------------------------------------------------------------

    def replace(self, key: tuple[str, str], fn: Callable[..., Any]) -> Callable[..., Any]:
        """Make host function ``key`` call ``fn`` from now on; returns the one it called before."""
        cell = self._cells[key]
        old, cell[0] = cell[0], fn
        return old

    def host_keys(self) -> list[tuple[str, str]]:
        return list(self._cells)

    def _make_callback(self, sig: Signature, cell: list[Callable[..., Any]], fault: type[BaseException] | None,
                       fault_value: int | None) -> Any:
        kinds = sig.params
        result = sig.results[:1]
        n = len(kinds)
        stack = self._ctx_stack
        caller_context = ffi.wasmtime_caller_context
        all_i32 = all(k == "i" for k in kinds)
        idx = tuple(range(n))
        attrs = tuple({"i": "i32", "I": "i64", "f": "f32", "F": "f64"}[k] for k in kinds)
        catch: type[BaseException] | tuple[()] = fault if fault is not None and fault_value is not None else ()

        def cb(env: Any, caller: Any, raw: Any, nraw: int) -> int:
            stack.append(caller_context(caller))
            self._bounds = None
            try:
                if all_i32:
                    args = [raw[i].i32 & MASK32 for i in idx]
                else:
                    args = [getattr(raw[i], a) & MASK32 if a == "i32" else getattr(raw[i], a)
                            for i, a in zip(idx, attrs, strict=True)]
                try:
                    r = cell[0](*args)
                except catch:
                    r = fault_value
                if result == "i":
                    raw[0].i32 = r if r < 0x80000000 else r - 0x100000000
                elif result == "I":
                    raw[0].i64 = r
                elif result == "F":
                    raw[0].f64 = r
                elif result == "f":
                    raw[0].f32 = r
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised by call()
                self._pending = exc
                trap = wasmtime.Trap("host function raised " + type(exc).__name__)._consume()
                return cast(trap, c_void_p).value or 0
            finally:
                stack.pop()

        return ffi.wasmtime_func_unchecked_callback_t(cb)

    # -- calling exports -------------------------------------------------------------------------------

    def func(self, name: str) -> tuple[Any, Signature] | None:
        ext = self.exports.get(name)
        if not isinstance(ext, wasmtime.Func):
            return None
        return ext._func, signature_of(ext.type(self.store))

    def call(self, func: Any, sig: Signature, args: tuple[int, ...]) -> int | None:
        """Call an export (from :meth:`func`); i32 results come back unsigned."""
        n = max(len(sig.params), len(sig.results), 1)
        arr = _RAW_ARRAYS[n]() if n < len(_RAW_ARRAYS) else (ffi.wasmtime_val_raw_t * n)()
        for i, (k, a) in enumerate(zip(sig.params, args, strict=True)):
            if k == "i":
                arr[i].i32 = a if a < 0x80000000 else a - 0x100000000
            elif k == "I":
                arr[i].i64 = a
            else:
                arr[i].f64 = a
        trap = _TRAP_PTR()
        if len(self._ctx_stack) == 1:
            _set_epoch_deadline(self._ctx_stack[0], self.deadline_ticks)
        err = _call_unchecked(self._ctx_stack[-1], byref(func), arr, n, byref(trap))
        self._bounds = None
        if err or trap:
            pending, self._pending = self._pending, None
            if pending is not None:
                if err:
                    ffi.wasmtime_error_delete(cast(err, _ERROR_PTR))
                if isinstance(pending, HostTrap):
                    frames = _frames(wasmtime.Trap._from_ptr(trap)) if trap else ()
                    raise GuestTrap(pending.message, None, frames)
                if trap:
                    ffi.wasm_trap_delete(trap)
                raise pending
            if trap:
                t = wasmtime.Trap._from_ptr(trap)
                raise GuestTrap(_reason(t.message), t.trap_code, _frames(t))
            raise GuestTrap(_reason(str(wasmtime.WasmtimeError._from_ptr(cast(err, _ERROR_PTR)))))
        if not sig.results:
            return None
        if sig.results[0] == "i":
            return arr[0].i32 & MASK32
        if sig.results[0] == "I":
            return int(arr[0].i64)
        return int(arr[0].f64)

    # -- memory ------------------------------------------------------------------------------------------

    def memory_bounds(self) -> tuple[int, int]:
        """(base address, size in bytes) of the exported memory; (0, 0) when there is none."""
        bounds = self._bounds
        if bounds is not None:
            return bounds
        if self._memory is None:
            return 0, 0
        ctx = self._ctx_stack[-1]
        size: int = _memory_data_size(ctx, self._memory_ref)
        if size != self._mem_size:
            self._mem_base = _memory_data(ctx, self._memory_ref) or 0
            self._mem_size = size
        self._bounds = bounds = (self._mem_base, size)
        return bounds
