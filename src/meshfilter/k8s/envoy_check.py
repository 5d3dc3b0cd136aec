"""The real-Envoy check of an emitted resource: place its Envoy part — the HTTP filter Envoy would
run, with the module fetched or given locally — into a bootstrap and run ``envoy --mode validate``.

Envoy's validate mode creates the HTTP filter factories, so the Wasm module is compiled by V8 and its
``proxy_on_vm_start``/``proxy_on_configure`` run: a module that does not load, a wrong root id or a
configuration the module refuses all fail, and the error carries Envoy's own line.

Where the module comes from:

- ``module=`` bytes given by the caller (a local module file) win; if the resource carries a sha256
  of the module (EnvoyFilter remote code, WasmPlugin http(s) url) the bytes must match it;
- EnvoyFilter: embedded ``inline_bytes``; remote ``http_uri`` fetched here and checked against the
  sha256; a proxy-side ``filename`` needs ``module=``;
- WasmPlugin: ``oci://`` pulled from the registry (:mod:`meshfilter.oras.client`), ``http(s)://``
  fetched and checked against ``sha256``, ``file://`` read;
- ASMFilterDeployment: ``image`` pulled from the registry;
- EnvoyExtensionPolicy (Envoy Gateway): ``Image`` code pulled, ``HTTP`` code fetched and checked against
  its ``sha256``; its Lua filters run before its Wasm filters, in Envoy Gateway's order.

A WasmPlugin's ``vmConfig.env`` becomes the VM's ``environment_variables`` (inline values as
``key_values``, ``valueFrom: HOST`` as ``host_env_keys``), as Istio writes it; a WasmPlugin of
``type: NETWORK`` is a network filter (``envoy.filters.network.wasm``), checked on a TCP listener.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from meshfilter.envoy import bootstrap as b
from meshfilter.envoy.bootstrap import filter_bootstrap, wasm_code
from meshfilter.envoy.validate import validate_bootstrap
from meshfilter.errors import DigestMismatchError, K8sError, RegistryError, UsageError
from meshfilter.k8s import asm, envoy_gateway, envoyfilter, wasmplugin
from meshfilter.k8s.wasm_envoyfilter import wasm_http_filter
from meshfilter.util.digest import sha256_hex

OciFetcher = Callable[[str], bytes]
NETWORK_WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def verify_sha256(data: bytes, expected: str | None, *, where: str) -> bytes:
    if expected and sha256_hex(data) != expected.lower().removeprefix("sha256:"):
        raise DigestMismatchError(f"module sha256 is {sha256_hex(data)}, the resource expects {expected}",
                                  where=where, hint="rebuild the resource with the sha256 of this module")
    return data


def fetch_url(url: str, *, sha256: str | None = None, timeout: float = 30.0) -> bytes:
    """The bytes at an ``http(s)://`` or ``file://`` URL, checked against ``sha256`` when given."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        try:
            data = Path(parts.path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read the module: {exc.strerror}", where=url) from None
    elif parts.scheme in ("http", "https"):
        import requests

        try:
            resp = requests.get(url, timeout=timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"cannot fetch the module: {type(exc).__name__}", where=url,
                                hint="check the URL and that the server is reachable") from None
        if resp.status_code != 200:
            raise RegistryError(f"fetching the module answered HTTP {resp.status_code}", where=url,
                                hint="check the URL")
        data = resp.content
    else:
        raise UsageError(f"cannot fetch a module from a {parts.scheme or 'scheme-less'} URL", where=url,
                         hint="use http://, https:// or file://")
    return verify_sha256(data, sha256, where=url)


def pull_oci_module(image: str, **client_kwargs: Any) -> bytes:
    """The Wasm module of an OCI image (``oci://`` prefix optional), pulled with the ORAS client."""
    from meshfilter.oras.client import RegistryClient

    ref = image.removeprefix("oci://")
    return RegistryClient(ref, **client_kwargs).pull().module


def with_inline_code(http_filter: Mapping[str, Any], module: bytes) -> dict[str, Any]:
    """A copy of a Wasm HTTP filter whose ``vm_config.code`` embeds ``module``."""
    out = copy.deepcopy(dict(http_filter))
    out["typed_config"]["config"]["vm_config"]["code"] = wasm_code(inline=module)
    return out


def _is_wasm(http_filter: Mapping[str, Any]) -> bool:
    return http_filter.get("name") == "envoy.filters.http.wasm" or str(
        http_filter.get("typed_config", {}).get("@type", "")).endswith(".wasm.v3.Wasm")


def _module_for_code(code: Mapping[str, Any], module: bytes | None, where: str) -> bytes:
    local, remote = code.get("local", {}), code.get("remote")
    if remote:
        sha = remote.get("sha256")
        if module is not None:
            return verify_sha256(module, sha, where=where)
        return fetch_url(remote["http_uri"]["uri"], sha256=sha)
    if module is not None:
        return module
    if "inline_bytes" in local:
        return base64.b64decode(local["inline_bytes"])
    if "filename" in local:
        path = Path(local["filename"])
        if path.is_file():
            return path.read_bytes()
        raise UsageError(f"the module is a file on the proxy ({path}); give it locally to check it",
                         where=where, hint="pass `module` FILE with the same module")
    raise K8sError("the Wasm filter has no code", where=where)


def envoy_part(doc: Mapping[str, Any], *, module: bytes | None = None,
               oci_fetcher: OciFetcher | None = None) -> list[dict[str, Any]]:
    """The HTTP filters Envoy would run for ``doc``, Wasm code embedded (fetched when needed)."""
    kind = doc.get("kind")
    name = f"{kind}/{doc.get('metadata', {}).get('name')}"
    fetch_oci = oci_fetcher or pull_oci_module
    if kind == envoyfilter.KIND:
        out = []
        for http in envoyfilter.patch_values(doc):
            if _is_wasm(http):
                code = http["typed_config"]["config"]["vm_config"]["code"]
                http = with_inline_code(http, _module_for_code(code, module, name))
            out.append(http)
        return out
    if kind == wasmplugin.KIND:
        spec = doc["spec"]
        url, sha = spec["url"], spec.get("sha256")
        if module is not None:
            data = module if url.startswith("oci://") else verify_sha256(module, sha, where=name)
        elif url.startswith("oci://"):
            data = fetch_oci(url)
        else:
            data = fetch_url(url, sha256=sha)
        config = json.dumps(spec["pluginConfig"]) if spec.get("pluginConfig") else ""
        root_id = spec.get("pluginName", "")
        http = wasm_http_filter(code=wasm_code(inline=data), root_id=root_id, configuration=config,
                                vm_id=root_id or doc["metadata"]["name"],
                                fail_open=spec.get("failStrategy") == "FAIL_OPEN")
        env = environment_variables(spec.get("vmConfig", {}).get("env", []))
        if env:
            http["typed_config"]["config"]["vm_config"]["environment_variables"] = env
        if spec.get("type") == "NETWORK":
            return [network_wasm_filter(http["typed_config"]["config"])]
        return [http]
    if kind == envoy_gateway.KIND:
        spec = doc["spec"]
        out = [envoy_gateway.lua_http_filter(x) for x in spec.get("lua", [])]
        for i, ext in enumerate(spec.get("wasm", [])):
            code = ext["code"]
            if module is not None:
                data = verify_sha256(module, code.get("http", {}).get("sha256"), where=name)
            elif code["type"] == envoy_gateway.CODE_IMAGE:
                data = fetch_oci(code["image"]["url"])
            else:
                data = fetch_url(code["http"]["url"], sha256=code["http"].get("sha256"))
            http = envoy_gateway.wasm_http_filter(ext, serving_url="unused", sha256=sha256_hex(data),
                                                  vm_id=ext.get("name") or f"{doc['metadata']['name']}-{i}")
            out.append(with_inline_code(http, data))
        return out
    if kind == asm.KIND:
        filt = doc["spec"]["filter"]
        data = module if module is not None else fetch_oci(filt["image"])
        return [wasm_http_filter(code=wasm_code(inline=data), root_id=filt["rootID"],
                                 configuration=filt.get("parameters", ""))]
    raise K8sError(f"{kind} has no Envoy part to check", where=name)


def environment_variables(env: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Envoy's ``vm_config.environment_variables`` for a WasmPlugin's ``vmConfig.env`` (Istio's mapping)."""
    out: dict[str, Any] = {}
    host = [e["name"] for e in env if e.get("valueFrom") == wasmplugin.ENV_HOST]
    inline = {e["name"]: e.get("value", "") for e in env if e.get("valueFrom") != wasmplugin.ENV_HOST}
    if host:
        out["host_env_keys"] = host
    if inline:
        out["key_values"] = inline
    return out


def network_wasm_filter(plugin_config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``envoy.filters.network.wasm`` network filter running a plugin (a TCP filter)."""
    return {"name": "envoy.filters.network.wasm",
            "typed_config": {"@type": NETWORK_WASM_TYPE, "config": dict(plugin_config)}}


def is_network_filter(f: Mapping[str, Any]) -> bool:
    return str(f.get("typed_config", {}).get("@type", "")).startswith("type.googleapis.com/envoy.extensions.filters."
                                                                      "network.")


def tcp_bootstrap(network_filters: Sequence[Mapping[str, Any]], *, upstream: tuple[str, int] = ("127.0.0.1", 9),
                  listener_port: int = 0, host: str = "127.0.0.1") -> dict[str, Any]:
    """One TCP listener named ``main`` running ``network_filters``, then ``tcp_proxy`` to ``upstream``."""
    tcp_proxy = {"name": "envoy.filters.network.tcp_proxy",
                 "typed_config": {"@type": TCP_PROXY_TYPE, "stat_prefix": "main", "cluster": "upstream"}}
    listener = {"name": "main", "address": b.socket_address(host, listener_port),
                "filter_chains": [{"filters": [*(dict(f) for f in network_filters), tcp_proxy]}]}
    return b.bootstrap(listeners=[listener], clusters=[b.cluster("upstream", upstream[0], upstream[1])],
                       admin_host=host)


def check_bootstrap(doc: Mapping[str, Any], *, module: bytes | None = None,
                    oci_fetcher: OciFetcher | None = None) -> dict[str, Any]:
    """A bootstrap with one listener running the resource's filters: HTTP filters (then answering ``ok``), or
    network filters on a TCP listener (then ``tcp_proxy``)."""
    filters = envoy_part(doc, module=module, oci_fetcher=oci_fetcher)
    if filters and all(is_network_filter(f) for f in filters):
        return tcp_bootstrap(filters)
    return filter_bootstrap(filters)


def check_resource(doc: Mapping[str, Any], *, module: bytes | None = None,
                   oci_fetcher: OciFetcher | None = None,
                   binary: str | None = None) -> str:
    """Run ``envoy --mode validate`` on the resource's Envoy part; return Envoy's output.

    Raises :class:`meshfilter.errors.EnvoyValidationError` with Envoy's own error line (prefixed by
    the resource) when Envoy refuses it, e.g. when the module does not load."""
    from meshfilter.errors import EnvoyValidationError

    bootstrap = check_bootstrap(doc, module=module, oci_fetcher=oci_fetcher)
    try:
        return validate_bootstrap(bootstrap, binary=binary)
    except EnvoyValidationError as exc:
        wasm_lines = [_strip(ln) for ln in exc.log_tail.splitlines() if "[error][wasm]" in ln]
        what = exc.what + (f"; Envoy's Wasm log: {wasm_lines[0]}" if wasm_lines else "")
        raise EnvoyValidationError(what, where=f"{doc.get('kind')}/{doc['metadata']['name']}",
                                   hint="the filter (module) or its configuration does not load in Envoy",
                                   log_tail=exc.log_tail) from None


def _strip(line: str) -> str:
    return line.rsplit("] ", 1)[-1].strip()
