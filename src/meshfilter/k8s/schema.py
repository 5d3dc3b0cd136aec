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

SCHEMA_FILES = ("istio-crd-schemas.yaml", "meshfilter-schemas.yaml")

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
            # ECMA-262 '$' is the end of input; Python's also matches before a final newline
            node["pattern"] = re.sub(r"(?<!\\)\$", r"\\Z", node["pattern"])
    return out


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
            except (TypeError, AttributeError):
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
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.message))
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
