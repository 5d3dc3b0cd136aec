"""The emulator on a module built with a real proxy-wasm SDK (AssemblyScript, tests/data/wasm_sdk)."""

from __future__ import annotations

from pathlib import Path

from meshfilter.wasm.emulator import Action, HostEmulator

AS_FILTER = Path(__file__).parent / "data" / "wasm_sdk" / "as_filter.wasm"


def test_assemblyscript_sdk_filter_runs_a_full_stream() -> None:
    emu = HostEmulator(AS_FILTER, root_id="as_tag", plugin_config=b"gray")
    assert emu.abi_version == "0.2.0"
    assert emu.start() is True
    assert "context id: 1: Updating this.configuration=gray" in emu.logs_at("debug")
    res = emu.run_request([(":path", "/"), ("user-agent", "curl/8"), ("x-as-tag", "mine"), ("x-as-tag", "2")],
                          response_headers=[(":status", "200")])
    assert res.request_action is Action.CONTINUE
    assert res.request_headers == [(":path", "/"), ("user-agent", "curl/8"), ("x-as-seen", "curl/8"),
                                   ("x-as-tag", "gray")]
    assert res.response_action is Action.CONTINUE
    assert res.response_headers == [(":status", "200"), ("hello", "world!")]
    assert [r.message for r in res.logs if r.level == "info"] == ["as-filter saw curl/8"]
    # the SDK's own lifecycle, in Envoy 1.40's order (measured): log, done, delete
    assert [r.message for r in res.logs][-3:] == ["context id: 2: onLog()", "context id: 2: onDone()",
                                                   "context id: 2: onDelete()"]


def test_assemblyscript_sdk_filter_serves_many_requests() -> None:
    emu = HostEmulator(AS_FILTER, root_id="as_tag", plugin_config=b"v")
    for i in range(200):
        res = emu.run_request([("user-agent", f"ua-{i}")])
        assert res.request_header("x-as-seen") == f"ua-{i}"
    assert emu.logs_at("error") == []
