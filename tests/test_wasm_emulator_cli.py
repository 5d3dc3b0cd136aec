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
    assert report["request_headers"] == [["x-tag", "tagged"]]
    assert report["response_headers"] == [[":status", "200"], ["x-resp", "tagged"]]
    assert report["logs"][0] == {"level": "info", "message": '{"b": 2}'}


def test_refused_configuration_exits_1(sdk_module: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "run", str(sdk_module)]) == 1
    assert "configure: refused (proxy_on_configure returned false)" in capsys.readouterr().out


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
