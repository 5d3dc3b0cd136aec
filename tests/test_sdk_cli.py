"""`meshfilter wasm build python`, `meshfilter lua build` and `meshfilter new`: thin, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.k8s.schema import validate_resource
from meshfilter.sdk import examples
from meshfilter.sdk.checker import check_file
from meshfilter.wasm.emulator import HostEmulator

TWO = '''from meshfilter.sdk import HttpFilter, Request


class First(HttpFilter):
    def on_request_headers(self, request: Request) -> None:
        request.headers.set("x-which", "first")


class Second(HttpFilter):
    def on_request_headers(self, request: Request) -> None:
        request.headers.set("x-which", "second")
'''


def test_wasm_build_python(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tag.wasm"
    assert main(["wasm", "build", "python", str(examples.path("gateway-tag")), "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\0asm"
    assert "GatewayTag: on_request_headers, configure" in capsys.readouterr().err
    emu = HostEmulator(out.read_bytes(), plugin_config="{}")
    assert emu.run_request([("user-agent", "iPhone13")]).request_header("x-asm-prefer-tag") == "version-gray"
    assert main(["wasm", "build", "python", str(examples.path("gateway-tag")), "--abi", "0.1.0", "-o", str(out)]) == 0
    assert HostEmulator(out.read_bytes()).abi_version == "0.1.0"
    wat = tmp_path / "tag.wat"
    assert main(["wasm", "build", "python", str(examples.path("gateway-tag")), "--wat", "-o", str(wat)]) == 0
    assert wat.read_text().startswith("(module")


def test_wasm_build_python_chooses_the_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "two.py"
    src.write_text(TWO)
    out = tmp_path / "x.wasm"
    assert main(["wasm", "build", "python", str(src), "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"meshfilter: error: FILE.py[:Class]: {src} defines 2 filter classes "
                                               f"(hint: choose one: {src}:First)")
    assert main(["wasm", "build", "python", f"{src}:Second", "-o", str(out)]) == 0
    assert HostEmulator(out.read_bytes()).run_request([]).request_header("x-which") == "second"


def test_wasm_build_python_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "build", "python", str(tmp_path / "missing.py"), "-o", str(tmp_path / "x.wasm")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "Traceback" not in err
    assert main(["wasm", "build", "python", str(examples.path("api-key"))]) == 2
    assert "no output file given (hint: add -o FILE.wasm" in capsys.readouterr().err


def test_lua_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "key.lua"
    assert main(["lua", "build", str(examples.path("api-key")), "--config", '{"keys": ["k"]}', "-o", str(out)]) == 0
    assert "function envoy_on_request(h)" in out.read_text()
    assert main(["lua", "build", str(examples.path("api-key")), "--config", '{"keys": "k"}', "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == ('meshfilter: error: --config: keys is not a list of strings (hint: '
                                               'expected a JSON object like {"keys": ["a", "b"]})')


def test_lua_build_envoyfilter(tmp_path: Path) -> None:
    out = tmp_path / "ef.yaml"
    assert main(["lua", "build", str(examples.path("api-key")), "--config", '{"keys": ["k"]}', "--envoyfilter",
                 "--namespace", "edge", "-o", str(out)]) == 0
    (doc,) = yaml.safe_load_all(out.read_text())
    validate_resource(doc)  # strict Istio CRD schema
    assert doc["kind"] == "EnvoyFilter" and doc["metadata"] == {"name": "api-key-check", "namespace": "edge"}
    script = doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"]
    assert "function envoy_on_request(h)" in script


def test_new_writes_a_project_that_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "my-canary", "--dir", str(tmp_path)]) == 0
    project = tmp_path / "my-canary"
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "config.json", "filter.py", "test_filter.py"]
    program = check_file(project / "filter.py")
    assert program.class_name == "MyCanary" and program.root_id == "my_canary"
    assert program.callbacks == ("on_request_headers", "on_response_headers")
    compile(project.joinpath("test_filter.py").read_text(), "test_filter.py", "exec")
    assert "cd " in capsys.readouterr().err
    assert main(["new", "my-canary", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["new", "9lives", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("meshfilter: error: NAME: '9lives' is not a usable filter name (hint: "
                                               "use letters, digits, - and _, starting with a letter, e.g. canary)")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # nothing half-written left behind


def test_wasm_run_takes_the_built_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    out = tmp_path / "key.wasm"
    assert main(["wasm", "build", "python", str(examples.path("api-key")), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["wasm", "run", str(out), "--config", '{"keys": ["k-1"]}', "--header", ":path=/x",
                 "--header", "x-api-key=k-1", "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert ran["configured"] and ran["local_response"] is None
    assert ["x-api-key", "k-1"] not in ran["request_headers"]  # the key is removed before going upstream
    assert main(["wasm", "run", str(out), "--config", '{"keys": ["k-1"]}', "--header", ":path=/x", "--json"]) == 0
    refused = json.loads(capsys.readouterr().out)
    assert refused["request_action"] == "pause" and refused["local_response"]["status"] == 401
    assert main(["wasm", "run", str(out), "--config", '{"keys": 7}']) == 1
    assert "[error] api-key-check: keys is not a list of strings" in capsys.readouterr().out
