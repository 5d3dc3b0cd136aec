"""An EnvoyFilter running a Wasm module: one HTTP_FILTER patch inserting ``envoy.filters.http.wasm``
(runtime v8) before the router. Pure.

The code is either embedded (``local.inline_bytes``), a file on the proxy (``local.filename``,
e.g. mounted with ``sidecar.istio.io/userVolumeMount``) or fetched by Envoy from an http(s) URL
(``remote.http_uri`` + ``sha256``) through a cluster of the proxy — by Istio's naming
``outbound|<port>||<host>``, which exists when the host is in the mesh registry (ServiceEntry).
The plugin configuration is a ``google.protobuf.StringValue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from meshfilter.envoy.bootstrap import wasm_code, wasm_filter
from meshfilter.k8s.envoyfilter import envoy_filter, http_filter_patch

# Kubernetes objects are stored in etcd, whose default request limit is 1.5 MiB
MAX_INLINE_BYTES = 1024 * 1024


def istio_outbound_cluster(url: str) -> str:
    """Istio's name of the outbound cluster for a URL's host: ``outbound|443||example.com``."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"outbound|{port}||{parts.hostname}"


def code_source(*, module: bytes | None = None, module_path: str | None = None,
                url: str | None = None, sha256: str | None = None,
                remote_cluster: str | None = None) -> dict[str, Any]:
    """``vm_config.code``: a proxy-side file path, embedded bytes, or a remote URL with sha256."""
    if url is not None:
        return wasm_code(remote_uri=url, sha256=sha256, remote_cluster=remote_cluster or istio_outbound_cluster(url))
    if module_path is not None:
        return wasm_code(path=module_path)
    if module is not None:
        return wasm_code(inline=module)
    raise ValueError("code_source needs module, module_path or url")


def wasm_http_filter(*, code: Mapping[str, Any], root_id: str, configuration: str,
                     vm_id: str | None = None, fail_open: bool = False) -> dict[str, Any]:
    """The ``envoy.filters.http.wasm`` HTTP filter (runtime v8) — the Envoy part of the resource."""
    return wasm_filter(code=dict(code), configuration=configuration, root_id=root_id,
                       vm_id=vm_id or root_id, fail_open=fail_open)


def wasm_envoy_filter(name: str, *, patch_context: str, code: Mapping[str, Any], root_id: str,
                      configuration: str, namespace: str | None = None,
                      labels: Mapping[str, str] | None = None, istio_version: str | None = None,
                      priority: int | None = None, fail_open: bool = False) -> dict[str, Any]:
    http = wasm_http_filter(code=code, root_id=root_id, configuration=configuration, fail_open=fail_open)
    patch = http_filter_patch(patch_context, http, istio_version=istio_version)
    return envoy_filter(name, namespace=namespace, labels=labels, priority=priority, patches=[patch])
