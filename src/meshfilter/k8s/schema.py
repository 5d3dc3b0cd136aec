"""Strict validation of the Kubernetes resources meshfilter emits against their CRD schemas.

The schemas are the OpenAPI v3 ``openAPIV3Schema`` of Istio's EnvoyFilter
(``networking.istio.io/v1alpha3``) and WasmPlugin (``extensions.istio.io/v1alpha1``), shipped in
``schemas/istio-crd-schemas.yaml``, plus meshfilter's own schemas for ASMFilterDeployment and
core/v1 Secret (``schemas/meshfilter-schemas.yaml``).

*Strict* means what a Kubernetes API server with field validation ``Strict`` does, and more:

- an unknown field is an error: ``additionalProperties: false`` is injected into every object
  schema that has ``properties`` but neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields: true``;
- ``apiVersion``, ``kind`` and ``metadata`` (name, namespace, labels, annotations) are checked;
  the name must be a DNS-1123 subdomain;
- ``pattern`` ``$`` means end of input (as in ECMA-262, not Python's "before a final newline");
- ``nullable``, ``format: int32``/``int64``, ``x-kubernetes-list-type: map`` (unique keys) and
  every CEL rule in ``x-kubernetes-validations`` that the schemas contain are enforced. The CEL
  rules are implemented in Python, keyed by their message; a schema rule without an
  implementation makes :func:`validator_for` fail loudly, so no rule is ever silently skipped.

Usage::

    from meshfilter.k8s.schema import validate_resource, schema_errors
    validate_resource(doc)          # raises K8sError naming the first problem and its path
    schema_errors(doc)              # -> list of one-line problems (empty when valid)
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml

from meshfilter.errors import K8sError
from meshfilter.k8s.checks import DNS1123_LABEL, DNS1123_LABEL_MAX, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX

SCHEMA_FILES = ("istio-crd-schemas.yaml", "envoy-gateway-crd-schemas.yaml", "meshfilter-schemas.yaml")

# ObjectMeta: the fields meshfilter may write. Anything else in metadata is an error.
_LABEL_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": DNS1123_SUBDOMAIN_MAX,
                 "pattern": DNS1123_SUBDOMAIN.pattern},
        "namespace": {"type": "string", "minLength": 1, "maxLength": DNS1123_LABEL_MAX,
                      "pattern": DNS1123_LABEL.pattern},
        "labels": _LABEL_MAP,
        "annotations": _LABEL_MAP,
    },
}

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


# --- CEL rules (x-kubernetes-validations), implemented in Python, keyed by message -------------

def _has(obj: Any, key: str) -> bool:
    return isinstance(obj, Mapping) and key in obj


def _url_scheme_ok(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    scheme = urlsplit(url).scheme if "://" in url else ""
    return scheme in ("", "http", "https", "oci", "file")


CEL_RULES: dict[str, Callable[[Any], bool]] = {
    "wildcard not allowed in label value match": lambda v: "*" not in v,
    "wildcard is not supported in selector": lambda v: "*" not in v,
    "wildcard not allowed in label key match": lambda m: all("*" not in k for k in m),
    "key must not be empty": lambda m: all(len(k) != 0 for k in m),
    "cross namespace referencing is not currently supported": lambda v: len(v) == 0,
    "only one of targetRefs or selector can be set":
        lambda s: sum(_has(s, k) for k in ("selector", "targetRef", "targetRefs")) <= 1,
    "only one of targetRefs or workloadSelector can be set":
        lambda s: sum(_has(s, k) for k in ("workloadSelector", "targetRefs")) <= 1,
    "url must have schema one of [http, https, file, oci]": _url_scheme_ok,
    "only support waypointMatch when context is WAYPOINT":
        lambda m: (_has(m, "waypoint") == (m.get("context") == "WAYPOINT")) if _has(m, "context")
        else not _has(m, "waypoint"),
    "port must be between 1-65535": lambda p: 0 < p <= 65535,
    "value may only be set when valueFrom is INLINE":
        lambda e: e.get("valueFrom", "") != "HOST" or "value" not in e,
}


# Envoy Gateway's EnvoyExtensionPolicy (schemas/envoy-gateway-crd-schemas.yaml), rule by rule. The
# instance is defaulted first (see apply_defaults), as the API server does before it validates.

_GW_GROUP = "gateway.networking.k8s.io"
_GW_KINDS = ("Gateway", "ListenerSet", "HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute")
_ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "UDPRoute", "TCPRoute", "TLSRoute")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    """A Go/CEL duration (``"1h2m3.5s"``, ``"300ms"``, ``"-1s"``) in seconds; ValueError when malformed."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"not a duration: {text!r}")
    total = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    return -total if text.startswith("-") else total


def _type_iff(value: str, field: str) -> Callable[[Any], bool]:
    """``self.type == VALUE ? has(self.FIELD) : !has(self.FIELD)``"""
    return lambda o: _has(o, field) == (o["type"] == value)


def _body_mode(o: Any, direction: str) -> Any:
    mode = o.get("processingMode", {}).get(direction, {})
    return mode.get("body") if isinstance(mode, Mapping) else None


def _both_body(o: Any, test: Callable[[Any], bool]) -> bool:
    return any(b is not None and test(b) for b in (_body_mode(o, "request"), _body_mode(o, "response")))


CEL_RULES.update({
    "either targetRef or targetRefs must be used":
        lambda s: (_has(s, "targetRef") != _has(s, "targetRefs")) or len(s.get("targetSelectors") or []) > 0,
    "this policy can only have a targetRef.group of gateway.networking.k8s.io":
        lambda s: not _has(s, "targetRef") or s["targetRef"]["group"] == _GW_GROUP,
    "this policy can only have a targetRef.kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/TLSRoute":
        lambda s: not _has(s, "targetRef") or s["targetRef"]["kind"] in _GW_KINDS,
    "this policy can only have a targetRefs[*].group of gateway.networking.k8s.io":
        lambda s: not _has(s, "targetRefs") or all(r["group"] == _GW_GROUP for r in s["targetRefs"]),
    "this policy can only have a targetRefs[*].kind of Gateway/ListenerSet/HTTPRoute/GRPCRoute/TCPRoute/UDPRoute/"
    "TLSRoute":
        lambda s: not _has(s, "targetRefs") or all(r["kind"] in _GW_KINDS for r in s["targetRefs"]),
    "mergeType can only be used with xRoute targets":
        lambda s: not _has(s, "mergeType") or (
            (not _has(s, "targetRef") or s["targetRef"]["kind"] in _ROUTE_KINDS)
            and all(r["kind"] in _ROUTE_KINDS for r in s.get("targetRefs", []))
            and all(x["kind"] in _ROUTE_KINDS for x in s.get("targetSelectors", []))),
    "Replace is not a valid MergeType for EnvoyExtensionPolicy": lambda v: v != "Replace",
    "group must be gateway.networking.k8s.io": lambda x: not _has(x, "group") or x["group"] == _GW_GROUP,
    "selector must be specified when from is Selector": lambda n: n["from"] != "Selector" or _has(n, "selector"),
    # wasm and lua
    "If type is HTTP, http field needs to be set.": _type_iff("HTTP", "http"),
    "If type is Image, image field needs to be set.": _type_iff("Image", "image"),
    "only support Secret kind.": lambda r: r["kind"] == "Secret",
    "Exactly one of inline or valueRef must be set with correct type.":
        lambda x: (x["type"] == "Inline" and _has(x, "inline") and not _has(x, "valueRef"))
        or (x["type"] == "ValueRef" and not _has(x, "inline") and _has(x, "valueRef")),
    "Only a reference to an object of kind ConfigMap belonging to default v1 API group is supported.":
        lambda r: r["kind"] == "ConfigMap" and r["group"] in ("v1", ""),
    # extProc
    "BackendRefs must be used, backendRef is not supported.": lambda e: not _has(e, "backendRef"),
    "BackendRefs only supports Service, ServiceImport, and Backend kind.":
        lambda e: all(f["kind"] in ("Service", "ServiceImport", "Backend") for f in e.get("backendRefs", [])),
    "BackendRefs only supports Core, multicluster.x-k8s.io, and gateway.envoyproxy.io groups.":
        lambda e: all(f["group"] in ("", "multicluster.x-k8s.io", "gateway.envoyproxy.io")
                      for f in e.get("backendRefs", [])),
    "If FullDuplexStreamed body processing mode is used, FailOpen must be false.":
        lambda e: not (e.get("failOpen") is True and _both_body(e, lambda b: b == "FullDuplexStreamed")),
    "If shadowMode is enabled, body processing mode must be Streamed or unset.":
        lambda e: not (e.get("shadowMode") is True and _both_body(e, lambda b: b != "Streamed")),
    "Must have port for Service reference":
        lambda r: _has(r, "port") if (len(r["group"]) == 0 and r["kind"] == "Service") else True,
    "predictivePercent in preconnect policy only works with RoundRobin or Random load balancers":
        lambda b: not ("predictivePercent" in (b.get("connection") or {}).get("preconnect", {})
                       and (b.get("loadBalancer") or {}).get("type") not in ("Random", "RoundRobin")),
    "numerator must be less than or equal to denominator": lambda p: p["numerator"] <= p["denominator"],
    "If Health Checker type is HTTP, http field needs to be set.": _type_iff("HTTP", "http"),
    "If Health Checker type is TCP, tcp field needs to be set.": _type_iff("TCP", "tcp"),
    "The grpc field can only be set if the Health Checker type is GRPC.":
        lambda a: not _has(a, "grpc") or a["type"] == "GRPC",
    "a failure type and a success type must both be specified together":
        lambda m: any(e in ("Failure", "FailureSeriesStart") for e in m)
        == any(e in ("Success", "HealthyTransition") for e in m),
    "If ProxyHealthCheckLogSink type is File, file field needs to be set.": _type_iff("File", "file"),
    "The requestBody field can only be set when method is POST or PUT.":
        lambda h: not _has(h, "requestBody") or (_has(h, "method") and h["method"].upper() in ("POST", "PUT")),
    "If payload type is Text, text field needs to be set.": _type_iff("Text", "text"),
    "If payload type is Binary, binary field needs to be set.": _type_iff("Binary", "binary"),
    "timeout must be less than interval":
        lambda k: not _has(k, "timeout") or not _has(k, "interval")
        or go_duration(k["timeout"]) < go_duration(k["interval"]),
    "If LoadBalancer type is consistentHash, consistentHash field needs to be set.":
        _type_iff("ConsistentHash", "consistentHash"),
    "If LoadBalancer type is BackendUtilization, backendUtilization field needs to be set.":
        _type_iff("BackendUtilization", "backendUtilization"),
    "If LoadBalancer type is DynamicModule, dynamicModule field needs to be set.":
        _type_iff("DynamicModule", "dynamicModule"),
    "Currently SlowStart is only supported for RoundRobin, LeastRequest, and BackendUtilization load balancers.":
        lambda lb: not _has(lb, "slowStart") if lb["type"] in ("Random", "ConsistentHash", "DynamicModule") else True,
    "PreferLocal zone-aware routing is not supported for ConsistentHash load balancers. Use weightedZones instead.":
        lambda lb: not _has(lb["zoneAware"], "preferLocal")
        if lb["type"] == "ConsistentHash" and _has(lb, "zoneAware") else True,
    "PreferLocal zone-aware routing is not currently supported for BackendUtilization load balancers. Only "
    "WeightedZones can be used with BackendUtilization.":
        lambda lb: not _has(lb["zoneAware"], "preferLocal")
        if lb["type"] == "BackendUtilization" and _has(lb, "zoneAware") else True,
    "ZoneAware routing is not supported for DynamicModule load balancers.":
        lambda lb: not _has(lb, "zoneAware") if lb["type"] == "DynamicModule" else True,
    "ZoneAware PreferLocal and WeightedZones cannot be specified together.":
        lambda lb: not (_has(lb["zoneAware"], "preferLocal") and _has(lb["zoneAware"], "weightedZones"))
        if _has(lb, "zoneAware") else True,
    "EndpointOverride is not supported for DynamicModule load balancers.":
        lambda lb: not _has(lb, "endpointOverride") if lb["type"] == "DynamicModule" else True,
    "reportingPeriod must be greater than 0": lambda d: go_duration(d) > 0,
    "If consistent hash type is header, the header field must be set.": _type_iff("Header", "header"),
    "If consistent hash type is headers, the headers field must be set.": _type_iff("Headers", "headers"),
    "If consistent hash type is cookie, the cookie field must be set.": _type_iff("Cookie", "cookie"),
    "If consistent hash type is queryParams, the queryParams field must be set.":
        _type_iff("QueryParams", "queryParams"),
    "writableNamespaces cannot contain well-known Envoy HTTP filter namespaces":
        lambda ns: all(not f.startswith("envoy.filters.http") for f in ns),
})


def apply_defaults(instance: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of ``instance`` with the schema's ``default`` values filled in where a field is absent, at
    every level: what the API server does before it validates (so CEL rules see defaulted objects)."""
    if isinstance(instance, Mapping) and isinstance(schema, Mapping):
        props = schema.get("properties") or {}
        out = {k: apply_defaults(v, props[k]) if k in props else
               (apply_defaults(v, schema["additionalProperties"])
                if isinstance(schema.get("additionalProperties"), Mapping) else copy.deepcopy(v))
               for k, v in instance.items()}
        for key, sub in props.items():
            if key not in out and isinstance(sub, Mapping) and "default" in sub:
                out[key] = apply_defaults(copy.deepcopy(sub["default"]), sub)
        return out
    if isinstance(instance, list) and isinstance(schema, Mapping) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(v, schema["items"]) for v in instance]
    return copy.deepcopy(instance)


# --- schema loading and strictening ------------------------------------------------------------

def _walk(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _walk(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _walk(value)


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``schema`` in which unknown fields are errors and ``nullable`` is honoured."""
    out = copy.deepcopy(dict(schema))
    for node in _walk(out):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        if node.get("nullable") and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        if isinstance(node.get("pattern"), str):
            node["pattern"] = ecma_anchors(node["pattern"])
    return out


def ecma_anchors(pattern: str) -> str:
    """``pattern`` with each ``$`` anchor (outside a character class, not escaped) as ``\\Z``: ECMA-262's
    ``$`` is the end of input, Python's also matches before a final newline."""
    out: list[str] = []
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append("\\Z")
            continue
        out.append(ch)
    return "".join(out)


def cel_messages(schema: Any) -> list[str]:
    """The messages of every ``x-kubernetes-validations`` rule in ``schema``."""
    return [rule["message"] for node in _walk(schema)
            for rule in node.get("x-kubernetes-validations", []) if isinstance(rule, dict)]


@functools.cache
def raw_schemas() -> dict[str, dict[str, Any]]:
    """``"group/version/Kind"`` (``"v1/Secret"`` for core) -> the schema as published."""
    out: dict[str, dict[str, Any]] = {}
    pkg = resources.files("meshfilter.k8s") / "schemas"
    for name in SCHEMA_FILES:
        out.update(yaml.safe_load((pkg / name).read_text(encoding="utf-8")))
    return out


def resource_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict schema of a whole resource: the CRD schema plus apiVersion, kind, metadata."""
    key = f"{api_version}/{kind}"
    try:
        base = raw_schemas()[key]
    except KeyError:
        known = ", ".join(sorted(raw_schemas()))
        raise K8sError(f"no schema for {key}", where="schema", hint=f"known kinds: {known}") from None
    schema = copy.deepcopy(base)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "const": api_version}
    props["kind"] = {"type": "string", "const": kind}
    props["metadata"] = OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return strict_schema(schema)


def _make_validator_class() -> Any:
    import jsonschema
    from jsonschema import ValidationError

    def k8s_validations(validator: Any, rules: Any, instance: Any, schema: Any) -> Iterator[Any]:
        for rule in rules:
            check = CEL_RULES[rule["message"]]
            try:
                ok = check(instance)
            except (TypeError, AttributeError, KeyError, ValueError):  # a CEL evaluation error fails the rule
                ok = False
            if not ok:
                yield ValidationError(rule["message"])

    def list_map(validator: Any, list_type: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if list_type != "map" or not isinstance(instance, list):
            return
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen: set[tuple[Any, ...]] = set()
        for item in instance:
            if isinstance(item, Mapping):
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    yield ValidationError(f"duplicate entry for key {dict(zip(keys, key, strict=True))}")
                seen.add(key)

    def int_format(validator: Any, fmt: Any, instance: Any, schema: Any) -> Iterator[Any]:
        rng = _INT_RANGES.get(fmt)
        if rng and isinstance(instance, int) and not isinstance(instance, bool):
            if not rng[0] <= instance <= rng[1]:
                yield ValidationError(f"{instance} is out of range for {fmt}")

    base = jsonschema.Draft7Validator
    return jsonschema.validators.extend(base, {
        "x-kubernetes-validations": k8s_validations,
        "x-kubernetes-list-type": list_map,
        "format": int_format,
    })


@functools.cache
def validator_for(api_version: str, kind: str) -> Any:
    """A jsonschema validator enforcing the strict schema of ``api_version``/``kind``."""
    try:
        cls = _make_validator_class()
    except ModuleNotFoundError:  # pragma: no cover - jsonschema is a declared dependency
        raise K8sError("the Python package 'jsonschema' is not installed", where="schema",
                       hint="pip install jsonschema") from None
    schema = resource_schema(api_version, kind)
    missing = sorted({m for m in cel_messages(schema) if m not in CEL_RULES})
    if missing:
        raise K8sError(f"schema rule(s) without an implementation: {missing}",
                       where=f"schema {api_version}/{kind}", hint="add them to CEL_RULES")
    cls.check_schema(schema)
    return cls(schema)


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def schema_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every schema problem of ``doc`` as ``"<path>: <message>"``, sorted; empty when valid."""
    if not isinstance(doc, Mapping):
        return ["(root): not an object"]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["(root): apiVersion and kind must be strings"]
    validator = validator_for(api_version, kind)
    defaulted = apply_defaults(doc, validator.schema)
    errors = sorted(validator.iter_errors(defaulted), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [f"{_path(e.absolute_path)}: {e.message}" for e in errors]


def validate_resource(doc: Mapping[str, Any]) -> None:
    """Raise :class:`K8sError` naming the first schema problem of ``doc`` (one line)."""
    problems = schema_errors(doc)
    if problems:
        meta = doc.get("metadata") if isinstance(doc, Mapping) else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise K8sError(f"does not match the {doc.get('kind')} schema: {problems[0]}{more}",
                       where=f"{doc.get('kind')}/{name}",
                       hint="this is a bug in the renderer or in hand-made input; see docs/deploy.md")


def validate_resources(docs: Sequence[Mapping[str, Any]]) -> None:
    for doc in docs:
        validate_resource(doc)
