"""`meshfilter wasm run`: the emulator from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime
from tests.test_wasm_emulator import SDK_LIKE, TRAPS

from meshfilter.cli import main


@pytest.fixture()
def sdk_module(tmp_path: Path) -> Path:
    path = tmp_path / "sdk.wasm"
    path.write_bytes(wasmtime.wat2wasm(SDK_LIKE))
    return path


def test_run_prints_headers_and_logs(sdk_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["wasm", "run", str(sdk_module), "--config", '{"a": 1}', "--root-id", "r1",
               "--header", "user-agent=curl/8", "--header", "x-tag=one", "--header", "x-tag=two"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "configure: ok" in out
    assert "request headers:\n  user-agent: curl/8\n  x-seen: curl/8\n  x-tag: tagged\n" in out
    assert "  [info] {\"a\": 1}" in out and "  [debug] r1" in out and "  [error] tagged" in out
    assert "foreign calls: clear_route_cache" in out


def test_run_json_and_config_file(sdk_module: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"b": 2}')
    rc = main(["wasm", "run", str(sdk_module), "--config", f"@{cfg}", "--json",
               "--response-header", ":status=200"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert report["configured"] is True
    # no --header: GET / with the pseudo-headers every request has in Envoy (never an empty map)
    assert report["request_headers"] == [[":authority", "localhost"], [":path", "/"], [":method", "GET"],
                                         [":scheme", "http"], ["x-tag", "tagged"]]
    assert report["response_headers"] == [[":status", "200"], ["x-resp", "tagged"]]
    assert report["logs"][0] == {"level": "info", "message": '{"b": 2}'}


def test_refused_configuration_exits_1(sdk_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "run", str(sdk_module)]) == 1
    assert "configure: refused (proxy_on_configure returned false)" in capsys.readouterr().out


def test_without_headers_a_tinygo_module_sees_a_request_as_envoy_gives_it(capsys: pytest.CaptureFixture[str]) -> None:
    # the 2020 TinyGo SDK panics on an empty header map, which Envoy never hands a filter
    module = Path(__file__).resolve().parents[2] / "shared" / "wasm-corpus" / "tinygo_2020_http_headers.wasm"
    if not module.is_file():
        pytest.skip(f"the shared wasm corpus is not at {module.parent}")
    assert main(["wasm", "run", str(module), "--root-id", "my_root_id"]) == 0
    out = capsys.readouterr().out
    assert "  [info] request header: :method: GET" in out and "  [info] request header: :path: /" in out


def test_bad_header_flag_is_a_usage_error(sdk_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "run", str(sdk_module), "--header", "no-equals"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--header 'no-equals' is not name=value" in err


def test_trap_is_one_line_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trap.wasm"
    path.write_bytes(wasmtime.wat2wasm(TRAPS))
    assert main(["wasm", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "proxy_on_request_headers trapped" in err


def test_missing_module_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "run", str(tmp_path / "nope.wasm")]) == 1
    assert "cannot read module" in capsys.readouterr().err


# -- new flags, check, TCP ---------------------------------------------------------------------------------

def _wat_file(tmp_path: Path, wat: str, name: str = "m.wasm") -> Path:
    path = tmp_path / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return path


def test_run_http_call_response_cluster_and_local_reply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.wasm_modules import http_call_module

    path = _wat_file(tmp_path, http_call_module())
    rc = main(["wasm", "run", str(path), "--cluster", "auth", "--http-call-response", "200:deny",
               "--header", ":path=/", "--response-header", ":status=200"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "http calls:\n  4: auth /check (answered)\n" in out
    assert "local response: 403\nlocal response body: 'denied'" in out  # no trailing space without details
    assert "  [info] body=deny" in out


def test_run_json_has_calls_metrics_and_shared_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.wasm_modules import queue_timer_metrics_module

    path = _wat_file(tmp_path, queue_timer_metrics_module())
    assert main(["wasm", "run", str(path), "--json", "--header", "a=1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metrics"] == {"ticks": 0, "depth": 7, "sizes": 1}
    assert report["shared_data"] == {"seen": "yes"}
    assert report["http_calls"] == [] and report["grpc_calls"] == []


def test_run_property_body_trailer_and_vm_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.wasm_modules import property_probe_module

    path = _wat_file(tmp_path, property_probe_module(("my.key", "plugin_vm_id", "n")))
    rc = main(["wasm", "run", str(path), "--property", "my.key=v", "--property", "n=7", "--vm-id", "vm7",
               "--body", "hello", "--trailer", "t=1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["request_body"] == "hello"
    logs = [r["message"].replace("\0", ".") for r in report["logs"]]
    assert "Qmy.key=0:76" in logs  # the property the test set, seen by the module
    assert "Qplugin_vm_id=0:766d37" in logs  # "vm7"
    assert "Qn=0:0700000000000000" in logs  # an integer, as Envoy serializes it


def test_bad_http_call_response_is_a_usage_error(sdk_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "run", str(sdk_module), "--http-call-response", "ok"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--http-call-response 'ok' is not STATUS:BODY" in err


def test_run_tcp_connection(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.wasm_modules import TCP_FILTER

    assert main(["wasm", "run", str(TCP_FILTER), "--downstream-data", "ping", "--upstream-data", "pong"]) == 0
    out = capsys.readouterr().out
    assert "new connection: continue\nto upstream: 'to-upstream:pingto-upstream:'\n" in out
    assert "to client: 'to-client:pongto-client:'" in out
    assert "  [info] upstream close peer=0\n  [info] downstream data: \n  [info] downstream close peer=2" in out


def test_check_ok_and_refused(sdk_module: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "check", str(sdk_module)]) == 0
    assert "ok (proxy-wasm ABI 0.2.1, 10 imports; Envoy 1.40 loads it)" in capsys.readouterr().out
    bad = _wat_file(tmp_path, """(module (import "env" "proxy_nope" (func)) (memory (export "memory") 1)
      (func (export "malloc") (param i32) (result i32) (i32.const 0)) (func (export "proxy_abi_version_0_1_0"))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))""")
    assert main(["wasm", "check", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{bad}: Failed to load Wasm module due to a missing import: env.proxy_nope",
                     f"{bad}: Bad function signature for: proxy_on_request_headers, want: i32 i32 -> i32, but "
                     "the module exports: i32 i32 i32 -> i32"]
    assert main(["wasm", "check", str(bad), "--json"]) == 1
    assert [p["kind"] for p in json.loads(capsys.readouterr().out)["problems"]] == ["import", "signature"]
