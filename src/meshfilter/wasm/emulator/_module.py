"""Loading a module and checking it the way Envoy's host does before it runs any of it.

Pure functions of the module's bytes (plus wasmtime's compiler, cached per content): the ABI the
module declares, the function names of its name section, and :func:`check_module`, the static
check of ``meshfilter wasm check`` and of the emulator's construction. Envoy's words come from
proxy-wasm-cpp-host (``src/wasm.cc`` load/getFunctions, ``src/v8/v8.cc`` link and getModuleFunction).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from meshfilter.errors import WasmError
from meshfilter.wasm import abi as _abi
from meshfilter.wasm._fastcall import signature_of
from meshfilter.wasm.abi import Signature

# Compiled modules are cached per content hash: building an emulator then costs one instantiation.
_ENGINE: wasmtime.Engine | None = None
_MODULES: dict[str, wasmtime.Module] = {}
_LOCK = threading.Lock()
EPOCH_SECONDS = 0.05  # a daemon thread advances the engine's epoch this often (module time limits)


def engine() -> wasmtime.Engine:
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            config = wasmtime.Config()
            config.epoch_interruption = True
            eng = wasmtime.Engine(config)
            threading.Thread(target=_tick, args=(eng,), name="meshfilter-wasm-epoch", daemon=True).start()
            _ENGINE = eng
    return _ENGINE


def _tick(eng: wasmtime.Engine) -> None:
    while True:
        time.sleep(EPOCH_SECONDS)
        eng.increment_epoch()


def load_module_bytes(module: bytes | str | os.PathLike[str]) -> bytes:
    """Wasm bytes from Wasm bytes, WAT text (str or bytes starting with '('), or a file path."""
    if isinstance(module, bytes | bytearray):
        raw = bytes(module)
        if raw[:4] == b"\0asm":
            return raw
        if raw.lstrip()[:1] in (b"(", b";"):
            return _wat(raw.decode("utf-8", "replace"))
        raise WasmError("module bytes are neither Wasm (\\0asm magic) nor WAT text", where="module",
                        hint="pass the .wasm file's bytes, WAT text, or a path")
    if isinstance(module, str) and module.lstrip()[:1] in ("(", ";"):
        return _wat(module)
    path = Path(module)
    try:
        return load_module_bytes(path.read_bytes())
    except OSError as exc:
        raise WasmError(f"cannot read module: {exc.strerror}", where=str(path),
                        hint="check the path to the .wasm file") from None


def _wat(text: str) -> bytes:
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise WasmError(f"WAT does not assemble: {str(exc).splitlines()[0]}", where="module") from None


def compile_module(raw: bytes) -> wasmtime.Module:
    key = hashlib.sha256(raw).hexdigest()
    eng = engine()
    with _LOCK:
        mod = _MODULES.get(key)
        if mod is None:
            try:
                mod = wasmtime.Module(eng, raw)
            except wasmtime.WasmtimeError as exc:
                raise WasmError(f"not a valid Wasm module: {str(exc).splitlines()[0]}",
                                where="module") from None
            if len(_MODULES) > 64:
                _MODULES.clear()
            _MODULES[key] = mod
        return mod


def export_names(mod: wasmtime.Module) -> list[str]:
    """Function exports, in export order."""
    return [e.name for e in mod.exports if isinstance(e.type, wasmtime.FuncType)]


def detect_abi(module: bytes | str | os.PathLike[str]) -> str:
    """The proxy-wasm ABI version a module declares through its ``proxy_abi_version_*`` export."""
    found = _abi.abi_of_exports(export_names(compile_module(load_module_bytes(module))))
    if found is None:
        raise WasmError(NO_ABI, where="module", hint=NO_ABI_HINT)
    return found


NO_ABI = "Missing or unknown Proxy-Wasm ABI version"
NO_ABI_HINT = ("export proxy_abi_version_0_2_1 (or 0_2_0, 0_1_0), as every proxy-wasm SDK does; Envoy "
               "refuses the module")


# -- the name section ------------------------------------------------------------------------------

def read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned LEB128 (protobuf varint) at ``pos``: (value, next position); ValueError when truncated."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated LEB128")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def function_names(raw: bytes) -> dict[int, str]:
    """Function index -> name from the module's ``name`` custom section (subsection 1), as cpp-host's
    BytecodeUtil::getFunctionNameIndex reads it; empty when the module has none (or it is corrupt)."""
    out: dict[int, str] = {}
    try:
        pos = 8
        while pos < len(raw):
            sid = raw[pos]
            size, pos = read_leb128(raw, pos + 1)
            end = pos + size
            if sid == 0:
                nlen, p = read_leb128(raw, pos)
                if raw[p:p + nlen] == b"name":
                    p += nlen
                    while p < end:
                        sub = raw[p]
                        slen, p = read_leb128(raw, p + 1)
                        sub_end = p + slen
                        if sub == 1:
                            count, p = read_leb128(raw, p)
                            for _ in range(count):
                                idx, p = read_leb128(raw, p)
                                ln, p = read_leb128(raw, p)
                                out[idx] = raw[p:p + ln].decode("utf-8", "replace")
                                p += ln
                        p = sub_end
            pos = end
    except (ValueError, IndexError):
        return {}
    return out


# -- the static check ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """One reason Envoy refuses a module, in Envoy's words (``message``)."""

    kind: str  # "abi", "import", "signature", "allocator"
    name: str  # the import (module.name) or export concerned; "" for the ABI marker
    message: str


@dataclass(frozen=True)
class ModuleCheck:
    """What :func:`check_module` found: the ABI (None without a marker) and Envoy's refusals."""

    abi: str | None
    problems: tuple[Problem, ...]
    imports: tuple[str, ...]
    exports: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_module(module: bytes | str | os.PathLike[str] | wasmtime.Module) -> ModuleCheck:
    """Compare a module with what Envoy 1.40's host provides and expects, without running it: the ABI
    marker, every import against the host functions of that ABI (name and signature), the allocator,
    and the signature of every callback the host looks up. Every problem is reported (Envoy stops at
    the first)."""
    mod = module if isinstance(module, wasmtime.Module) else compile_module(load_module_bytes(module))
    exports = export_names(mod)
    abi = _abi.abi_of_exports(exports)
    problems: list[Problem] = []
    imports = [f"{i.module}.{i.name}" for i in mod.imports]
    if abi is None:
        problems.append(Problem("abi", "", NO_ABI))
        return ModuleCheck(None, tuple(problems), tuple(imports), tuple(exports))
    host = _abi.host_functions(abi)
    for imp in mod.imports:
        key = f"{imp.module}.{imp.name}"
        ty = imp.type
        if isinstance(ty, wasmtime.MemoryType | wasmtime.TableType):
            continue  # V8 creates imported memories and tables
        fn = host.get((imp.module, imp.name or ""))
        if not isinstance(ty, wasmtime.FuncType) or fn is None:
            problems.append(Problem("import", key, f"Failed to load Wasm module due to a missing import: {key}"))
            continue
        want = signature_of(ty)
        if want != fn.signature:
            problems.append(Problem(
                "import", key, f"Failed to load Wasm module due to an import type mismatch: {key}, want: "
                f"{want}, but host exports: {fn.signature}"))
    sigs = {e.name: signature_of(e.type) for e in mod.exports if isinstance(e.type, wasmtime.FuncType)}
    names = frozenset(sigs)
    if "malloc" not in names and "proxy_on_memory_allocate" not in names:
        problems.append(Problem("allocator", "malloc", "Wasm module is missing malloc function."))
    for name in _abi.looked_up_callbacks(abi, names):
        want_sig = _abi.callback_signature(name, abi)
        if want_sig is not None and sigs[name] != want_sig:
            problems.append(Problem("signature", name, bad_signature(name, want_sig, sigs[name])))
    return ModuleCheck(abi, tuple(problems), tuple(imports), tuple(exports))


def bad_signature(name: str, want: Signature, got: Signature) -> str:
    return f"Bad function signature for: {name}, want: {want}, but the module exports: {got}"
