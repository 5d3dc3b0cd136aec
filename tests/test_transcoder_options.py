"""`meshfilter transcoder`: every GrpcJsonTranscoder option as a flag (both spellings), --descriptor-path with its
ConfigMap and gateway annotations, and the input checks `deploy` does (service name, namespace, headers)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.examples.landing import descriptor_set
from meshfilter.k8s.schema import schema_errors
from meshfilter.transcoder import config as cfg
from meshfilter.transcoder import envoyfilter as efm

OPTION_FLAGS = [  # (flag, the typed_config it sets)
    ("match_incoming_request_route", {"match_incoming_request_route": True}),
    ("query_param_unescape_plus", {"query_param_unescape_plus": True}),
    ("match_unregistered_custom_verb", {"match_unregistered_custom_verb": True}),
    ("case_insensitive_enum_parsing", {"case_insensitive_enum_parsing": True}),
    ("capture_unknown_query_parameters", {"capture_unknown_query_parameters": True}),
]


@pytest.fixture
def descriptor(tmp_path: Path) -> Path:
    p = tmp_path / "landing.pb"
    p.write_bytes(descriptor_set())
    return p


def _run(tmp_path: Path, *argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = tmp_path / "out.yaml"
    out.unlink(missing_ok=True)
    rc = main(["transcoder", *argv, "-o", str(out)])
    return rc, list(yaml.safe_load_all(out.read_text())) if out.exists() else []


def _typed(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"])


@pytest.mark.parametrize(("name", "fields"), OPTION_FLAGS, ids=[n for n, _ in OPTION_FLAGS])
@pytest.mark.parametrize("spelling", ["hyphen", "underscore"])
def test_each_option_flag_in_both_spellings(tmp_path: Path, descriptor: Path, name: str, fields: dict[str, Any],
                                            spelling: str) -> None:
    flag = "--" + (name.replace("_", "-") if spelling == "hyphen" else name)
    rc, (doc,) = _run(tmp_path, "-d", str(descriptor), flag)
    assert rc == 0
    typed = _typed(doc)
    assert {k: typed[k] for k in fields} == fields
    assert schema_errors(doc) == []
    rc, (plain,) = _run(tmp_path, "-d", str(descriptor))
    assert not set(fields) & set(_typed(plain))  # off by default: left out, as Envoy's default


def test_url_unescape_spec_and_sse(tmp_path: Path, descriptor: Path) -> None:
    rc, (doc,) = _run(tmp_path, "-d", str(descriptor), "--url_unescape_spec", "ALL_CHARACTERS_EXCEPT_SLASH",
                      "--stream-sse-style-delimited")
    assert rc == 0
    typed = _typed(doc)
    assert typed["url_unescape_spec"] == "ALL_CHARACTERS_EXCEPT_SLASH"
    assert typed["print_options"]["stream_sse_style_delimited"] is True
    with pytest.raises(SystemExit):
        main(["transcoder", "-d", str(descriptor), "--url-unescape-spec", "SOME"])


def test_option_key_order_stays_as_before_with_new_fields_after() -> None:
    o = cfg.TranscoderOptions(convert_grpc_status=True, auto_mapping=True, ignored_query_parameters=("k",),
                              ignore_unknown_query_parameters=True, case_insensitive_enum_parsing=True,
                              url_unescape_spec="ALL_CHARACTERS", max_request_body_size=10)
    assert list(cfg.transcoder_typed_config(b"x", ["s"], o)) == [
        "@type", "proto_descriptor_bin", "services", "print_options", "convert_grpc_status", "auto_mapping",
        "ignored_query_parameters", "ignore_unknown_query_parameters", "case_insensitive_enum_parsing",
        "url_unescape_spec", "max_request_body_size"]
    with pytest.raises(Exception, match="is not a UrlUnescapeSpec"):
        cfg.TranscoderOptions(url_unescape_spec="NONE")


def test_descriptor_path_emits_the_file_reference_a_configmap_and_the_mount(
        tmp_path: Path, descriptor: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, docs = _run(tmp_path, "-d", str(descriptor), "--service_name", "grpc-server-svc", "-n", "istio-system",
                    "--descriptor-path", "/etc/envoy/descriptor/landing.pb")
    err = capsys.readouterr().err
    assert rc == 0
    ef, cm = docs
    typed = _typed(ef)
    assert typed["proto_descriptor"] == "/etc/envoy/descriptor/landing.pb" and "proto_descriptor_bin" not in typed
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"] == {"name": "grpc-transcoder-grpc-server-svc-descriptor", "namespace": "istio-system"}
    assert base64.b64decode(cm["binaryData"]["landing.pb"]) == descriptor.read_bytes()
    assert schema_errors(ef) == [] and schema_errors(cm) == []
    # the annotations that mount it, as the kubectl patch to apply to the gateway
    patch = json.loads(re.search(r"--type merge -p '(.*)'$", err.strip()).group(1))  # type: ignore[union-attr]
    assert "kubectl -n istio-system patch deployment istio-ingressgateway" in err
    ann = patch["spec"]["template"]["metadata"]["annotations"]
    (vol,) = json.loads(ann["sidecar.istio.io/userVolume"])
    (mount,) = json.loads(ann["sidecar.istio.io/userVolumeMount"])
    assert vol == {"name": "transcoder-descriptor", "configMap": {"name": "grpc-transcoder-grpc-server-svc-descriptor"}}
    assert mount == {"name": "transcoder-descriptor", "mountPath": "/etc/envoy/descriptor", "readOnly": True}
    # the ConfigMap's key + the mount path give back the path Envoy reads
    assert f"{mount['mountPath']}/{next(iter(cm['binaryData']))}" == typed["proto_descriptor"]


def test_descriptor_path_options(tmp_path: Path, descriptor: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, docs = _run(tmp_path, "-d", str(descriptor), "--descriptor_path", "/d/x.pb", "--no-descriptor-configmap")
    assert rc == 0 and [d["kind"] for d in docs] == ["EnvoyFilter"]
    assert "note" not in capsys.readouterr().err
    rc, docs = _run(tmp_path, "-d", str(descriptor), "--descriptor-path", "/d/x.pb", "--descriptor-configmap", "desc",
                    "--header", "x-user=user")
    assert rc == 0 and [d["kind"] for d in docs] == ["EnvoyFilter", "ConfigMap", "EnvoyFilter"]
    assert docs[1]["metadata"]["name"] == "desc"
    assert "# GRPC Transcoder EnvoyFilter[1.8]" not in (tmp_path / "out.yaml").read_text().split("---\n")[1]


BAD = [
    (["--service_name", "Bad_Name"], "--service_name: 'Bad_Name' is not a DNS-1123 name"),
    (["--service-name", "x" * 250], "--service_name: 'grpc-transcoder-" + "x" * 250 + "' is not a DNS-1123 name"),
    (["-n", "Bad NS"], "--namespace: 'Bad NS' is not a DNS-1123 label"),
    (["--header", "x y=a"], "--header: 'x y' is not a valid HTTP header name"),
    (["--header", "x-user="], "--header: the metadata key of 'x-user' is ''"),
    (["--descriptor-path", "relative.pb"], "--descriptor-path: 'relative.pb' is not an absolute file path"),
    (["--descriptor-path", "/x.pb"], "--descriptor-path: '/x.pb' is directly under /"),
    (["--descriptor-path", "/d/a b.pb"], "--descriptor-path: the file name 'a b.pb' cannot be a ConfigMap key"),
    (["--descriptor-configmap", "x"], "--descriptor-configmap: the descriptor ConfigMap goes with --descriptor-path"),
    (["--descriptor-path", "/d/x.pb", "--descriptor-configmap", "Bad"], "--descriptor-configmap: 'Bad' is not"),
    (["--descriptor-path", "/d/x.pb", "--envoy-config"], "--descriptor-path: --descriptor-path is for the EnvoyFilter"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD, ids=[n for _, n in BAD])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, descriptor: Path, argv: list[str], needle: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rc, docs = _run(tmp_path, "-d", str(descriptor), *argv)
    err = capsys.readouterr().err
    assert rc == 2 and docs == []
    (line,) = err.strip().splitlines()
    assert line.startswith("meshfilter: error: ") and "(hint:" in line and needle in line, line


def test_the_object_limit_refusal_suggests_descriptor_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from google.protobuf import descriptor_pb2

    f = descriptor_pb2.FileDescriptorProto(name="big.proto", package="big", syntax="proto3")
    msg = f.message_type.add(name="Huge")
    for i in range(1, 30_001):  # ~1.2 MB: over the 1.5 MiB object limit once inlined as base64
        msg.field.add(name=f"field_with_a_rather_long_name_{i:07d}", number=i, type=9, label=1)
    f.service.add(name="BigService").method.add(name="Get", input_type=".big.Huge", output_type=".big.Huge")
    big = tmp_path / "big.pb"
    big.write_bytes(descriptor_pb2.FileDescriptorSet(file=[f]).SerializeToString())
    assert len(big.read_bytes()) > 1_100_000
    rc, _ = _run(tmp_path, "-d", str(big))
    err = capsys.readouterr().err
    assert rc == 1 and "over Kubernetes' object limit" in err and "--descriptor-path PATH" in err
    # and with it the EnvoyFilter is small; the ConfigMap holds up to 1 MiB, this one is over
    rc, _ = _run(tmp_path, "-d", str(big), "--descriptor-path", "/etc/envoy/d/big.pb")
    err = capsys.readouterr().err
    assert rc == 1 and "over a ConfigMap's limit of 1048576 bytes" in err and "--no-descriptor-configmap" in err
    rc, docs = _run(tmp_path, "-d", str(big), "--descriptor-path", "/etc/envoy/d/big.pb", "--no-descriptor-configmap")
    assert rc == 0 and efm.object_size(docs[0]) < 4096


def test_configmap_library() -> None:
    cm = efm.descriptor_configmap("d", b"\x00\x01", descriptor_path="/etc/d/x.pb", namespace="ns")
    assert cm == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "ns"},
                  "binaryData": {"x.pb": "AAE="}}
    cm["binaryData"]["bad key"] = "AAE="
    assert any("bad key" in e for e in schema_errors(cm))


def test_version_regex_is_derived_for_any_version(tmp_path: Path, descriptor: Path) -> None:
    """grpc-transcoder maps versions it does not know to 1.7; meshfilter derives the regex (docs/transcoder.md)."""
    for version, regex in (("1.9", r"^1\.9.*"), ("1.24.2", r"^1\.24\.2.*")):
        rc, (doc,) = _run(tmp_path, "-d", str(descriptor), "--version", version)
        assert rc == 0 and doc["spec"]["configPatches"][0]["match"]["proxy"]["proxyVersion"] == regex
