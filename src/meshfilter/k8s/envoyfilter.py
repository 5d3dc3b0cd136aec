"""Generic building blocks of an Istio EnvoyFilter (``networking.istio.io/v1alpha3``). Pure.

Reused by every filter kind that ships as an EnvoyFilter (Wasm, Lua, gRPC-JSON transcoder)::

    from meshfilter.k8s.envoyfilter import envoy_filter, http_filter_patch, proxy_version_regex

    patch = http_filter_patch("SIDECAR_INBOUND", envoy_http_filter, istio_version="1.22")
    doc = envoy_filter("my-filter", namespace="default", labels={"app": "hello"},
                       patches=[patch], priority=10)

``envoy_http_filter`` is exactly the HTTP filter Envoy runs (``{"name": ..., "typed_config": ...}``,
e.g. from :mod:`meshfilter.envoy.bootstrap`), so the same dict can be placed into a bootstrap and
checked by ``envoy --mode validate`` (see :mod:`meshfilter.k8s.envoy_check`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from meshfilter.errors import UsageError

API_VERSION = "networking.istio.io/v1alpha3"
KIND = "EnvoyFilter"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"

_ISTIO_VERSION = re.compile(r"^[0-9]+(\.[0-9]+){0,2}$")


def proxy_version_regex(istio_version: str) -> str:
    """The ``match.proxy.proxyVersion`` regex selecting proxies of an Istio version.

    ``"1.7"`` -> ``^1\\.7.*`` (every 1.7.x), ``"1.22.3"`` -> ``^1\\.22\\.3.*``.
    """
    version = istio_version.strip()
    if not _ISTIO_VERSION.fullmatch(version):
        raise UsageError(f"Istio version {istio_version!r} is not MAJOR.MINOR or MAJOR.MINOR.PATCH",
                         where="istio_version", hint="for example `istio_version` 1.22")
    return "^" + re.escape(version) + ".*"


def metadata(name: str, *, namespace: str | None = None,
             labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``metadata`` with a stable key order: name, namespace, labels (empty parts left out)."""
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def workload_selector(labels: Mapping[str, str]) -> dict[str, Any]:
    return {"labels": dict(labels)}


def http_filter_patch(context: str, value: Mapping[str, Any], *, istio_version: str | None = None,
                      operation: str = "INSERT_BEFORE", before: str = ROUTER_FILTER) -> dict[str, Any]:
    """One ``configPatches`` entry: insert the HTTP filter ``value`` before ``before`` (the router)
    in every HTTP connection manager of ``context``, optionally only on proxies of an Istio version."""
    match: dict[str, Any] = {"context": context}
    if istio_version:
        match["proxy"] = {"proxyVersion": proxy_version_regex(istio_version)}
    match["listener"] = {"filterChain": {"filter": {"name": HCM_FILTER, "subFilter": {"name": before}}}}
    return {"applyTo": "HTTP_FILTER", "match": match,
            "patch": {"operation": operation, "value": dict(value)}}


def envoy_filter(name: str, *, patches: Sequence[Mapping[str, Any]], namespace: str | None = None,
                 labels: Mapping[str, str] | None = None, priority: int | None = None,
                 resource_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An EnvoyFilter resource. ``labels`` select the workloads (``workloadSelector``); without them
    the filter applies to the whole namespace (the root namespace: the whole mesh)."""
    spec: dict[str, Any] = {}
    if labels:
        spec["workloadSelector"] = workload_selector(labels)
    if priority is not None:
        spec["priority"] = int(priority)
    spec["configPatches"] = [dict(p) for p in patches]
    return {"apiVersion": API_VERSION, "kind": KIND,
            "metadata": metadata(name, namespace=namespace, labels=resource_labels), "spec": spec}


def patch_values(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The HTTP filters (``patch.value``) of an EnvoyFilter's HTTP_FILTER patches, in order."""
    return [dict(p["patch"]["value"]) for p in doc.get("spec", {}).get("configPatches", [])
            if p.get("applyTo") == "HTTP_FILTER" and "value" in p.get("patch", {})]
