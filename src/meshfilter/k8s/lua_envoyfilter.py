"""An EnvoyFilter running an inline Lua script at the gateway (seed section 2.4). Pure.

Defaults are the seed's: namespace ``istio-system``, ``workloadSelector`` ``istio: ingressgateway``,
``context: GATEWAY``, ``INSERT_BEFORE`` the router, HTTP filter named ``envoy.lua`` whose
``typed_config`` is ``envoy.extensions.filters.http.lua.v3.Lua`` with the script inline
(``default_source_code.inline_string``). The result is validated strictly against the Istio CRD
schema (:func:`meshfilter.k8s.schema.validate_resource`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshfilter.envoy.bootstrap import LUA_TYPE
from meshfilter.k8s.checks import check_dns1123_label, check_dns1123_subdomain, check_int32, check_patch_context
from meshfilter.k8s.envoyfilter import envoy_filter, http_filter_patch
from meshfilter.k8s.schema import validate_resource

LUA_FILTER_NAME = "envoy.lua"
DEFAULT_NAME = "gateway-lua-tagging"
DEFAULT_NAMESPACE = "istio-system"
DEFAULT_SELECTOR: dict[str, str] = {"istio": "ingressgateway"}
DEFAULT_CONTEXT = "GATEWAY"


def lua_http_filter(script: str, *, name: str = LUA_FILTER_NAME) -> dict[str, Any]:
    """The ``envoy.filters.http.lua`` HTTP filter with ``script`` inline: exactly what Envoy runs."""
    return {"name": name,
            "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": script}}}


def lua_envoy_filter(script: str, *, name: str = DEFAULT_NAME, namespace: str = DEFAULT_NAMESPACE,
                     selector: Mapping[str, str] | None = None, context: str = DEFAULT_CONTEXT,
                     istio_version: str | None = None, priority: int | None = None) -> dict[str, Any]:
    """The EnvoyFilter resource; ``selector`` None means the seed's ``istio: ingressgateway``
    (pass ``{}`` to apply to every workload of the namespace)."""
    check_dns1123_subdomain(name, field="name")
    check_dns1123_label(namespace, field="namespace")
    check_patch_context(context, field="context")
    check_int32(priority, field="priority")
    labels = dict(DEFAULT_SELECTOR if selector is None else selector)
    patch = http_filter_patch(context, lua_http_filter(script), istio_version=istio_version)
    doc = envoy_filter(name, namespace=namespace, labels=labels or None, priority=priority, patches=[patch])
    validate_resource(doc)
    return doc
