"""`deploy wasmplugin`: targetRefs, vmConfig.env, match.ports and type, each checked against Istio's schema and
its CEL rules (written out in meshfilter.k8s.schema), and refused as one line when the input is wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from meshfilter import HostEmulator
from meshfilter.cli import main
from meshfilter.k8s.envoy_check import check_bootstrap, envoy_part
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import schema_errors
from meshfilter.wasm.codegen import assemble

WP = ["deploy", "wasmplugin", "--name", "p", "--namespace", "default", "--image", "registry.example.com/f/p:1"]
DATA = Path(__file__).parent / "data" / "deploy"


def _ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(args) == 0, capsys.readouterr().err
    (doc,) = load_yaml(capsys.readouterr().out)
    assert schema_errors(doc) == []
    return doc


def test_target_refs_env_ports_and_type(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _ok([*WP, "--target-ref", "Gateway/eg", "--target-ref", "Service/reviews", "--type", "NETWORK",
               "--match-port", "8080", "--match-port", "9090", "--env", "LOG=json", "--env", "EMPTY=",
               "--env-from-host", "POD_NAME", "--patch-context", "SIDECAR_INBOUND"], capsys)
    spec = doc["spec"]
    assert "selector" not in spec
    assert spec["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"},
                                  {"group": "", "kind": "Service", "name": "reviews"}]
    assert spec["match"] == [{"mode": "SERVER", "ports": [{"number": 8080}, {"number": 9090}]}]
    assert spec["type"] == "NETWORK"
    assert spec["vmConfig"] == {"env": [{"name": "LOG", "value": "json"}, {"name": "EMPTY", "value": ""},
                                        {"name": "POD_NAME", "valueFrom": "HOST"}]}
    assert list(spec) == ["targetRefs", "url", "imagePullPolicy", "match", "type", "vmConfig"]


def test_gateway_class_and_service_entry_targets(capsys: pytest.CaptureFixture[str]) -> None:
    doc = _ok([*WP, "--target-ref", "GatewayClass/istio", "--target-ref", "ServiceEntry/ext"], capsys)
    assert [(r["group"], r["kind"]) for r in doc["spec"]["targetRefs"]] == [
        ("gateway.networking.k8s.io", "GatewayClass"), ("networking.istio.io", "ServiceEntry")]


BAD = [
    (["--target-ref", "Gateway/eg", "--label", "app=a"],
     "--target-ref: --target-ref and --label cannot be combined: a WasmPlugin has either targetRefs or a selector"),
    (["--target-ref", "eg"], "--target-ref: 'eg' is not KIND/NAME"),
    (["--target-ref", "gateway/eg"], "--target-ref: 'gateway' is not a kind this resource can target "
                                     "(hint: kinds are spelled Gateway)"),
    (["--target-ref", "HTTPRoute/r"], "'HTTPRoute' is not a kind this resource can target (hint: use one of Gateway"),
    (["--target-ref", "Gateway/Bad_Name"], "--target-ref: 'Bad_Name' is not a DNS-1123 name"),
    (["--target-ref", "Gateway/a", "--target-ref", "Gateway/a"], "--target-ref: 'Gateway/a' is given twice"),
    (["--match-port", "0"], "--match-port: port 0 is out of range"),
    (["--match-port", "65536"], "--match-port: port 65536 is out of range"),
    (["--match-port", "80", "--match-port", "80"], "--match-port: port 80 is given twice"),
    (["--env", "NOEQUALS"], "--env: 'NOEQUALS' is not NAME=VALUE (hint: write --env LOG_FORMAT=json)"),
    (["--env", "=x"], "--env: '=x' is not NAME=VALUE"),
    (["--env", "A=1", "--env", "A=2"], "--env: 'A' is given twice"),
    (["--env", "A=1", "--env-from-host", "A"], "--env-from-host: 'A' is given twice (hint: give each variable once, "
                                               "inline (--env) or from the host (--env-from-host))"),
    (["--env", f"A={'x' * 2049}"], "--env: the value of A is 2049 characters, over Istio's 2048"),
    (["--env", f"{'N' * 257}=1"], "is not an environment variable name"),
    (["--env-from-host", "A=B"], "--env-from-host: 'A=B' is not an environment variable name"),
]


@pytest.mark.parametrize(("extra", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_input_is_one_line_exit_2(extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main([*WP, *extra])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("meshfilter: error: ") and "(hint:" in line
    assert expected in line, line


def test_type_is_an_enum_of_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*WP, "--type", "TCP"])
    assert info.value.code == 2 and "invalid choice: 'TCP'" in capsys.readouterr().err


def _wp() -> dict[str, Any]:
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {"name": "p"},
            "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"}],
                     "url": "oci://r.example.com/x:1", "type": "NETWORK",
                     "match": [{"mode": "CLIENT", "ports": [{"number": 80}]}],
                     "vmConfig": {"env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": "HOST"}]}}}


@pytest.mark.parametrize(("path", "value", "message"), [
    (("spec", "selector"), {"matchLabels": {"app": "a"}}, "only one of targetRefs or selector can be set"),
    (("spec", "targetRefs", 0, "namespace"), "other", "cross namespace referencing is not currently supported"),
    (("spec", "vmConfig", "env", 1, "value"), "x", "value may only be set when valueFrom is INLINE"),
    (("spec", "vmConfig", "env", 1, "name"), "A", "duplicate entry for key {'name': 'A'}"),
    (("spec", "match", 0, "ports", 0, "number"), 0, "0 is less than the minimum of 1"),
    (("spec", "match", 0, "ports"), [{"number": 80}, {"number": 80}], "duplicate entry for key {'number': 80}"),
    (("spec", "type"), "TCP", "'TCP' is not one of ['UNSPECIFIED_PLUGIN_TYPE', 'HTTP', 'NETWORK']"),
    (("spec", "vmConfig", "env", 0, "valueFrom"), "SECRET", "'SECRET' is not one of ['INLINE', 'HOST']"),
    (("spec", "targetRefs", 0, "kind"), "bad kind", "does not match"),
])
def test_schema_and_cel_rules_of_the_new_fields(path: tuple[Any, ...], value: Any, message: str) -> None:
    doc = _wp()
    assert schema_errors(doc) == []
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)
    errors = "\n".join(schema_errors(doc))
    assert message in errors, errors


def test_envoy_part_of_env_and_network() -> None:
    module = assemble((DATA / "env_headers.wat").read_text())
    (http,) = envoy_part(_wp() | {"spec": {**_wp()["spec"], "type": "HTTP"}}, module=module)
    assert http["name"] == "envoy.filters.http.wasm"
    assert http["typed_config"]["config"]["vm_config"]["environment_variables"] == {
        "host_env_keys": ["B"], "key_values": {"A": "1"}}
    (net,) = envoy_part(_wp(), module=module)
    assert net["name"] == "envoy.filters.network.wasm"
    assert net["typed_config"]["@type"].endswith("filters.network.wasm.v3.Wasm")
    boot = check_bootstrap(_wp(), module=module)
    chain = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
    assert [f["name"] for f in chain] == ["envoy.filters.network.wasm", "envoy.filters.network.tcp_proxy"]


def test_the_env_module_reads_its_environment_in_the_emulator() -> None:
    """The module of the Envoy proof (envoy-tests/test_deploy_istio_envoy.py), in the emulator."""
    module = assemble((DATA / "env_headers.wat").read_text())
    result = HostEmulator(module, root_id="env", environ={"A": "1", "B": "x=y"}).run_request([(":path", "/")])
    assert result.request_header_values("x-wasm-env") == ["A=1", "B=x=y"]
    assert HostEmulator(module, root_id="env").run_request([(":path", "/")]).request_header_values("x-wasm-env") == []
