"""Strict CRD schema validation (meshfilter.k8s.schema): unknown fields and rule breaches are caught."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshfilter.errors import K8sError
from meshfilter.k8s import schema
from meshfilter.k8s.envoyfilter import envoy_filter, http_filter_patch


def _ef() -> dict[str, Any]:
    value = {"name": "envoy.filters.http.lua", "typed_config": {"@type": "t", "anything": {"goes": 1}}}
    return envoy_filter("f", namespace="default", labels={"app": "a"}, priority=5,
                        patches=[http_filter_patch("SIDECAR_OUTBOUND", value, istio_version="1.22")])


def _wp() -> dict[str, Any]:
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "url": "oci://r.example/x:1",
                     "pluginConfig": {"free": {"form": True}}, "priority": 3,
                     "match": [{"mode": "CLIENT"}]}}


def test_valid_resources_pass() -> None:
    assert schema.schema_errors(_ef()) == []
    assert schema.schema_errors(_wp()) == []
    schema.validate_resource(_ef())


@pytest.mark.parametrize("where", [
    ("spec",), ("spec", "configPatches", 0), ("spec", "configPatches", 0, "match"),
    ("spec", "configPatches", 0, "match", "listener", "filterChain", "filter"),
    ("spec", "configPatches", 0, "match", "proxy"), ("spec", "configPatches", 0, "patch"),
    ("metadata",), (),
])
def test_unknown_field_is_an_error_everywhere(where: tuple[Any, ...]) -> None:
    doc = _ef()
    node: Any = doc
    for key in where:
        node = node[key]
    node["bogusField"] = 1
    errors = schema.schema_errors(doc)
    assert len(errors) == 1 and "'bogusField' was unexpected" in errors[0], errors
    with pytest.raises(K8sError) as info:
        schema.validate_resource(doc)
    assert "bogusField" in info.value.line() and "\n" not in info.value.line()


def test_preserve_unknown_fields_stay_open() -> None:
    # patch.value and pluginConfig are x-kubernetes-preserve-unknown-fields: anything goes there
    assert schema.schema_errors(_ef()) == []
    wp = _wp()
    wp["spec"]["pluginConfig"]["deep"] = {"x": [1, {"y": None}]}
    assert schema.schema_errors(wp) == []


def test_wasmplugin_unknown_spec_field_and_enum() -> None:
    wp = _wp()
    wp["spec"]["rootID"] = "x"
    wp["spec"]["match"][0]["mode"] = "OUTBOUND"
    errors = schema.schema_errors(wp)
    assert any("'rootID' was unexpected" in e for e in errors)
    assert any(e.startswith("spec.match[0].mode:") for e in errors)


def test_cel_rules_and_formats() -> None:
    wp = _wp()
    wp["spec"]["targetRefs"] = [{"kind": "Gateway", "name": "gw"}]
    wp["spec"]["url"] = "ftp://x/y"
    wp["spec"]["priority"] = 2**31
    wp["spec"]["selector"]["matchLabels"]["v"] = "a*"
    errors = "\n".join(schema.schema_errors(wp))
    assert "only one of targetRefs or selector can be set" in errors
    assert "url must have schema one of" in errors
    assert "out of range for int32" in errors
    assert "wildcard not allowed in label value match" in errors
    wp = _wp()
    wp["spec"]["priority"] = None  # nullable
    assert schema.schema_errors(wp) == []


def test_sha256_pattern_and_required_url() -> None:
    wp = _wp()
    wp["spec"]["sha256"] = "ABC"
    del wp["spec"]["url"]
    errors = "\n".join(schema.schema_errors(wp))
    assert "spec.sha256" in errors and "'url' is a required property" in errors


def test_metadata_name_and_kind_checked() -> None:
    doc = _ef()
    doc["metadata"]["name"] = "Bad_Name"
    assert any(e.startswith("metadata.name:") for e in schema.schema_errors(doc))
    doc = _ef()
    doc["apiVersion"] = "networking.istio.io/v1beta9"
    with pytest.raises(K8sError, match="no schema for networking.istio.io/v1beta9/EnvoyFilter"):
        schema.schema_errors(doc)


def test_every_schema_rule_is_implemented() -> None:
    for key in schema.raw_schemas():
        api_version, _, kind = key.rpartition("/")
        msgs = schema.cel_messages(schema.raw_schemas()[key])
        assert set(msgs) <= set(schema.CEL_RULES), key
        schema.validator_for(api_version, kind)  # does not raise


def test_strict_schema_does_not_touch_input() -> None:
    raw = {"type": "object", "properties": {"a": {"type": "string"}}}
    before = copy.deepcopy(raw)
    strict = schema.strict_schema(raw)
    assert raw == before and strict["additionalProperties"] is False


def test_patterns_anchor_at_end_of_input() -> None:
    doc = _ef()
    doc["metadata"]["name"] = "f\n"
    assert any(e.startswith("metadata.name:") for e in schema.schema_errors(doc))
    wp = _wp()
    wp["spec"]["sha256"] = "a" * 64 + "\n"
    assert any(e.startswith("spec.sha256:") for e in schema.schema_errors(wp))
    wp["spec"]["sha256"] = ""
    assert schema.schema_errors(wp) == []
