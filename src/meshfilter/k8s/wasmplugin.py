"""Istio WasmPlugin (``extensions.istio.io/v1alpha1``). Pure.

``match[].mode`` is derived from the patch context the way Istio itself classifies listeners
(``workloadModeForListenerClass``): SIDECAR_OUTBOUND and GATEWAY are CLIENT, SIDECAR_INBOUND is
SERVER; ANY selects CLIENT_AND_SERVER.

Istio's current fields: ``targetRefs`` (a Gateway, GatewayClass, Service or ServiceEntry instead of a
label ``selector``; the schema's CEL rule allows only one of the two), ``match[].ports``, ``type``
(``HTTP`` or ``NETWORK``: a TCP filter) and ``vmConfig.env`` (variables given inline or taken from the
proxy's own environment, ``valueFrom: HOST``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshfilter.k8s.envoyfilter import metadata

API_VERSION = "extensions.istio.io/v1alpha1"
KIND = "WasmPlugin"
MATCH_MODES = {"SIDECAR_OUTBOUND": "CLIENT", "SIDECAR_INBOUND": "SERVER", "GATEWAY": "CLIENT",
               "ANY": "CLIENT_AND_SERVER"}
PHASES = ("UNSPECIFIED_PHASE", "AUTHN", "AUTHZ", "STATS")
FAIL_STRATEGIES = ("FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD")
PULL_POLICIES = ("UNSPECIFIED_POLICY", "IfNotPresent", "Always")
URL_SCHEMES = ("oci://", "http://", "https://", "file://")
PLUGIN_TYPES = ("HTTP", "NETWORK")
# the kinds a WasmPlugin's targetRefs may name, and their API groups (Istio's WasmPlugin reference):
# a Gateway or ServiceEntry in the same namespace, a GatewayClass from the root namespace, a Service
# (waypoints only)
TARGET_KINDS = {"Gateway": "gateway.networking.k8s.io", "GatewayClass": "gateway.networking.k8s.io",
                "Service": "", "ServiceEntry": "networking.istio.io"}
ENV_INLINE, ENV_HOST = "INLINE", "HOST"


def plugin_url(image: str, *, digest: str | None = None) -> str:
    """``oci://<image>`` (other URL schemes kept). With ``digest`` (``sha256:<hex>``) the URL is
    pinned: ``oci://<registry>/<repository>@<digest>``."""
    if image.startswith(URL_SCHEMES):
        url = image
    else:
        url = "oci://" + image
    if digest and url.startswith("oci://"):
        base = url[len("oci://"):].split("@", 1)[0]
        slash = base.rfind("/")
        colon = base.rfind(":")
        if colon > slash:  # drop the tag: the digest is the identity
            base = base[:colon]
        url = f"oci://{base}@{digest}"
    return url


def target_ref(kind: str, name: str, *, group: str | None = None) -> dict[str, str]:
    """One ``targetRefs`` entry; the group defaults to the kind's (:data:`TARGET_KINDS`)."""
    return {"group": TARGET_KINDS.get(kind, "") if group is None else group, "kind": kind, "name": name}


def vm_env(inline: Sequence[tuple[str, str]] = (), host: Sequence[str] = ()) -> list[dict[str, str]]:
    """``vmConfig.env``: inline ``(name, value)`` pairs, then names read from the proxy's environment."""
    return [*({"name": n, "value": v} for n, v in inline), *({"name": n, "valueFrom": ENV_HOST} for n in host)]


def wasm_plugin(name: str, *, url: str, namespace: str | None = None,
                labels: Mapping[str, str] | None = None, sha256: str | None = None,
                image_pull_policy: str | None = None, image_pull_secret: str | None = None,
                plugin_name: str | None = None, plugin_config: Mapping[str, Any] | None = None,
                phase: str | None = None, priority: int | None = None,
                fail_strategy: str | None = None, patch_context: str | None = None,
                target_refs: Sequence[Mapping[str, str]] = (), match_ports: Sequence[int] = (),
                plugin_type: str | None = None, env: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The WasmPlugin; empty optional fields are left out."""
    spec: dict[str, Any] = {}
    if labels:
        spec["selector"] = {"matchLabels": dict(labels)}
    if target_refs:
        spec["targetRefs"] = [dict(r) for r in target_refs]
    spec["url"] = url
    if sha256:
        spec["sha256"] = sha256
    if image_pull_policy:
        spec["imagePullPolicy"] = image_pull_policy
    if image_pull_secret:
        spec["imagePullSecret"] = image_pull_secret
    if plugin_name:
        spec["pluginName"] = plugin_name
    if plugin_config:
        spec["pluginConfig"] = dict(plugin_config)
    if phase:
        spec["phase"] = phase
    if priority is not None:
        spec["priority"] = int(priority)
    if fail_strategy:
        spec["failStrategy"] = fail_strategy
    if patch_context or match_ports:
        match: dict[str, Any] = {"mode": MATCH_MODES[patch_context or "ANY"]}
        if match_ports:
            match["ports"] = [{"number": int(p)} for p in match_ports]
        spec["match"] = [match]
    if plugin_type:
        spec["type"] = plugin_type
    if env:
        spec["vmConfig"] = {"env": [dict(e) for e in env]}
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": metadata(name, namespace=namespace), "spec": spec}
