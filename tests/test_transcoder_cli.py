"""`meshfilter transcoder`: grpc-transcoder's flags verbatim and hyphenated, errors, outputs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.examples.landing import descriptor_set, proto_text
from meshfilter.k8s.schema import schema_errors

SEED = ["--version", "1.7", "--service_port", "9996", "--service_name", "grpc-server-svc",
        "--proto_pkg", "org.feuyeux.grpc", "--proto_svc", "LandingService"]
HYPHENATED = ["--version", "1.7", "--service-port", "9996", "--service-name", "grpc-server-svc",
              "--proto-pkg", "org.feuyeux.grpc", "--proto-svc", "LandingService"]
SHORT = ["-v", "1.7", "-p", "9996", "-s", "grpc-server-svc", "--proto_pkg", "org.feuyeux.grpc",
         "--proto_svc", "LandingService"]


@pytest.fixture
def descriptor(tmp_path: Path) -> Path:
    p = tmp_path / "landing.proto-descriptor"
    p.write_bytes(descriptor_set())
    return p


@pytest.fixture
def proto(tmp_path: Path) -> Path:
    p = tmp_path / "landing.proto"
    p.write_text(proto_text(), encoding="utf-8")
    return p


def run(tmp_path: Path, *argv: str) -> tuple[int, str]:
    out = tmp_path / "out.yaml"
    if out.exists():
        out.unlink()
    rc = main(["transcoder", *argv, "-o", str(out)])
    return rc, out.read_text() if out.exists() else ""


def test_seed_invocation(tmp_path: Path, descriptor: Path) -> None:
    rc, text = run(tmp_path, *SEED, "--descriptor", str(descriptor))
    assert rc == 0
    doc = yaml.safe_load(text)
    value = doc["spec"]["configPatches"][0]["patch"]["value"]
    assert value["name"] == "envoy.grpc_json_transcoder"
    assert value["typed_config"]["services"] == ["org.feuyeux.grpc.LandingService"]
    assert base64.b64decode(value["typed_config"]["proto_descriptor_bin"]) == descriptor.read_bytes()
    assert doc["spec"]["configPatches"][0]["match"]["proxy"]["proxyVersion"] == r"^1\.7.*"
    assert schema_errors(doc) == []


@pytest.mark.parametrize("flags", [HYPHENATED, SHORT], ids=["hyphenated", "short"])
def test_other_spellings_give_identical_output(tmp_path: Path, descriptor: Path, flags: list[str]) -> None:
    _, verbatim = run(tmp_path, *SEED, "--descriptor", str(descriptor))
    rc, other = run(tmp_path, *flags, "-d", str(descriptor))
    assert rc == 0 and other == verbatim


def test_proto_input_equals_descriptor_input(tmp_path: Path, proto: Path, descriptor: Path) -> None:
    _, from_desc = run(tmp_path, *SEED, "--descriptor", str(descriptor))
    rc, from_proto = run(tmp_path, *SEED, "--proto", str(proto), "-I", str(proto.parent))
    assert rc == 0
    assert from_proto == from_desc


def test_header_emits_companion_envoyfilter(tmp_path: Path, descriptor: Path) -> None:
    rc, text = run(tmp_path, *SEED, "--descriptor", str(descriptor), "--header", "x-user=user,x-b=b",
                   "--header", "x-c=c")
    assert rc == 0
    docs = list(yaml.safe_load_all(text))
    assert [d["metadata"]["name"] for d in docs] == ["grpc-transcoder-grpc-server-svc",
                                                     "header-to-metadata-grpc-server-svc"]
    rules = docs[1]["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["request_rules"]
    assert [(r["header"], r["on_header_present"]["key"]) for r in rules] == [
        ("x-b", "b"), ("x-c", "c"), ("x-user", "user")]
    assert all(schema_errors(d) == [] for d in docs)


def test_header_without_equals_is_one_line_exit_2(tmp_path: Path, descriptor: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = run(tmp_path, *SEED, "--descriptor", str(descriptor), "--header", "x-user")
    err = capsys.readouterr().err
    assert rc == 2 and text == ""
    assert err.count("\n") == 1 and "'x-user' has no '='" in err and "--header" in err


@pytest.mark.parametrize(("argv", "code", "needle"), [
    ([], 2, "give exactly one of --descriptor FILE or --proto FILE.proto"),
    (["--version", "latest"], 2, "--version: version 'latest' is not MAJOR.MINOR"),
    (["--context", "SIDECAR_OUTBOUND"], 2, "is not a supported patch context"),
    (["--service_port", "70000"], 2, "port 70000 is out of range"),
    (["--descriptor", "/nonexistent/x.pb"], 2, "descriptor file '/nonexistent/x.pb' does not exist"),
    (["--selector", "bad label=x", "--descriptor", "DESC"], 2, "--selector"),
    (["--proto_svc", "Nope", "--descriptor", "DESC"], 1, "available services: org.feuyeux.grpc.LandingService"),
    (["--max-request-body-size", "0", "--descriptor", "DESC"], 2, "max_request_body_size must be between"),
    (["--envoy-config", "--grpc-server", "nope", "--descriptor", "DESC"], 2, "'nope' is not HOST:PORT"),
])
def test_errors_are_one_line_with_exit_code(tmp_path: Path, descriptor: Path, capsys: pytest.CaptureFixture[str],
                                            argv: list[str], code: int, needle: str) -> None:
    argv = [str(descriptor) if a == "DESC" else a for a in argv]
    rc, text = run(tmp_path, *argv)
    err = capsys.readouterr().err
    assert rc == code, err
    assert text == ""
    assert err.startswith("meshfilter: error: ") and err.count("\n") == 1
    assert needle in err, err


def test_compile_error_gives_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nservice S {\n  rpc X (A) returns (A);\n}\n')
    rc, _ = run(tmp_path, "--proto", str(bad))
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert f"{bad}:3: " in err and '"A" is not defined' in err


def test_unannotated_methods_warn_unless_auto_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "plain.proto"
    p.write_text('syntax = "proto3";\npackage acme;\nmessage M { string a = 1; }\n'
                 'service Plain { rpc Get (M) returns (M); }\n')
    rc, text = run(tmp_path, "--proto", str(p))
    err = capsys.readouterr().err
    assert rc == 0 and text
    assert "meshfilter: warning: acme.Plain.Get has no google.api.http annotation" in err
    assert "--auto-mapping" in err
    rc, text = run(tmp_path, "--proto", str(p), "--auto-mapping")
    assert rc == 0 and "warning" not in capsys.readouterr().err
    assert yaml.safe_load(text)["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["auto_mapping"]


def test_option_flags_reach_the_typed_config(tmp_path: Path, descriptor: Path) -> None:
    rc, text = run(tmp_path, "-d", str(descriptor), "--filter-name", "modern", "--no-add-whitespace",
                   "--preserve_proto_field_names", "--always-print-enums-as-ints", "--convert_grpc_status",
                   "--reject-unknown-method", "--reject-unknown-query-parameters",
                   "--reject-binding-body-field-collisions", "--ignored-query-parameters", "key,alt",
                   "--ignored_query_parameters", "fields", "--ignore-unknown-query-parameters",
                   "--max-request-body-size", "1048576", "--max_response_body_size", "2097152",
                   "--stream-newline-delimited", "--context", "SIDECAR_INBOUND", "--selector", "app=grpc-server",
                   "--namespace", "grpc-best")
    assert rc == 0
    doc = yaml.safe_load(text)
    value = doc["spec"]["configPatches"][0]["patch"]["value"]
    tc = value["typed_config"]
    assert value["name"] == "envoy.filters.http.grpc_json_transcoder"
    assert tc["print_options"] == {"add_whitespace": False, "always_print_primitive_fields": True,
                                   "always_print_enums_as_ints": True, "preserve_proto_field_names": True,
                                   "stream_newline_delimited": True}
    assert tc["request_validation_options"] == {"reject_unknown_method": True,
                                                "reject_unknown_query_parameters": True,
                                                "reject_binding_body_field_collisions": True}
    assert tc["convert_grpc_status"] is True and tc["ignore_unknown_query_parameters"] is True
    assert tc["ignored_query_parameters"] == ["key", "alt", "fields"]
    assert (tc["max_request_body_size"], tc["max_response_body_size"]) == (1048576, 2097152)
    assert doc["spec"]["workloadSelector"]["labels"] == {"app": "grpc-server"}
    assert doc["metadata"]["namespace"] == "grpc-best"
    assert schema_errors(doc) == []


def test_envoy_config_is_a_standalone_bootstrap(tmp_path: Path, descriptor: Path) -> None:
    rc, text = run(tmp_path, "-d", str(descriptor), "--envoy-config", "--grpc-server", "127.0.0.1:9996",
                   "--listen", "127.0.0.1:8080", "--format", "json")
    assert rc == 0
    boot = json.loads(text)
    (listener,) = boot["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["envoy.filters.http.grpc_json_transcoder", "envoy.filters.http.router"]
    (cluster,) = boot["static_resources"]["clusters"]
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 9996}}
    opts = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in opts["explicit_http_config"]


def test_envoy_config_defaults_to_the_service_dns_name(tmp_path: Path, descriptor: Path) -> None:
    rc, text = run(tmp_path, *SEED, "-d", str(descriptor), "--envoy-config")
    assert rc == 0
    boot = yaml.safe_load(text)
    (cluster,) = boot["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] == {
        "socket_address": {"address": "grpc-server-svc", "port_value": 9996}}


def test_large_descriptor_set_of_all_googleapis_common_protos(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from meshfilter.transcoder.compile import compile_protos, googleapis_include, googleapis_protos

    big = tmp_path / "googleapis.pb"
    big.write_bytes(compile_protos(googleapis_protos(), [googleapis_include()]))
    rc, text = run(tmp_path, "-d", str(big), "--proto_pkg", "google.longrunning")
    assert rc == 0
    doc = yaml.safe_load(text)
    assert doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["services"] == [
        "google.longrunning.Operations"]
    assert schema_errors(doc) == []
    assert "--server-side" in capsys.readouterr().err  # > 256 KiB: client-side apply would fail
