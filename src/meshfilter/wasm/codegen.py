"""WebAssembly text (WAT) code generation for proxy-wasm modules, assembled with ``wasmtime``.

The pieces compose: a :class:`ModuleBuilder` collects host imports, static data, globals,
functions and exports for one proxy-wasm ABI, and renders one WAT module; :func:`assemble` turns
WAT into Wasm bytes. Snippet helpers (:meth:`ModuleBuilder.log`, :meth:`ModuleBuilder.replace_header`,
:meth:`ModuleBuilder.clear_route_cache`, ...) return WAT *instructions* (folded S-expressions) and
declare the imports they need, so a generator only writes its own logic.

Every builder carries a bump allocator exported under the ABI's allocator name
(``proxy_on_memory_allocate`` for 0.2.x, ``malloc`` for 0.1.0). The heap starts after the static
data; :meth:`ModuleBuilder.reset_heap` (one ``global.set``) frees every allocation made since the
last :meth:`ModuleBuilder.keep_heap`, so a module that resets at the start of each host callback
keeps its linear memory bounded. See docs/architecture/wasm-codegen.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshfilter.errors import WasmError
from meshfilter.wasm import abi as _abi
from meshfilter.wasm.abi import DEFAULT_ABI, Action, BufferType, LogLevel, MapType

# The ABI vocabulary lives in meshfilter.wasm.abi (shared with the emulator); these names stay here
# for the generators and tests that import them from codegen.
ABIS = _abi.ABI_VERSIONS
__all__ = ["ABIS", "DEFAULT_ABI", "Action", "BufferType", "LogLevel", "MapType", "ModuleBuilder", "Segment",
           "abi_marker", "allocator_export", "assemble", "callback_signature", "strip_custom_sections",
           "wat_string"]
abi_marker = _abi.abi_marker
_ENV = {f.name: f for f in _abi.ENV_HOST_FUNCTIONS}


def allocator_export(abi: str) -> str:
    """The export name the host calls to allocate memory in the module."""
    return _abi.allocator_exports(abi)[0]


def callback_signature(callback: str, abi: str) -> str:
    """The WAT ``(param ...) (result ...)`` of an exported callback for an ABI."""
    sig = _abi.callback_signature(callback, abi)
    if sig is None:
        known = sorted(n for n, cb in _abi.CALLBACKS.items() if n.startswith("proxy_on_") and cb.signature(abi))
        raise WasmError(f"unknown proxy-wasm callback {callback!r} for ABI {abi}", where="codegen",
                        hint=f"known: {', '.join(known)}")
    return sig.wat()


def wat_string(raw: bytes) -> str:
    """A WAT string literal for raw bytes (printable ASCII kept, the rest as ``\\hh``)."""
    out = []
    for b in raw:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\{b:02x}")
    return '"' + "".join(out) + '"'


@dataclass(frozen=True)
class Segment:
    """A static byte string at a fixed address of linear memory."""

    offset: int
    length: int

    @property
    def ptr(self) -> str:
        return f"(i32.const {self.offset})"

    @property
    def len(self) -> str:
        return f"(i32.const {self.length})"


@dataclass
class ModuleBuilder:
    """Collects the parts of one proxy-wasm module and renders them as WAT.

    ``data_base`` is where static data starts (address 0 stays unused so that 0 means "no pointer").
    """

    abi: str = DEFAULT_ABI
    data_base: int = 8
    alloc_align: int = 8  # alignment of the allocator's blocks (1: none, for modules that only get bytes)
    imports: list[str] = field(default_factory=list)
    globals: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    exports: list[tuple[str, str]] = field(default_factory=list)
    _data: bytearray = field(default_factory=bytearray)
    _seen: dict[bytes, Segment] = field(default_factory=dict)
    _named: dict[str, Segment] = field(default_factory=dict)
    _scratch: list[tuple[int, int]] = field(default_factory=list)  # reserve()d ranges of _data

    def __post_init__(self) -> None:
        if self.abi not in ABIS:
            raise WasmError(f"unsupported proxy-wasm ABI {self.abi!r}", where="abi",
                            hint=f"use one of {', '.join(ABIS)}")
        self.exports.append((abi_marker(self.abi), "$alloc"))

    # -- building blocks -------------------------------------------------------------------------

    @property
    def abi_family(self) -> str:
        return "0.1" if self.abi == "0.1.0" else "0.2"

    def use(self, name: str) -> str:
        """Declare the host import ``env.name`` (once) and return its WAT symbol ``$name``."""
        spec = _ENV.get(name)
        if spec is None:
            raise WasmError(f"unknown host function {name!r}", where="codegen",
                            hint=f"known: {', '.join(sorted(_ENV))}")
        if self.abi not in spec.abis:
            raise WasmError(f"host function {name} does not exist in proxy-wasm ABI {self.abi}",
                            where="codegen", hint=f"it exists in ABI {', '.join(spec.abis)}")
        line = f'(import "env" "{name}" (func ${name} {spec.signature.wat(None)}))'
        if line not in self.imports:
            self.imports.append(line)
        return f"${name}"

    def data(self, raw: bytes | str, *, align: int = 1) -> Segment:
        """Place bytes in static memory. Constant bytes are shared: a string already present in
        static data (whole, or inside a longer string) is not stored again; scratch space from
        :meth:`reserve` is never reused."""
        b = raw.encode() if isinstance(raw, str) else bytes(raw)
        if b in self._seen and self._seen[b].offset % align == 0:
            return self._seen[b]
        at = self._data.find(b) if b else -1
        while at >= 0:
            start = self.data_base + at
            if start % align == 0 and not any(lo < at + len(b) and at < hi for lo, hi in self._scratch):
                return self._seen.setdefault(b, Segment(start, len(b)))
            at = self._data.find(b, at + 1)
        while (self.data_base + len(self._data)) % align:
            self._data.append(0)
        seg = Segment(self.data_base + len(self._data), len(b))
        self._data += b
        self._seen.setdefault(b, seg)
        return seg

    def static_byte(self, address: int) -> int | None:
        """The constant byte placed at ``address``, or None where there is none (scratch space from
        :meth:`reserve`, or past the static data): what a generator may rely on finding there."""
        at = address - self.data_base
        if not 0 <= at < len(self._data) or any(lo <= at < hi for lo, hi in self._scratch):
            return None
        return self._data[at]

    def reserve(self, size: int, *, align: int = 4) -> Segment:
        """Zeroed static scratch space (not shared with other data)."""
        while (self.data_base + len(self._data)) % align:
            self._data.append(0)
        seg = Segment(self.data_base + len(self._data), size)
        self._scratch.append((len(self._data), len(self._data) + size))
        self._data += bytes(size)
        return seg

    def global_(self, name: str, init: int = 0, *, typ: str = "i32", mutable: bool = True) -> str:
        t = f"(mut {typ})" if mutable else typ
        self.globals.append(f"(global ${name} {t} ({typ}.const {init}))")
        return f"${name}"

    def func(self, wat: str) -> None:
        """Add a function written in WAT (``(func $name ...)``)."""
        self.functions.append(wat.strip())

    def export_func(self, export_name: str, wat: str) -> None:
        """Add a function and export it; ``wat`` is ``(func ...)`` without a name or export."""
        sym = "$" + export_name
        body = wat.strip()
        if not body.startswith("(func"):
            raise WasmError("export_func needs a '(func ...)' text", where=export_name)
        self.functions.append(f'(func {sym} (export "{export_name}")' + body[len("(func"):])
        self.exports.append((export_name, sym))

    def callback(self, name: str, body: str, *, locals_: str = "") -> None:
        """Export a proxy-wasm callback with the ABI's signature; params are $a, $b, $c."""
        sig = callback_signature(name, self.abi)
        self.export_func(name, f"(func {sig} {locals_}\n{body})")

    # -- snippets (WAT instructions) --------------------------------------------------------------

    def log(self, level: int, text: bytes | str) -> str:
        seg = self.data(text)
        return self.log_ptr(level, seg.ptr, seg.len)

    def log_ptr(self, level: int, ptr: str, length: str) -> str:
        return f"(drop (call {self.use('proxy_log')} (i32.const {level}) {ptr} {length}))"

    def replace_header(self, name_ptr: str, name_len: str, value_ptr: str, value_len: str,
                       map_type: int = MapType.REQUEST_HEADERS) -> str:
        """Set a header to exactly one value (Envoy's ``setCopy``)."""
        fn = self.use("proxy_replace_header_map_value")
        return f"(drop (call {fn} (i32.const {map_type}) {name_ptr} {name_len} {value_ptr} {value_len}))"

    def remove_header(self, name_ptr: str, name_len: str, map_type: int = MapType.REQUEST_HEADERS) -> str:
        fn = self.use("proxy_remove_header_map_value")
        return f"(drop (call {fn} (i32.const {map_type}) {name_ptr} {name_len}))"

    def get_header(self, name_ptr: str, name_len: str, map_type: int = MapType.REQUEST_HEADERS) -> str:
        """An i32 expression: the host status (0 = present). The value is then at ``$out_ptr``,
        ``$out_len`` (globals; 0/0 when absent)."""
        fn = self.use("proxy_get_header_map_value")
        return f"(call $get_out2 (call {fn} (i32.const {map_type}) {name_ptr} {name_len} {self._out_args()}))"

    def call_foreign(self, name: str, args_ptr: str = "(i32.const 0)", args_len: str = "(i32.const 0)") -> str:
        """Call a host foreign function by name; an i32 expression giving the status. A result,
        if any, is at ``$out_ptr``/``$out_len``."""
        fn = self.use("proxy_call_foreign_function")
        seg = self.data(name)
        return f"(call $get_out2 (call {fn} {seg.ptr} {seg.len} {args_ptr} {args_len} {self._out_args()}))"

    def clear_route_cache(self) -> str:
        """Ask the host to re-select the route. ABI 0.2.x: Envoy's foreign function
        ``clear_route_cache``; ABI 0.1.0: the ABI's own ``proxy_clear_route_cache`` (what the
        proxies of that era implement; Envoy registers it only for 0.1.0 modules)."""
        if self.abi == "0.1.0":
            return f"(drop (call {self.use('proxy_clear_route_cache')}))"
        fn = self.use("proxy_call_foreign_function")
        seg = self.data("clear_route_cache")
        # no arguments, no result wanted: cpp-host writes no result for a null results pointer
        return f"(drop (call {fn} {seg.ptr} {seg.len} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))"

    def read_plugin_configuration(self, size: str = "(local.get $b)") -> str:
        """An i32 expression: the host status; the plugin configuration is then at ``$out_ptr``,
        ``$out_len`` (0/0 when the host has none). Use inside ``proxy_on_configure`` (whose
        second parameter ``$b`` is the configuration size)."""
        if self.abi == "0.1.0":
            fn = self.use("proxy_get_configuration")
            return f"(call $get_out2 (call {fn} {self._out_args()}))"
        fn = self.use("proxy_get_buffer_bytes")
        return (f"(call $get_out2 (call {fn} (i32.const {BufferType.PLUGIN_CONFIGURATION}) (i32.const 0) {size} "
                f"{self._out_args()}))")

    def get_property(self, path: list[str]) -> str:
        """An i32 expression: the host status (0 = found); the value is then at ``$out_ptr``/``$out_len``."""
        fn = self.use("proxy_get_property")
        seg = self.data("\0".join(path))
        return f"(call $get_out2 (call {fn} {seg.ptr} {seg.len} {self._out_args()}))"

    def _out_slots(self) -> Segment:
        if "out" not in self._named:
            self._named["out"] = self.reserve(8)
        return self._named["out"]

    def _out_args(self) -> str:
        """The two out-pointer arguments of a host call returning bytes; zeroes the slots first."""
        slots = self._out_slots()
        if "get_out2" not in self._named:
            self._named["get_out2"] = slots
            self.global_("out_ptr")
            self.global_("out_len")
            self.func(f"""
(func $clear_out (result i32)
  (i64.store (i32.const {slots.offset}) (i64.const 0))
  (i32.const {slots.offset}))
(func $get_out2 (param $st i32) (result i32)
  (global.set $out_ptr (i32.const 0))
  (global.set $out_len (i32.const 0))
  (if (i32.eqz (local.get $st))
    (then
      (global.set $out_ptr (i32.load (i32.const {slots.offset})))
      (if (global.get $out_ptr) (then (global.set $out_len (i32.load (i32.const {slots.offset + 4})))))))
  (local.get $st))""")
        return f"(call $clear_out) (i32.const {slots.offset + 4})"

    # -- heap ------------------------------------------------------------------------------------

    def reset_heap(self) -> str:
        """WAT instruction: free every allocation made since the last keep_heap()."""
        return "(global.set $bump (global.get $heap_base))"

    def keep_heap(self) -> str:
        """WAT instruction: make allocations so far permanent (reset_heap keeps them)."""
        return "(global.set $heap_base (global.get $bump))"

    @property
    def heap_start(self) -> int:
        end = self.data_base + len(self._data)
        return (end + 7) & ~7

    def _allocator(self) -> str:
        # alloc_align-aligned (8 by default). Memory grows when the block does not fit below its end,
        # by enough pages for the whole block, so at least one byte of memory always follows a block (a
        # generated parser may put a sentinel byte right after host-provided data) and nothing wraps;
        # 0 (not a trap) when memory cannot grow.
        align = self.alloc_align
        start = "(global.get $bump)" if align == 1 else (
            f"(i32.and (i32.add (global.get $bump) (i32.const {align - 1})) (i32.const {-align}))")
        return f"""
(func $alloc (export "{allocator_export(self.abi)}") (param $n i32) (result i32) (local $p i32)
  (if (i32.ge_u (local.get $n) (i32.sub (i32.shl (memory.size) (i32.const 16)) (local.tee $p {start})))
    (then
      ;; return 0 (branch to the function's label with a value) when memory.grow fails
      (drop (br_if 1 (i32.const 0)
                     (i32.lt_s (memory.grow (i32.add (i32.shr_u (local.get $n) (i32.const 16)) (i32.const 1)))
                               (i32.const 0))))))
  (global.set $bump (i32.add (local.get $p) (local.get $n)))
  (local.get $p))"""

    # -- output ----------------------------------------------------------------------------------

    def render(self) -> str:
        heap = self.heap_start
        pages = max(1, (heap + 0xFFFF) >> 16)
        code = "\n".join(self.functions)
        parts = ["(module", *("  " + i for i in self.imports),
                 f'  (memory (export "memory") {pages})',
                 f"  (global $bump (mut i32) (i32.const {heap}))"]
        # declared only when used (each global costs bytes in the module)
        if "$heap_base" in code:
            parts.append(f"  (global $heap_base (mut i32) (i32.const {heap}))")
        if "$heap_start" in code:
            parts.append(f"  (global $heap_start i32 (i32.const {heap}))")
        parts.extend("  " + g for g in self.globals)
        # memory starts zeroed: leading and trailing zero bytes need no data segment bytes
        body = bytes(self._data).rstrip(b"\0")
        lead = len(body) - len(body.lstrip(b"\0"))
        if body[lead:]:
            parts.append(f"  (data (i32.const {self.data_base + lead}) {wat_string(body[lead:])})")
        parts.append(self._allocator())
        parts.append(code)
        parts.extend(f'  (export "{name}" (func {sym}))' for name, sym in self.exports
                     if sym == "$alloc" and name != allocator_export(self.abi))
        parts.append(")")
        return "\n".join(parts) + "\n"

    def build(self) -> bytes:
        return assemble(self.render())


def assemble(wat: str, *, strip: bool = True) -> bytes:
    """Assemble WebAssembly text into a binary module with ``wasmtime.wat2wasm``.

    With ``strip`` (the default) custom sections (the ``name`` section of WAT symbols) are dropped:
    they are debug data only and would double the size of a small module.

    Raises :class:`WasmError` with wasmtime's own message (first lines) when the text is invalid,
    then validates the binary so a module that would not load is never returned.
    """
    try:
        import wasmtime
    except ImportError as exc:  # pragma: no cover - wasmtime is a dependency
        raise WasmError("the wasmtime package is not installed", where="assemble",
                        hint="pip install wasmtime") from exc
    try:
        binary = bytes(wasmtime.wat2wasm(wat))
        wasmtime.Module.validate(wasmtime.Engine(), binary)
    except Exception as exc:  # wasmtime raises WasmtimeError / plain Exception subclasses
        msg = " ".join(str(exc).split("\n")[:4]).strip()
        raise WasmError(f"WebAssembly text does not assemble: {msg}", where="assemble",
                        hint="this is a bug in the code generator; report it with the WAT "
                             "(ModuleBuilder.render())") from None
    return strip_custom_sections(binary) if strip else binary


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def strip_custom_sections(binary: bytes) -> bytes:
    """Drop custom sections (id 0: names, producers) from a Wasm binary."""
    if binary[:4] != b"\0asm":
        raise WasmError("not a WebAssembly binary (bad magic)", where="strip_custom_sections")
    out = bytearray(binary[:8])
    pos = 8
    while pos < len(binary):
        start = pos
        section_id = binary[pos]
        size, pos = _leb128(binary, pos + 1)
        pos += size
        if section_id != 0:
            out += binary[start:pos]
    return bytes(out)
