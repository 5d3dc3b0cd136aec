"""Pure renderers of meshfilter.k8s and the module plumbing of the Envoy check (no Envoy here)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from meshfilter.cli import deploy_checks as validate
from meshfilter.errors import DigestMismatchError, K8sError, UsageError
from meshfilter.k8s import envoy_check, output, secret
from meshfilter.k8s.asm import asm_filter_deployment
from meshfilter.k8s.envoyfilter import envoy_filter, http_filter_patch, patch_values, proxy_version_regex
from meshfilter.k8s.schema import schema_errors
from meshfilter.k8s.wasm_envoyfilter import code_source, istio_outbound_cluster, wasm_envoy_filter
from meshfilter.k8s.wasmplugin import MATCH_MODES, plugin_url, wasm_plugin

MODULE = (Path(__file__).parent / "golden" / "deploy" / "envoyfilter-inbound" / "filter.wasm").read_bytes()


@pytest.mark.parametrize(("version", "regex"), [
    ("1.7", r"^1\.7.*"), ("1.22.3", r"^1\.22\.3.*"), ("1", r"^1.*"), (" 1.8 ", r"^1\.8.*")])
def test_proxy_version_regex(version: str, regex: str) -> None:
    import re

    assert proxy_version_regex(version) == regex
    assert re.match(regex, version.strip() + ".0-distroless")


@pytest.mark.parametrize("bad", ["", "1.x", "v1.7", "1.7.3.4", "1..2", "1.7;rm"])
def test_proxy_version_regex_refuses(bad: str) -> None:
    with pytest.raises(UsageError, match="istio_version") as info:  # the field; the CLI spells it --istio-version
        proxy_version_regex(bad)
    assert info.value.where == "istio_version"


def test_http_filter_patch_shape() -> None:
    value = {"name": "envoy.filters.http.lua", "typed_config": {"@type": "x"}}
    patch = http_filter_patch("GATEWAY", value)
    assert patch["applyTo"] == "HTTP_FILTER"
    assert patch["patch"] == {"operation": "INSERT_BEFORE", "value": value}
    assert patch["match"]["listener"]["filterChain"]["filter"] == {
        "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}
    assert "proxy" not in patch["match"]
    doc = envoy_filter("lua", patches=[patch])
    assert "workloadSelector" not in doc["spec"] and "priority" not in doc["spec"]
    assert patch_values(doc) == [value]
    assert schema_errors(doc) == []


def test_match_modes_follow_istio() -> None:
    assert MATCH_MODES == {"SIDECAR_OUTBOUND": "CLIENT", "SIDECAR_INBOUND": "SERVER", "GATEWAY": "CLIENT",
                           "ANY": "CLIENT_AND_SERVER"}
    for ctx, mode in MATCH_MODES.items():
        doc = wasm_plugin("p", url="oci://r.example.com/a:1", patch_context=ctx)
        assert doc["spec"]["match"] == [{"mode": mode}] and schema_errors(doc) == []


@pytest.mark.parametrize(("image", "digest", "url"), [
    ("r.example.com/a/b:1", None, "oci://r.example.com/a/b:1"),
    ("oci://r.example.com/a/b:1", None, "oci://r.example.com/a/b:1"),
    ("r.example.com:5000/a/b:1", "sha256:" + "c" * 64, "oci://r.example.com:5000/a/b@sha256:" + "c" * 64),
    ("localhost:5000/a", "sha256:" + "c" * 64, "oci://localhost:5000/a@sha256:" + "c" * 64),
    ("https://x.example.com/f.wasm", None, "https://x.example.com/f.wasm"),
])
def test_plugin_url(image: str, digest: str | None, url: str) -> None:
    assert plugin_url(image, digest=digest) == url


def test_asm_optional_fields_and_order() -> None:
    doc = asm_filter_deployment("n", labels={"app": "a"}, patch_context="ANY", image="r.example.com/a:1",
                                root_id="r", pull_secret="s", namespace="ns")
    assert list(doc["spec"]["filter"]) == ["patchContext", "image", "rootID", "id", "imagePullOptions"]
    assert doc["spec"]["filter"]["id"] == "n" and doc["metadata"] == {"name": "n", "namespace": "ns"}
    assert schema_errors(doc) == []


def test_secret_only_for_the_image_host(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {
        "https://r.example.com:5000/v1/": {"auth": base64.b64encode(b"me:pw1").decode()},
        "r.example.com": {"auth": base64.b64encode(b"other:pw2").decode()},
        "evil.example.com": {"username": "u3", "password": "pw3"}}}))
    doc, found = secret.pull_secret_for_image("r.example.com:5000/a/b:1", docker_config=cfg)
    assert found
    cfgjson = secret.decode(doc)
    assert cfgjson == {"auths": {"r.example.com:5000": {"auth": base64.b64encode(b"me:pw1").decode()}}}
    raw = json.dumps(doc)
    for leaked in ("pw2", "pw3", "u3", "evil", base64.b64encode(b"other:pw2").decode()):
        assert leaked not in raw and leaked not in json.dumps(cfgjson)
    assert schema_errors(doc) == []


def test_secret_without_credentials_and_docker_hub() -> None:
    assert secret.docker_config_json("r.example.com", None) == {"auths": {}}
    entry = secret.docker_config_json("docker.io", {"username": "u", "password": "p", "email": "x@y"})
    assert entry == {"auths": {"https://index.docker.io/v1/": {
        "username": "u", "password": "p", "auth": base64.b64encode(b"u:p").decode()}}}


def test_output_key_order_and_multidoc() -> None:
    doc = {"spec": {"b": 1, "a": 2}, "metadata": {"name": "x"}, "kind": "K", "apiVersion": "v"}
    text = output.to_yaml([doc, doc])
    assert text.startswith("---\napiVersion: v\nkind: K\nmetadata:\n  name: x\nspec:\n  b: 1\n  a: 2\n")
    assert text.count("---\n") == 2 and output.load_yaml(text) == [doc, doc]
    assert json.loads(output.to_json([doc]))["kind"] == "K"


def test_write_dir_is_atomic_and_replaces(tmp_path: Path) -> None:
    doc = {"apiVersion": "v", "kind": "Thing", "metadata": {"name": "x"}, "spec": {}}
    (tmp_path / "thing-x.yaml").write_text("old")
    paths = output.write_dir([doc], tmp_path)
    assert paths == [tmp_path / "thing-x.yaml"] and "old" not in paths[0].read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thing-x.yaml"]  # no temp files left


def test_check_parameters_shares_propagate_validation() -> None:
    from meshfilter.filters import propagate

    with pytest.raises(propagate.PropagateConfigError) as info:
        validate.check_parameters('{"head_tag_name": ""}', propagate_header=True)
    assert info.value.problem == "missing_value"
    assert validate.check_parameters('{"x": 1}', propagate_header=False) == {"x": 1}
    assert validate.is_propagate(propagate.ROOT_ID, None) and not validate.is_propagate("r", None)
    assert validate.is_propagate("r", "propagate-header") and not validate.is_propagate(propagate.ROOT_ID, "generic")


def test_wasm_envoyfilter_code_sources() -> None:
    assert istio_outbound_cluster("https://h.example.com/f.wasm") == "outbound|443||h.example.com"
    assert istio_outbound_cluster("http://h.example.com:8080/f.wasm") == "outbound|8080||h.example.com"
    assert code_source(module_path="/var/local/f.wasm") == {"local": {"filename": "/var/local/f.wasm"}}
    doc = wasm_envoy_filter("f", patch_context="SIDECAR_INBOUND", code=code_source(module=MODULE), root_id="r",
                            configuration="{}", istio_version="1.22", priority=3)
    cfg = patch_values(doc)[0]["typed_config"]["config"]
    assert cfg["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    assert cfg["configuration"] == {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "{}"}
    assert base64.b64decode(cfg["vm_config"]["code"]["local"]["inline_bytes"]) == MODULE
    assert schema_errors(doc) == []


def test_envoy_part_fetches_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "f.wasm"
    path.write_bytes(MODULE)
    sha = hashlib.sha256(MODULE).hexdigest()
    # WasmPlugin from a file:// URL with the right sha256
    wp = wasm_plugin("p", url=f"file://{path}", sha256=sha, plugin_name="r", plugin_config={"k": "v"},
                     fail_strategy="FAIL_OPEN")
    (http,) = envoy_check.envoy_part(wp)
    cfg = http["typed_config"]["config"]
    assert cfg["root_id"] == "r" and cfg["configuration"]["value"] == '{"k": "v"}'
    assert cfg["failure_policy"] == "FAIL_OPEN"
    assert base64.b64decode(cfg["vm_config"]["code"]["local"]["inline_bytes"]) == MODULE
    # a wrong sha256 is refused before Envoy runs
    wp["spec"]["sha256"] = "0" * 64
    with pytest.raises(DigestMismatchError):
        envoy_check.envoy_part(wp)
    # OCI: the fetcher is asked for the image, the bytes land inline
    asked: list[str] = []
    oci = wasm_plugin("p", url="oci://r.example.com/a:1", plugin_name="r")
    envoy_check.envoy_part(oci, oci_fetcher=lambda ref: asked.append(ref) or MODULE)
    assert asked == ["oci://r.example.com/a:1"]
    # ASM: the image
    asm = asm_filter_deployment("n", labels={"a": "b"}, patch_context="ANY", image="r.example.com/a:1", root_id="r",
                                parameters="{}")
    (http,) = envoy_check.envoy_part(asm, oci_fetcher=lambda ref: MODULE)
    assert http["typed_config"]["config"]["configuration"]["value"] == "{}"
    # EnvoyFilter with a proxy-side file: needs the module locally
    ef = wasm_envoy_filter("f", patch_context="ANY", code=code_source(module_path="/nonexistent/f.wasm"),
                           root_id="r", configuration="")
    with pytest.raises(UsageError, match="`module` FILE"):
        envoy_check.envoy_part(ef)
    assert envoy_check.envoy_part(ef, module=MODULE)[0]["typed_config"]["config"]["vm_config"]["code"] == {
        "local": {"inline_bytes": base64.b64encode(MODULE).decode()}}
    # EnvoyFilter remote: a given module must match the sha256
    remote = wasm_envoy_filter("f", patch_context="ANY", root_id="r", configuration="",
                               code=code_source(url="https://h.example.com/f.wasm", sha256="1" * 64))
    with pytest.raises(DigestMismatchError):
        envoy_check.envoy_part(remote, module=MODULE)
    with pytest.raises(K8sError):
        envoy_check.envoy_part({"kind": "Secret", "metadata": {"name": "s"}})


# --- properties: whatever passes the input checks renders a schema-valid resource ----------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_label_name = st.from_regex(r"\A[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
_dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")


@settings(max_examples=30, deadline=None)
@given(labels=st.dictionaries(_label_name, st.one_of(st.just(""), _label_name), min_size=1, max_size=4),
       name=_dns_label, namespace=_dns_label, context=st.sampled_from(validate.PATCH_CONTEXTS),
       priority=st.integers(-(2**31), 2**31 - 1), config=st.dictionaries(st.text(max_size=5), st.integers()))
def test_checked_inputs_render_schema_valid_resources(labels: dict[str, str], name: str, namespace: str,
                                                      context: str, priority: int, config: dict[str, int]) -> None:
    raw = [f"{k}={v}" for k, v in labels.items()]
    assert validate.check_labels(raw) == labels
    validate.check_dns1123_subdomain(name)
    validate.check_dns1123_label(namespace)
    docs = [
        asm_filter_deployment(name, labels=labels, patch_context=context, image="r.example.com/a:1", root_id="r",
                              namespace=namespace, parameters=json.dumps(config)),
        wasm_plugin(name, url="oci://r.example.com/a:1", namespace=namespace, labels=labels, priority=priority,
                    plugin_config=config, patch_context=context),
        wasm_envoy_filter(name, patch_context=context, code=code_source(module=MODULE), root_id="r",
                          configuration=json.dumps(config), namespace=namespace, labels=labels, priority=priority,
                          istio_version="1.22"),
    ]
    for doc in docs:
        assert schema_errors(doc) == []
        assert output.load_yaml(output.to_yaml([doc])) == [doc]


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=1, max_size=70))
def test_label_key_check_agrees_with_kubernetes_syntax(key: str) -> None:
    import re

    ok = bool(re.fullmatch(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", key))
    name = key.rpartition("/")[2]
    ok = ok and len(name) <= 63 and len(key.rpartition("/")[0]) <= 253
    try:
        validate.check_label_key(key)
        accepted = True
    except UsageError:
        accepted = False
    assert accepted == ok
