"""Envoy Gateway's ``EnvoyExtensionPolicy`` (``gateway.envoyproxy.io/v1alpha1``): Wasm and Lua filters
attached to a Gateway API Gateway or route. Pure.

The shape follows Envoy Gateway's CRD (bundled, with provenance, in ``schemas/envoy-gateway-crd-schemas.yaml``):

- ``targetRefs``: Gateway API objects (group ``gateway.networking.k8s.io``): a Gateway or a route;
- ``wasm[]``: ``code`` from an OCI image (``type: Image``, ``image.url`` is ``registry/repo:tag``
  without a scheme, optional ``sha256`` and ``pullSecretRef``) or an HTTP URL (``type: HTTP``,
  ``http.url`` and ``sha256``), plus ``rootID``, ``config`` (any JSON), ``failOpen`` and
  ``env.hostKeys`` (the proxy's environment variables the VM may read);
- ``lua[]``: an inline script (``type: Inline``).

:func:`wasm_http_filter` is the Envoy side, as Envoy Gateway's xDS translator writes it
(``internal/xds/translator/wasm.go``): the controller downloads the module (checking ``sha256``) and
serves it to Envoy from its own HTTP server, so Envoy's ``vm_config.code`` is a ``remote`` data source
(``http_uri`` through a cluster, and the module's ``sha256``, which Envoy checks), ``vm_id`` is the
filter's name, the configuration a ``StringValue`` of the JSON config, and ``environment_variables``
carries the host keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from meshfilter.envoy.bootstrap import LUA_TYPE, STRING_VALUE, WASM_TYPE
from meshfilter.k8s.envoyfilter import metadata

API_VERSION = "gateway.envoyproxy.io/v1alpha1"
KIND = "EnvoyExtensionPolicy"
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
# the kinds the policy's CEL rules allow as targets
TARGET_KINDS = {k: GATEWAY_API_GROUP for k in
                ("Gateway", "HTTPRoute", "GRPCRoute", "ListenerSet", "TCPRoute", "UDPRoute", "TLSRoute")}
PULL_POLICIES = ("IfNotPresent", "Always")
CODE_IMAGE, CODE_HTTP = "Image", "HTTP"
# what Envoy Gateway's translator puts into the Envoy config (wasm.go)
WASM_CLUSTER = "wasm_cluster"
WASM_FETCH_TIMEOUT = "10s"
WASM_FETCH_RETRIES = 3


def target_ref(kind: str, name: str, *, section_name: str | None = None) -> dict[str, str]:
    ref = {"group": TARGET_KINDS.get(kind, GATEWAY_API_GROUP), "kind": kind, "name": name}
    if section_name:
        ref["sectionName"] = section_name
    return ref


def image_code(url: str, *, sha256: str | None = None, pull_secret: str | None = None,
               pull_policy: str | None = None) -> dict[str, Any]:
    """``code`` of an OCI image (``url`` as ``registry/repository:tag``, no ``oci://``)."""
    image: dict[str, Any] = {"url": url.removeprefix("oci://")}
    if sha256:
        image["sha256"] = sha256
    if pull_secret:
        image["pullSecretRef"] = {"group": "", "kind": "Secret", "name": pull_secret}
    code: dict[str, Any] = {"type": CODE_IMAGE, "image": image}
    if pull_policy:
        code["pullPolicy"] = pull_policy
    return code


def http_code(url: str, *, sha256: str | None = None) -> dict[str, Any]:
    """``code`` fetched over HTTP(S) by the Envoy Gateway controller, checked against ``sha256``."""
    http: dict[str, Any] = {"url": url}
    if sha256:
        http["sha256"] = sha256
    return {"type": CODE_HTTP, "http": http}


def wasm_extension(code: Mapping[str, Any], *, name: str | None = None, root_id: str | None = None,
                   config: Mapping[str, Any] | None = None, fail_open: bool = False,
                   host_env_keys: Sequence[str] = ()) -> dict[str, Any]:
    """One ``wasm[]`` entry; empty optional fields are left out."""
    out: dict[str, Any] = {}
    if name:
        out["name"] = name
    if root_id:
        out["rootID"] = root_id
    out["code"] = dict(code)
    if config:
        out["config"] = dict(config)
    if fail_open:
        out["failOpen"] = True
    if host_env_keys:
        out["env"] = {"hostKeys": list(host_env_keys)}
    return out


def lua_extension(script: str) -> dict[str, Any]:
    """One ``lua[]`` entry holding the script inline."""
    return {"type": "Inline", "inline": script}


def envoy_extension_policy(name: str, *, target_refs: Sequence[Mapping[str, str]],
                           wasm: Sequence[Mapping[str, Any]] = (), lua: Sequence[Mapping[str, Any]] = (),
                           namespace: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"targetRefs": [dict(r) for r in target_refs]}
    if wasm:
        spec["wasm"] = [dict(w) for w in wasm]
    if lua:
        spec["lua"] = [dict(x) for x in lua]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata(name, namespace=namespace), "spec": spec}


def wasm_http_filter(ext: Mapping[str, Any], *, serving_url: str, sha256: str, cluster: str = WASM_CLUSTER,
                     vm_id: str | None = None) -> dict[str, Any]:
    """The ``envoy.filters.http.wasm`` filter Envoy Gateway gives Envoy for one ``wasm[]`` entry: the
    module fetched by Envoy from ``serving_url`` (through ``cluster``) and checked against ``sha256``."""
    name = ext.get("name") or vm_id or ext.get("rootID") or "wasm"
    vm: dict[str, Any] = {
        "vm_id": vm_id or name,
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"remote": {
            "http_uri": {"uri": serving_url, "cluster": cluster, "timeout": WASM_FETCH_TIMEOUT},
            "sha256": sha256,
            "retry_policy": {"num_retries": WASM_FETCH_RETRIES},
        }},
    }
    keys = (ext.get("env") or {}).get("hostKeys")
    if keys:
        vm["environment_variables"] = {"host_env_keys": list(keys)}
    config: dict[str, Any] = {
        "name": name,
        "vm_config": vm,
        "configuration": {"@type": STRING_VALUE, "value": json.dumps(ext["config"]) if ext.get("config") else ""},
    }
    if ext.get("rootID"):
        config["root_id"] = ext["rootID"]
    if ext.get("failOpen"):
        config["failure_policy"] = "FAIL_OPEN"
    return {"name": "envoy.filters.http.wasm", "typed_config": {"@type": WASM_TYPE, "config": config}}


def lua_http_filter(ext: Mapping[str, Any]) -> dict[str, Any]:
    """The ``envoy.filters.http.lua`` filter for one inline ``lua[]`` entry."""
    return {"name": "envoy.filters.http.lua",
            "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": ext["inline"]}}}
