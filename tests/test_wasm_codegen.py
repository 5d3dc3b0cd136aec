"""The WAT code generation library: builder, ABI tables, allocator, assembly errors."""

from __future__ import annotations

import pytest
import wasmtime

from meshfilter.errors import WasmError
from meshfilter.wasm.codegen import (
    LogLevel,
    ModuleBuilder,
    abi_marker,
    allocator_export,
    assemble,
    callback_signature,
    strip_custom_sections,
    wat_string,
)


def _instance(binary: bytes, imports: dict[str, object] | None = None) -> tuple[wasmtime.Store, dict]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module(engine, binary)
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()
    for imp in module.imports:
        ft = imp.type
        assert isinstance(ft, wasmtime.FuncType)
        fn = (imports or {}).get(imp.name, lambda *a: 0)
        linker.define_func(imp.module, imp.name, wasmtime.FuncType(ft.params, [i32]), fn)
    inst = linker.instantiate(store, module)
    return store, {e.name: inst.exports(store)[e.name] for e in module.exports}


def test_assemble_returns_a_valid_stripped_binary() -> None:
    binary = assemble('(module (func $named (export "f") (result i32) (i32.const 7)))')
    assert binary[:4] == b"\0asm"
    assert b"named" not in binary  # the name section is stripped
    store, ex = _instance(binary)
    assert ex["f"](store) == 7
    assert b"named" in assemble('(module (func $named (export "f")))', strip=False)


def test_assemble_error_is_one_clear_wasm_error() -> None:
    with pytest.raises(WasmError) as err:
        assemble("(module (func (i32.add)))")
    line = err.value.line()
    assert "does not assemble" in line and "\n" not in line
    with pytest.raises(WasmError, match="does not assemble"):
        assemble("(module (fnuc))")


def test_strip_refuses_non_wasm() -> None:
    with pytest.raises(WasmError, match="bad magic"):
        strip_custom_sections(b"not wasm")


@pytest.mark.parametrize("abi", ["0.2.1", "0.2.0", "0.1.0"])
def test_builder_exports_abi_marker_memory_and_allocator(abi: str) -> None:
    mb = ModuleBuilder(abi)
    mb.callback("proxy_on_configure", "(i32.const 1)")
    store, ex = _instance(mb.build())
    assert set(ex) == {abi_marker(abi), "memory", allocator_export(abi), "proxy_on_configure"}
    assert allocator_export(abi) == ("malloc" if abi == "0.1.0" else "proxy_on_memory_allocate")
    assert ex["proxy_on_configure"](store, 1, 0) == 1


def test_callback_signatures_follow_the_abi() -> None:
    assert callback_signature("proxy_on_request_headers", "0.1.0").count("(param") == 2
    assert callback_signature("proxy_on_request_headers", "0.2.1").count("(param") == 3
    assert "result" not in callback_signature("proxy_on_context_create", "0.2.1")
    with pytest.raises(WasmError, match="unknown proxy-wasm callback"):
        callback_signature("proxy_on_nothing", "0.2.1")


def test_unknown_abi_and_wrong_abi_host_functions_are_refused() -> None:
    with pytest.raises(WasmError, match="unsupported proxy-wasm ABI"):
        ModuleBuilder("0.3.0")
    with pytest.raises(WasmError, match="does not exist in proxy-wasm ABI 0.2.1"):
        ModuleBuilder("0.2.1").use("proxy_get_configuration")
    with pytest.raises(WasmError, match="does not exist in proxy-wasm ABI 0.1.0"):
        ModuleBuilder("0.1.0").use("proxy_continue_stream")
    with pytest.raises(WasmError, match="unknown host function"):
        ModuleBuilder().use("proxy_frobnicate")


def test_data_is_deduplicated_and_aligned() -> None:
    mb = ModuleBuilder()
    a = mb.data("hello")
    assert mb.data(b"hello") == a
    b = mb.data(b"\x01\x02", align=8)
    assert b.offset % 8 == 0 and b.offset >= a.offset + 5
    assert wat_string(b'a"\\\n\xff') == '"a\\22\\5c\\0a\\ff"'


def test_allocator_grows_memory_and_never_traps() -> None:
    mb = ModuleBuilder()
    mb.export_func("reset", f"(func {mb.reset_heap()})")
    store, ex = _instance(mb.build())
    alloc, mem = ex["proxy_on_memory_allocate"], ex["memory"]
    first = alloc(store, 10)
    assert first > 0 and first % 8 == 0
    assert alloc(store, 10) == first + 16
    big = alloc(store, 200_000)
    assert big > 0 and mem.data_len(store) >= big + 200_000
    assert alloc(store, 0xFFFF_FFF0) == 0  # impossible: 0, not a trap
    ex["reset"](store)
    assert alloc(store, 10) == first  # reset frees everything since the last keep


def test_snippets_declare_their_imports_and_call_the_host() -> None:
    calls: list[tuple] = []
    for abi in ("0.2.1", "0.1.0"):
        mb = ModuleBuilder(abi)
        mb.callback("proxy_on_request_headers", f"""
  {mb.log(LogLevel.ERROR, "boom")}
  {mb.replace_header(mb.data("k").ptr, "(i32.const 1)", mb.data("v").ptr, "(i32.const 1)")}
  {mb.clear_route_cache()}
  (i32.const 0)""")
        wat = mb.render()
        if abi == "0.1.0":
            assert '"proxy_clear_route_cache"' in wat and "proxy_call_foreign_function" not in wat
        else:
            assert '"proxy_call_foreign_function"' in wat and "clear_route_cache" in wat
        store, ex = _instance(mb.build(), {
            "proxy_log": lambda lvl, p, n: calls.append(("log", lvl, n)) or 0,
            "proxy_replace_header_map_value": lambda t, kp, kn, vp, vn: calls.append(("replace", t, kn, vn)) or 0,
            "proxy_call_foreign_function": lambda *a: calls.append(("foreign", a[1])) or 0,
            "proxy_clear_route_cache": lambda: calls.append(("clear",)) or 0,
        })
        args = (1, 0) if abi == "0.1.0" else (1, 0, 1)
        assert ex["proxy_on_request_headers"](store, *args) == 0
    assert calls == [("log", 4, 4), ("replace", 0, 1, 1), ("foreign", len("clear_route_cache")),
                     ("log", 4, 4), ("replace", 0, 1, 1), ("clear",)]


def test_data_reuses_substrings_but_never_scratch_space() -> None:
    mb = ModuleBuilder()
    scratch = mb.reserve(4)
    whole = mb.data("clear_route_cache")
    assert mb.data("route") == type(whole)(whole.offset + len("clear_"), 5)  # inside a longer string
    assert mb.data(b"\0\0") != scratch and not scratch.offset <= mb.data(b"\0\0").offset < scratch.offset + 4


def test_zero_bytes_at_either_end_of_data_cost_nothing() -> None:
    def size(lead: int, tail: int) -> int:
        mb = ModuleBuilder()
        mb.reserve(lead)
        mb.data("x")
        mb.reserve(tail)
        return len(mb.build())

    # (a byte or two for longer address constants, not the 64 or 300 zero bytes)
    assert size(64, 0) - size(0, 0) <= 4 and size(0, 300) - size(0, 0) <= 4
    mb = ModuleBuilder()
    slots = mb.reserve(8)
    text = mb.data("abc")
    store, ex = _instance(mb.build())
    mem = ex["memory"].data_ptr(store)
    assert bytes(mem[text.offset:text.offset + 3]) == b"abc"  # placed where its Segment says
    assert bytes(mem[slots.offset:slots.offset + 8]) == bytes(8)


def test_abi_marker_is_an_alias_and_unused_heap_globals_are_left_out() -> None:
    mb = ModuleBuilder()
    mb.callback("proxy_on_request_headers", "(i32.const 0)")
    wat = mb.render()
    assert '(export "proxy_abi_version_0_2_1" (func $alloc))' in wat
    assert "$heap_base" not in wat and "$heap_start" not in wat
    mb.callback("proxy_on_configure", f"{mb.reset_heap()} (i32.const 1)")
    assert "(global $heap_base" in mb.render()
