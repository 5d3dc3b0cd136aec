"""Host functions given arbitrary arguments answer a status; they never raise in Python."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.wasm.emulator import HostEmulator

# host function -> params ("i" i32, "I" i64); all return i32
HOST = {
    "proxy_log": "iii", "proxy_get_log_level": "i", "proxy_get_property": "iiii", "proxy_set_property": "iiii",
    "proxy_get_buffer_bytes": "iiiii", "proxy_set_buffer_bytes": "iiiii", "proxy_get_buffer_status": "iii",
    "proxy_get_header_map_pairs": "iii", "proxy_set_header_map_pairs": "iii",
    "proxy_get_header_map_value": "iiiii", "proxy_add_header_map_value": "iiiii",
    "proxy_replace_header_map_value": "iiiii", "proxy_remove_header_map_value": "iii",
    "proxy_get_header_map_size": "ii", "proxy_set_effective_context": "i", "proxy_done": "",
    "proxy_call_foreign_function": "iiiiii", "proxy_send_local_response": "iiiiiiii",
    "proxy_set_tick_period_milliseconds": "i", "proxy_get_current_time_nanoseconds": "i",
    "proxy_continue_stream": "i", "proxy_close_stream": "i", "proxy_http_call": "iiiiiiiiii",
    "proxy_set_shared_data": "iiiii", "proxy_get_shared_data": "iiiii", "proxy_register_shared_queue": "iii",
    "proxy_resolve_shared_queue": "iiiii", "proxy_enqueue_shared_queue": "iii",
    "proxy_dequeue_shared_queue": "iii", "proxy_define_metric": "iiii", "proxy_increment_metric": "iI",
    "proxy_record_metric": "iI", "proxy_get_metric": "ii",
}
WASI = {"fd_write": "iiii", "environ_sizes_get": "ii", "environ_get": "ii", "args_sizes_get": "ii",
        "clock_time_get": "iIi", "random_get": "ii", "fd_fdstat_get": "ii"}
TYPES = {"i": "i32", "I": "i64"}


def _module() -> str:
    imports, funcs = [], []
    for ns, table in (("env", HOST), ("wasi_snapshot_preview1", WASI)):
        for name, params in table.items():
            ps = " ".join(f"(param {TYPES[k]})" for k in params)
            imports.append(f'(import "{ns}" "{name}" (func ${name} {ps} (result i32)))')
            args = " ".join(f"(local.get {i})" for i in range(len(params)))
            funcs.append(f'(func (export "fuzz_{name}") {ps} (result i32) (call ${name} {args}))')
    return f"""(module {" ".join(imports)}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    ;; bounded bump allocator that wraps around: never traps, may return 0 for huge sizes
    (if (i32.gt_u (local.get $n) (i32.const 16384)) (then (return (i32.const 0))))
    (if (i32.gt_u (i32.add (global.get $heap) (local.get $n)) (i32.const 65536))
      (then (global.set $heap (i32.const 32768))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  {" ".join(funcs)})"""


WAT = _module()
ALL = {**HOST, **WASI}
ARG = st.one_of(st.integers(0, 70_000), st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 7, 8, 65532, 65535]))


@pytest.fixture(scope="module")
def emu() -> HostEmulator:
    e = HostEmulator(WAT, plugin_config=b"{}", properties={"a.b": b"x"})
    assert e.start()
    ctx = e.new_http_context()
    ctx.request_headers([("a", "1"), ("b", "2")])
    e._effective = ctx.context_id  # host calls act on this stream, as if from its callbacks
    return e


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(ALL)), data=st.data())
def test_host_functions_answer_a_status_for_any_arguments(emu: HostEmulator, name: str, data: st.DataObject) -> None:
    args = [data.draw(ARG if k == "i" else st.integers(-(2**63), 2**63 - 1)) for k in ALL[name]]
    fn = emu._func("fuzz_" + name)
    assert fn is not None
    status = emu._invoke("fuzz_" + name, fn, tuple(args))
    assert isinstance(status, int) and 0 <= status <= 64
