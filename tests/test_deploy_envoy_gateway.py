"""`deploy envoy-gateway`: EnvoyExtensionPolicy output, validated strictly against Envoy Gateway's own CRD
schema (bundled with provenance) and every one of its CEL rules, each of which is exercised here."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.k8s import envoy_gateway as eg
from meshfilter.k8s import schema
from meshfilter.k8s.envoy_check import envoy_part
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import CEL_RULES, schema_errors

EG = ["deploy", "envoy-gateway", "--name", "propagate", "--namespace", "default"]
SHA = "a" * 64
PARAMS = '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'
KEY = "gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy"


def _ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(args) == 0, capsys.readouterr().err
    docs = load_yaml(capsys.readouterr().out)
    assert all(schema_errors(d) == [] for d in docs)
    return docs


def test_wasm_from_an_oci_image_with_its_pull_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.json"
    auths = {"registry.example.com": {"auth": "dTpw"}, "other.example.com": {"auth": "x"}}
    cfg.write_text(json.dumps({"auths": auths}))
    policy, secret = _ok([*EG, "--target-ref", "Gateway/eg", "--image", "oci://registry.example.com/f/p:1",
                          "--root-id", "propaganda_filter_root", "--parameters", PARAMS, "--pull-secret", "wasm-pull",
                          "--image-pull-policy", "Always", "--fail-open", "--env-from-host", "POD_NAME",
                          "--with-pull-secret", "--docker-config", str(cfg)], capsys)
    assert policy["apiVersion"] == "gateway.envoyproxy.io/v1alpha1" and policy["kind"] == "EnvoyExtensionPolicy"
    assert policy["spec"] == {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "eg"}],
        "wasm": [{"rootID": "propaganda_filter_root",
                  "code": {"type": "Image", "image": {"url": "registry.example.com/f/p:1",  # no oci:// for EG
                                                      "pullSecretRef": {"group": "", "kind": "Secret",
                                                                        "name": "wasm-pull"}},
                           "pullPolicy": "Always"},
                  "config": {"head_tag_name": "route-v", "head_tag_value": "hello2v2"},
                  "failOpen": True, "env": {"hostKeys": ["POD_NAME"]}}]}
    assert secret["metadata"] == {"name": "wasm-pull", "namespace": "default"}
    assert list(json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))["auths"]) == ["registry.example.com"]


def test_wasm_from_an_http_url_with_sha256_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    (doc,) = _ok([*EG, "--target-ref", "HTTPRoute/hello", "--target-ref", "Gateway/eg",
                  "--url", "https://filters.example.com/p.wasm", "--sha256", SHA, "--root-id", "r"], capsys)
    assert doc["spec"]["wasm"] == [{"rootID": "r", "code": {"type": "HTTP", "http": {
        "url": "https://filters.example.com/p.wasm", "sha256": SHA}}}]
    assert [r["kind"] for r in doc["spec"]["targetRefs"]] == ["HTTPRoute", "Gateway"]


def test_lua_tagging_filter_and_lua_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (doc,) = _ok([*EG, "--target-ref", "Gateway/eg", "--header", "user-agent", "--contains", "iPhone13",
                  "--set", "x-asm-prefer-tag=version-gray", "--else", "x-asm-prefer-tag=version-base"], capsys)
    (lua,) = doc["spec"]["lua"]
    assert lua["type"] == "Inline" and 'find(v, "iPhone13", 1, true)' in lua["inline"]
    assert "wasm" not in doc["spec"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [{"header": "x-user", "present": True, "set": {"x-tag": "u"}}]}))
    (doc,) = _ok([*EG, "--target-ref", "Gateway/eg", "--rules", str(rules)], capsys)
    assert 'h:replace("x-tag", "u")' in doc["spec"]["lua"][0]["inline"]
    script = tmp_path / "f.lua"
    script.write_text("function envoy_on_request(h) end\n")
    (doc,) = _ok([*EG, "--target-ref", "Gateway/eg", "--lua", str(script)], capsys)
    assert doc["spec"]["lua"] == [{"type": "Inline", "inline": "function envoy_on_request(h) end\n"}]
    # the Envoy part: Lua first, as Envoy Gateway orders its filters
    assert [f["name"] for f in envoy_part(doc)] == ["envoy.filters.http.lua"]


BAD = [
    ([], "the following arguments are required: --target-ref"),
    (["--target-ref", "Gateway/eg"], "nothing to deploy: give a Wasm module or a Lua filter"),
    (["--target-ref", "Service/s", "--image", "r.example.com/a:1"],
     "--target-ref: 'Service' is not a kind this resource can target (hint: use one of Gateway, HTTPRoute"),
    (["--target-ref", "httproute/s", "--image", "r.example.com/a:1"], "(hint: kinds are spelled HTTPRoute)"),
    (["--target-ref", "Gateway/eg", "--url", "https://x.example.com/f.wasm"], "--url: --url needs --sha256"),
    (["--target-ref", "Gateway/eg", "--url", "ftp://x/f.wasm", "--sha256", SHA], "is not an http(s) URL"),
    (["--target-ref", "Gateway/eg", "--url", "https://x/f.wasm", "--sha256", SHA, "--pull-secret", "s"],
     "--url: --pull-secret, --with-pull-secret and --image-pull-policy go with --image"),
    (["--target-ref", "Gateway/eg", "--image", "r.example.com/a:1", "--sha256", "xyz"],
     "--sha256: 'xyz' is not a SHA-256 hex digest"),
    (["--target-ref", "Gateway/eg", "--image", "r.example.com/a:1", "--with-pull-secret"],
     "--with-pull-secret: --with-pull-secret needs --pull-secret NAME"),
    (["--target-ref", "Gateway/eg", "--image", "r.example.com/a:1", "--root-id", "propaganda_filter_root"],
     "--parameters: propagate-header needs its parameters"),
    (["--target-ref", "Gateway/eg", "--image", "r.example.com/a:1", "--parameters", "[1]"],
     "--parameters: must be a JSON object, not list"),
    (["--target-ref", "Gateway/eg", "--root-id", "r", "--lua", "/dev/null"],
     "--root-id: --root-id is for the Wasm module, and no module is given"),
    (["--target-ref", "Gateway/eg", "--lua", "/nonexistent.lua"], "--lua: cannot read /nonexistent.lua"),
    (["--target-ref", "Gateway/eg", "--lua", "/dev/null", "--header", "a", "--present", "--set", "a=b"],
     "--lua: --lua and the tagging rule flags cannot be combined"),
    (["--target-ref", "Gateway/eg", "--image", "Bad Ref"], "--image: image reference 'Bad Ref' contains whitespace"),
]


@pytest.mark.parametrize(("extra", "expected"), BAD, ids=[e for _, e in BAD])
def test_bad_input_is_one_line_exit_2(extra: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = main([*EG, *extra])
    except SystemExit as exc:  # argparse's own usage errors
        rc = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert expected in line, line


# --- the bundled schema and its CEL rules --------------------------------------------------------------------

def test_the_schema_is_envoy_gateways_with_provenance() -> None:
    text = (Path(schema.__file__).parent / "schemas" / "envoy-gateway-crd-schemas.yaml").read_text()
    assert "github.com/envoyproxy/gateway, tag v1.9.0" in text and "Apache License 2.0" in text
    raw = schema.raw_schemas()[KEY]
    assert set(raw["properties"]["spec"]["properties"]) >= {"targetRefs", "wasm", "lua", "extProc"}
    assert "description" not in json.dumps(raw)


def test_each_cel_message_has_one_rule_across_the_bundle() -> None:
    rules: dict[str, set[str]] = {}
    for doc in schema.raw_schemas().values():
        for node in schema._walk(doc):
            for rule in node.get("x-kubernetes-validations", []):
                rules.setdefault(rule["message"], set()).add(rule["rule"])
    assert all(len(texts) == 1 for texts in rules.values()), {m: t for m, t in rules.items() if len(t) > 1}
    assert set(rules) <= set(CEL_RULES)


G = "gateway.networking.k8s.io"
LB = {"type": "RoundRobin"}
# message -> (instances the rule accepts, instances it refuses); each is the object the rule is attached to
CASES: dict[str, tuple[list[Any], list[Any]]] = {
    "either targetRef or targetRefs must be used": (
        [{"targetRefs": []}, {"targetRef": {}}, {"targetSelectors": [{}]}],
        [{}, {"targetRef": {}, "targetRefs": []}, {"targetSelectors": []}]),
    "this policy can only have a targetRef.group of gateway.networking.k8s.io": (
        [{}, {"targetRef": {"group": G}}], [{"targetRef": {"group": ""}}]),
    "this policy can only have a targetRef.kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/"
    "TLSRoute": (
        [{}, {"targetRef": {"kind": "TLSRoute"}}], [{"targetRef": {"kind": "Service"}}]),
    "this policy can only have a targetRefs[*].group of gateway.networking.k8s.io": (
        [{"targetRefs": [{"group": G}]}], [{"targetRefs": [{"group": G}, {"group": "x"}]}]),
    "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/"
    "TLSRoute": ([{"targetRefs": [{"kind": "Gateway"}, {"kind": "HTTPRoute"}]}], [{"targetRefs": [{"kind": "Pod"}]}]),
    "mergeType can only be used with xRoute targets": (
        [{"targetRefs": [{"kind": "Gateway"}]}, {"mergeType": "StrategicMerge", "targetRefs": [{"kind": "HTTPRoute"}]}],
        [{"mergeType": "JSONMerge", "targetRefs": [{"kind": "Gateway"}]},
         {"mergeType": "JSONMerge", "targetRef": {"kind": "Gateway"}},
         {"mergeType": "JSONMerge", "targetSelectors": [{"kind": "Gateway"}]}]),
    "Replace is not a valid MergeType for EnvoyExtensionPolicy": (["JSONMerge"], ["Replace"]),
    "group must be gateway.networking.k8s.io": ([{}, {"group": G}], [{"group": "x"}]),
    "selector must be specified when from is Selector": (
        [{"from": "Same"}, {"from": "Selector", "selector": {}}], [{"from": "Selector"}]),
    "If type is HTTP, http field needs to be set.": (
        [{"type": "HTTP", "http": {}}, {"type": "Image"}], [{"type": "HTTP"}, {"type": "Image", "http": {}}]),
    "If type is Image, image field needs to be set.": (
        [{"type": "Image", "image": {}}, {"type": "HTTP"}], [{"type": "Image"}, {"type": "HTTP", "image": {}}]),
    "only support Secret kind.": ([{"kind": "Secret"}], [{"kind": "ConfigMap"}]),
    "Exactly one of inline or valueRef must be set with correct type.": (
        [{"type": "Inline", "inline": "x"}, {"type": "ValueRef", "valueRef": {}}],
        [{"type": "Inline"}, {"type": "Inline", "inline": "x", "valueRef": {}}, {"type": "ValueRef", "inline": "x"}]),
    "Only a reference to an object of kind ConfigMap belonging to default v1 API group is supported.": (
        [{"kind": "ConfigMap", "group": ""}, {"kind": "ConfigMap", "group": "v1"}],
        [{"kind": "Secret", "group": ""}, {"kind": "ConfigMap", "group": "apps"}]),
    "BackendRefs must be used, backendRef is not supported.": ([{"backendRefs": []}], [{"backendRef": {}}]),
    "BackendRefs only supports Service, ServiceImport, and Backend kind.": (
        [{}, {"backendRefs": [{"kind": "Backend"}]}], [{"backendRefs": [{"kind": "Pod"}]}]),
    "BackendRefs only supports Core, multicluster.x-k8s.io, and gateway.envoyproxy.io groups.": (
        [{"backendRefs": [{"group": ""}, {"group": "gateway.envoyproxy.io"}]}], [{"backendRefs": [{"group": "x"}]}]),
    "If FullDuplexStreamed body processing mode is used, FailOpen must be false.": (
        [{"failOpen": False, "processingMode": {"request": {"body": "FullDuplexStreamed"}}},
         {"failOpen": True, "processingMode": {"request": {"body": "Buffered"}}}],
        [{"failOpen": True, "processingMode": {"response": {"body": "FullDuplexStreamed"}}}]),
    "If shadowMode is enabled, body processing mode must be Streamed or unset.": (
        [{"shadowMode": True, "processingMode": {"request": {"body": "Streamed"}}}, {"shadowMode": True}],
        [{"shadowMode": True, "processingMode": {"request": {"body": "Buffered"}}}]),
    "Must have port for Service reference": (
        [{"group": "", "kind": "Service", "port": 80}, {"group": "", "kind": "Backend"}],
        [{"group": "", "kind": "Service"}]),
    "predictivePercent in preconnect policy only works with RoundRobin or Random load balancers": (
        [{"connection": {"preconnect": {"predictivePercent": 10}}, "loadBalancer": LB}, {}],
        [{"connection": {"preconnect": {"predictivePercent": 10}}, "loadBalancer": {"type": "LeastRequest"}}]),
    "numerator must be less than or equal to denominator": (
        [{"numerator": 5, "denominator": 100}], [{"numerator": 101, "denominator": 100}]),
    "If Health Checker type is HTTP, http field needs to be set.": ([{"type": "HTTP", "http": {}}], [{"type": "HTTP"}]),
    "If Health Checker type is TCP, tcp field needs to be set.": ([{"type": "TCP", "tcp": {}}], [{"type": "HTTP",
                                                                                                 "tcp": {}}]),
    "The grpc field can only be set if the Health Checker type is GRPC.": (
        [{"type": "GRPC", "grpc": {}}, {"type": "HTTP"}], [{"type": "HTTP", "grpc": {}}]),
    "a failure type and a success type must both be specified together": (
        [[], ["Failure", "Success"], ["FailureSeriesStart", "HealthyTransition"]], [["Failure"], ["Success"]]),
    "If ProxyHealthCheckLogSink type is File, file field needs to be set.": (
        [{"type": "File", "file": {}}], [{"type": "File"}]),
    "The requestBody field can only be set when method is POST or PUT.": (
        [{}, {"requestBody": {}, "method": "post"}], [{"requestBody": {}}, {"requestBody": {}, "method": "GET"}]),
    "If payload type is Text, text field needs to be set.": ([{"type": "Text", "text": "x"}], [{"type": "Text"}]),
    "If payload type is Binary, binary field needs to be set.": (
        [{"type": "Binary", "binary": "eA=="}], [{"type": "Text", "binary": "eA=="}]),
    "timeout must be less than interval": (
        [{"timeout": "500ms", "interval": "1s"}, {"timeout": "1h"}], [{"timeout": "1m", "interval": "30s"},
                                                                     {"timeout": "1x", "interval": "1s"}]),
    "If LoadBalancer type is consistentHash, consistentHash field needs to be set.": (
        [{"type": "ConsistentHash", "consistentHash": {}}, LB], [{"type": "ConsistentHash"}]),
    "If LoadBalancer type is BackendUtilization, backendUtilization field needs to be set.": (
        [{"type": "BackendUtilization", "backendUtilization": {}}], [{"type": "RoundRobin", "backendUtilization": {}}]),
    "If LoadBalancer type is DynamicModule, dynamicModule field needs to be set.": (
        [{"type": "DynamicModule", "dynamicModule": {}}], [{"type": "DynamicModule"}]),
    "Currently SlowStart is only supported for RoundRobin, LeastRequest, and BackendUtilization load balancers.": (
        [{"type": "RoundRobin", "slowStart": {}}], [{"type": "Random", "slowStart": {}}]),
    "PreferLocal zone-aware routing is not supported for ConsistentHash load balancers. Use weightedZones instead.": (
        [{"type": "ConsistentHash", "zoneAware": {"weightedZones": []}}],
        [{"type": "ConsistentHash", "zoneAware": {"preferLocal": {}}}]),
    "PreferLocal zone-aware routing is not currently supported for BackendUtilization load balancers. Only "
    "WeightedZones can be used with BackendUtilization.": (
        [{"type": "RoundRobin", "zoneAware": {"preferLocal": {}}}],
        [{"type": "BackendUtilization", "zoneAware": {"preferLocal": {}}}]),
    "ZoneAware routing is not supported for DynamicModule load balancers.": (
        [{"type": "DynamicModule"}], [{"type": "DynamicModule", "zoneAware": {}}]),
    "ZoneAware PreferLocal and WeightedZones cannot be specified together.": (
        [{"type": "RoundRobin", "zoneAware": {"preferLocal": {}}}],
        [{"type": "RoundRobin", "zoneAware": {"preferLocal": {}, "weightedZones": []}}]),
    "EndpointOverride is not supported for DynamicModule load balancers.": (
        [{"type": "RoundRobin", "endpointOverride": {}}], [{"type": "DynamicModule", "endpointOverride": {}}]),
    "reportingPeriod must be greater than 0": (["10s", "1.5m"], ["0s", "-1s", "ten"]),
    "If consistent hash type is header, the header field must be set.": ([{"type": "Header", "header": {}}],
                                                                        [{"type": "Header"}]),
    "If consistent hash type is headers, the headers field must be set.": ([{"type": "Headers", "headers": []}],
                                                                          [{"type": "SourceIP", "headers": []}]),
    "If consistent hash type is cookie, the cookie field must be set.": ([{"type": "Cookie", "cookie": {}}],
                                                                        [{"type": "Cookie"}]),
    "If consistent hash type is queryParams, the queryParams field must be set.": (
        [{"type": "QueryParams", "queryParams": []}], [{"type": "QueryParams"}]),
    "writableNamespaces cannot contain well-known Envoy HTTP filter namespaces": (
        [["acme.io"]], [["envoy.filters.http.ext_authz"]]),
}


def _eg_messages() -> set[str]:
    return set(schema.cel_messages(schema.raw_schemas()[KEY]))


def test_every_envoy_gateway_rule_is_exercised() -> None:
    assert set(CASES) == _eg_messages()


@pytest.mark.parametrize("message", sorted(CASES))
def test_envoy_gateway_cel_rule(message: str) -> None:
    accepts, refuses = CASES[message]
    validator = schema._make_validator_class()({"x-kubernetes-validations": [{"message": message, "rule": "-"}]})
    for instance in accepts:
        assert list(validator.iter_errors(instance)) == [], instance
    for instance in refuses:
        assert [e.message for e in validator.iter_errors(instance)] == [message], instance


def test_defaults_are_applied_before_the_rules() -> None:
    # pullSecretRef.kind defaults to Secret (the API server fills it in before the CEL rule runs)
    doc = eg.envoy_extension_policy("p", target_refs=[eg.target_ref("Gateway", "gw")],
                                    wasm=[eg.wasm_extension(eg.image_code("r.example.com/a:1"))])
    doc["spec"]["wasm"][0]["code"]["image"]["pullSecretRef"] = {"name": "s"}
    assert schema_errors(doc) == []
    doc["spec"]["wasm"][0]["code"]["image"]["pullSecretRef"]["kind"] = "ConfigMap"
    assert schema_errors(doc) == ["spec.wasm[0].code.image.pullSecretRef: only support Secret kind."]


def test_a_full_policy_breaking_rules_is_refused() -> None:
    doc = eg.envoy_extension_policy("p", target_refs=[{"group": "", "kind": "Service", "name": "s"}],
                                    wasm=[eg.wasm_extension({"type": "HTTP", "image": {"url": "x"}})],
                                    lua=[{"type": "Inline"}])
    doc["spec"]["mergeType"] = "Replace"
    doc["spec"]["bogus"] = 1
    errors = "\n".join(schema_errors(doc))
    for needle in ("'bogus' was unexpected", "targetRefs[*].group of gateway.networking.k8s.io",
                   "targetRefs[*].kind of Gateway", "Replace is not a valid MergeType",
                   "spec.wasm[0].code: If type is HTTP, http field needs to be set.",
                   "spec.lua[0]: Exactly one of inline or valueRef must be set"):
        assert needle in errors, errors


def test_ecma_dollar_inside_a_character_class_is_kept() -> None:
    assert schema.ecma_anchors(r"^a[$b]$") == r"^a[$b]\Z"
    assert schema.ecma_anchors(r"^\$x$") == r"^\$x\Z"


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("1h2m3.5s", 3723.5), ("300ms", 0.3), ("0", 0.0),
                                               ("-1.5h", -5400.0), ("2us", 2e-6)])
def test_go_durations(text: str, seconds: float) -> None:
    assert schema.go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "1", "s", "1sec", "1s2"])
def test_go_durations_refuse(bad: str) -> None:
    with pytest.raises(ValueError):
        schema.go_duration(bad)
