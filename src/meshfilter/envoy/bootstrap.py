"""Pure builders for Envoy bootstrap configuration (dicts ready for JSON/YAML).

Nothing here does I/O. Listener ports may be 0: the runner then reads the bound ports from the
admin ``/listeners`` endpoint.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


def socket_address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": int(port)}}


def admin(port: int = 0, host: str = "127.0.0.1") -> dict[str, Any]:
    return {"address": socket_address(host, port)}


def wasm_code(*, path: str | None = None, inline: bytes | None = None,
              remote_uri: str | None = None, sha256: str | None = None,
              remote_cluster: str | None = None) -> dict[str, Any]:
    """The ``vm_config.code`` of a Wasm filter: a local file, inline bytes, or a remote URL."""
    if path is not None:
        return {"local": {"filename": path}}
    if inline is not None:
        return {"local": {"inline_bytes": base64.b64encode(inline).decode()}}
    if remote_uri is not None:
        if not sha256 or not remote_cluster:
            raise ValueError("remote Wasm code needs sha256 and remote_cluster")
        return {"remote": {"http_uri": {"uri": remote_uri, "cluster": remote_cluster, "timeout": "10s"},
                           "sha256": sha256}}
    raise ValueError("wasm_code needs path, inline or remote_uri")


def wasm_plugin_config(*, code: dict[str, Any], configuration: str, root_id: str,
                       vm_id: str = "", name: str = "", fail_open: bool = False,
                       vm_configuration: str = "",
                       runtime: str = "envoy.wasm.runtime.v8") -> dict[str, Any]:
    """The ``config`` (envoy.extensions.wasm.v3.PluginConfig) of an ``envoy.filters.http.wasm``."""
    vm: dict[str, Any] = {"vm_id": vm_id or root_id, "runtime": runtime, "code": code}
    if vm_configuration:
        vm["configuration"] = {"@type": STRING_VALUE, "value": vm_configuration}
    cfg: dict[str, Any] = {
        "name": name or root_id,
        "root_id": root_id,
        "vm_config": vm,
        "configuration": {"@type": STRING_VALUE, "value": configuration},
    }
    if fail_open:
        cfg["failure_policy"] = "FAIL_OPEN"
    return cfg


def wasm_filter(**kwargs: Any) -> dict[str, Any]:
    """An ``envoy.filters.http.wasm`` HTTP filter; kwargs as :func:`wasm_plugin_config`."""
    return {"name": "envoy.filters.http.wasm",
            "typed_config": {"@type": WASM_TYPE, "config": wasm_plugin_config(**kwargs)}}


def lua_filter(code: str, *, lua_path: Sequence[str] = ()) -> dict[str, Any]:
    """An ``envoy.filters.http.lua`` HTTP filter running ``code``. ``lua_path``: folders the script's
    ``require`` searches first (``DIR/?.lua``, ``DIR/?/init.lua``), set on the script's first line so
    that Lua's line numbers stay those of the file."""
    if lua_path:
        code = lua_package_path_prefix(lua_path) + code
    return {"name": "envoy.filters.http.lua",
            "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": code}}}


def lua_package_path_prefix(dirs: Sequence[str]) -> str:
    """``package.path = "<dir>/?.lua;<dir>/?/init.lua;..." .. package.path; `` (no newline)."""
    entries = "".join(f"{d.rstrip('/')}/?.lua;{d.rstrip('/')}/?/init.lua;" for d in dirs)
    level = 0
    while f"]{'=' * level}]" in entries:
        level += 1
    eq = "=" * level
    return f"package.path = [{eq}[{entries}]{eq}] .. package.path; "


def header_mutation_set(name: str, value: str) -> dict[str, Any]:
    """Envoy's native header_mutation filter replacing one request header (OVERWRITE_IF_EXISTS_OR_ADD)."""
    return {
        "name": "envoy.filters.http.header_mutation",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
            "mutations": {"request_mutations": [{"append": {
                "header": {"key": name, "value": value},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]},
        },
    }


def cors_filter() -> dict[str, Any]:
    return {"name": "envoy.filters.http.cors",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}


def route_to_cluster(cluster: str, *, prefix: str = "/", headers: Sequence[dict[str, Any]] = (),
                     timeout: str = "15s") -> dict[str, Any]:
    match: dict[str, Any] = {"prefix": prefix}
    if headers:
        match["headers"] = list(headers)
    return {"match": match, "route": {"cluster": cluster, "timeout": timeout}}


def direct_response_route(body: str = "ok", status: int = 200, prefix: str = "/") -> dict[str, Any]:
    return {"match": {"prefix": prefix},
            "direct_response": {"status": status, "body": {"inline_string": body}}}


def header_exact(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "string_match": {"exact": value}}


def http_listener(name: str, port: int, *, routes: Sequence[dict[str, Any]],
                  http_filters: Sequence[dict[str, Any]] = (), host: str = "127.0.0.1",
                  stat_prefix: str | None = None, codec_type: str = "AUTO",
                  vhost_extra: dict[str, Any] | None = None,
                  hcm_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    vhost: dict[str, Any] = {"name": f"{name}_vhost", "domains": ["*"], "routes": list(routes)}
    if vhost_extra:
        vhost.update(vhost_extra)
    hcm: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": stat_prefix or name,
        "codec_type": codec_type,
        "route_config": {"name": f"{name}_routes", "virtual_hosts": [vhost]},
        "http_filters": [*http_filters, ROUTER],
    }
    if hcm_extra:
        hcm.update(hcm_extra)
    return {
        "name": name,
        "address": socket_address(host, port),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }


def cluster(name: str, host: str, port: int, *, http2: bool = False,
            connect_timeout: str = "5s") -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS" if not _is_ip(host) else "STATIC",
        "connect_timeout": connect_timeout,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(host, port)}}]}]},
    }
    if http2:
        c["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return c


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def bootstrap(*, listeners: Sequence[dict[str, Any]], clusters: Sequence[dict[str, Any]] = (),
              admin_port: int = 0, admin_host: str = "127.0.0.1") -> dict[str, Any]:
    return {
        "admin": admin(admin_port, admin_host),
        "static_resources": {"listeners": list(listeners), "clusters": list(clusters)},
    }


def filter_bootstrap(http_filters: Sequence[dict[str, Any]], *, upstream: tuple[str, int] | None = None,
                     listener_port: int = 0, host: str = "127.0.0.1",
                     extra_routes: Sequence[dict[str, Any]] = (),
                     upstream_http2: bool = False) -> dict[str, Any]:
    """One listener named ``main`` running ``http_filters``, then routing to ``upstream``
    (cluster ``upstream``) or, without one, answering ``ok`` directly."""
    if upstream:
        routes = [*extra_routes, route_to_cluster("upstream")]
        clusters = [cluster("upstream", upstream[0], upstream[1], http2=upstream_http2)]
    else:
        routes = [*extra_routes, direct_response_route()]
        clusters = []
    return bootstrap(listeners=[http_listener("main", listener_port, routes=routes,
                                              http_filters=http_filters, host=host)],
                     clusters=clusters, admin_host=host)
