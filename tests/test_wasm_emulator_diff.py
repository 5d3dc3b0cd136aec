"""wasm diff's pure parts: reading Envoy's log, naming a refusal, comparing two observations."""

from __future__ import annotations

from meshfilter.wasm.emulator.diff import Observation, _differences, _refusal, _wasm_lines, parse_envoy_log

LOG = """[2026-12-02 05:19:03.956][21500][info][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log: hello
[2026-12-02 05:19:03.956][21500][error][wasm] [source/extensions/common/wasm/wasm_vm.cc:38] Function: _start failed: \
Uncaught Error: restricted_callback
Proxy-Wasm plugin in-VM backtrace:
  0:  0xab - f2
[2026-12-02 05:19:03.956][21500][error][wasm] [source/extensions/common/wasm/wasm.cc:104] Wasm VM failed Failed to \
initialize Wasm code
[2026-12-02 05:19:04.001][21500][trace][wasm] [source/extensions/common/wasm/wasm_vm.cc:39] [host->vm] \
proxy_on_log(2)
[2026-12-02 05:19:04.002][21500][warning][wasm] [source/extensions/common/wasm/context.cc:1151] wasm log r1 r1 r1: a: b
"""


def test_envoy_log_records_join_continuation_lines() -> None:
    records = parse_envoy_log(LOG)
    assert [r[0] for r in records] == ["info", "error", "error", "trace", "warning"]
    assert records[1][2].endswith("backtrace:\n  0:  0xab - f2")
    logs, callbacks = _wasm_lines(records)
    assert logs == [("info", "hello"), ("warn", "a: b")]  # "wasm log <plugin> <root> <vm>: " goes
    assert callbacks == ["proxy_on_log(2)"]


def test_refusal_is_envoys_first_wasm_failure() -> None:
    assert _refusal(parse_envoy_log(LOG)) == ("Function: _start failed: Uncaught Error: restricted_callback\n"
                                              "Proxy-Wasm plugin in-VM backtrace:\n  0:  0xab - f2")
    vm_failed = ("[2026-12-02 05:41:00.783][1][error][wasm] [x.cc:1] Wasm VM failed Missing or unknown "
                 "Proxy-Wasm ABI version")
    assert _refusal(parse_envoy_log(vm_failed)) == "Missing or unknown Proxy-Wasm ABI version"


def test_differences_name_what_differs() -> None:
    same = Observation(upstream_headers=[("a", "1")], request_logs=[("info", "x")])
    assert _differences(same, Observation(upstream_headers=[("a", "1")], request_logs=[("info", "x")])) == []
    other = Observation(upstream_headers=[("a", "2")], request_logs=[("info", "y")])
    assert [d.split(":")[0] for d in _differences(same, other)] == ["upstream headers", "request logs"]
    trap = "Function: f failed: Uncaught RuntimeError: unreachable\nProxy-Wasm plugin in-VM backtrace:\n  0:  0x15 - g"
    assert _differences(Observation(refused=trap), Observation(refused=trap.replace("0x15", "0x16"))) == []
    assert _differences(Observation(refused="x"), Observation())[0].startswith("refused: envoy x; emulator no")
