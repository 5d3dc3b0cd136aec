"""Every host function cpp-host registers (ABI 0.2.1, env and both WASI modules), given arbitrary
arguments, answers a status; none raises in Python or crashes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.wasm import abi
from meshfilter.wasm.emulator import HostEmulator

TYPES = {"i": "i32", "I": "i64"}
HOST = {(f.module, f.name): f.signature for f in abi.host_functions("0.2.1").values()
        if f.name not in ("proc_exit", "proxy_done")}  # no status: tested in test_wasm_emulator
NAMES = {key: f"fuzz_{key[0]}_{key[1]}" for key in HOST}


def _module() -> str:
    imports, funcs = [], []
    for (mod, name), sig in HOST.items():
        ps = " ".join(f"(param {TYPES[k]})" for k in sig.params)
        rs = " ".join(f"(result {TYPES[k]})" for k in sig.results)
        fid = f"${mod}_{name}"
        imports.append(f'(import "{mod}" "{name}" (func {fid} {ps} {rs}))')
        args = " ".join(f"(local.get {i})" for i in range(len(sig.params)))
        body = f"(call {fid} {args})" + ("" if sig.results else " (i32.const 0)")
        funcs.append(f'(func (export "{NAMES[(mod, name)]}") {ps} (result i32) {body})')
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
ARG = st.one_of(st.integers(0, 70_000), st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2, 7, 8, 65532, 65535]))


def test_the_fuzz_module_covers_every_host_function() -> None:
    assert len(HOST) == len(abi.host_functions("0.2.1")) - 3  # proxy_done; proc_exit in both WASI modules
    assert ("wasi_snapshot_preview1", "fd_fdstat_set_flags") in HOST and ("env", "proxy_grpc_stream") in HOST


@pytest.fixture(scope="module")
def emu() -> HostEmulator:
    e = HostEmulator(WAT, plugin_config=b"{}", properties={"a.b": b"x"}, clusters=["c"])
    assert e.start()
    ctx = e.new_http_context()
    ctx.request_headers([("a", "1"), ("b", "2")])
    e.set_effective_context(ctx.context_id)  # host calls act on this stream, as if from its callbacks
    return e


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(sorted(HOST)), data=st.data())
def test_host_functions_answer_a_status_for_any_arguments(emu: HostEmulator, key: tuple[str, str],
                                                          data: st.DataObject) -> None:
    args = [data.draw(ARG if k == "i" else st.integers(-(2**63), 2**63 - 1)) for k in HOST[key].params]
    status = emu.call_export(NAMES[key], *args)
    assert isinstance(status, int) and 0 <= status <= 76
