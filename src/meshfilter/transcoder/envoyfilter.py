"""Pure: the Istio EnvoyFilter(s) that install the gRPC-JSON transcoder, in grpc-transcoder's shape.

For the seed's invocation (``--version 1.7 --service_port 9996 --service_name grpc-server-svc
--proto_pkg org.feuyeux.grpc --proto_svc LandingService``) :func:`transcoder_envoyfilter` returns,
field for field, what grpc-transcoder emits::

    apiVersion: networking.istio.io/v1alpha3
    kind: EnvoyFilter
    metadata: {name: grpc-transcoder-grpc-server-svc}
    spec:
      workloadSelector: {labels: {app: istio-ingressgateway}}
      configPatches:
      - applyTo: HTTP_FILTER
        match:
          context: GATEWAY
          listener:
            portNumber: 9996
            filterChain: {filter: {name: envoy.filters.network.http_connection_manager,
                                   subFilter: {name: envoy.filters.http.router}}}
          proxy: {proxyVersion: '^1\\.7.*'}
        patch: {operation: INSERT_BEFORE, value: {name: envoy.grpc_json_transcoder, typed_config: ...}}

Differences from grpc-transcoder, on purpose: the proxyVersion regex is derived from any version
string (grpc-transcoder maps only 1.6-1.8 and silently turns anything else into 1.7);
``SIDECAR_INBOUND`` is supported (see :func:`default_selector` for the port semantics); the
companion header-to-metadata EnvoyFilter is emitted only when header mappings are given; and an
EnvoyFilter larger than Kubernetes' object limit is refused.

Ports. ``listener.portNumber`` means, per context:

* ``GATEWAY``: the port of the gateway's listener, i.e. the ``port.number`` of the Istio ``Gateway``
  server that receives the HTTP/JSON traffic (9996 in the seed);
* ``SIDECAR_INBOUND``: the port the workload's container listens on (the Service's ``targetPort``);
  Istio keys inbound filter chains by that destination port, not by the Service port.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

from meshfilter.errors import TranscoderError, UsageError
from meshfilter.k8s import envoyfilter as k8s_ef
from meshfilter.k8s.checks import check_patch_context
from meshfilter.k8s.checks import check_port as _check_port
from meshfilter.transcoder.config import TranscoderOptions, transcoder_filter

CONTEXTS = ("GATEWAY", "SIDECAR_INBOUND")
GATEWAY_SELECTOR = {"app": "istio-ingressgateway"}
HEADER_TO_METADATA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config"
# libyaml's emitter when available: the pure-Python one takes seconds on a large base64 scalar
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# etcd's default request limit is 1.5 MiB; the API server refuses larger objects.
K8S_OBJECT_LIMIT = 1536 * 1024
# `kubectl apply` (client side) copies the object into an annotation, limited to 256 KiB in total.
K8S_ANNOTATIONS_LIMIT = 256 * 1024


def proxy_version_regex(version: str) -> str:
    """``"1.7"`` -> ``^1\\.7.*``; any MAJOR.MINOR[.PATCH] works (derived, not looked up)."""
    try:
        return k8s_ef.proxy_version_regex(version)
    except UsageError:
        raise UsageError(f"version {version!r} is not MAJOR.MINOR or MAJOR.MINOR.PATCH", where="version",
                         hint="give the Istio version of the proxies, e.g. `version` 1.22") from None


def default_selector(context: str, service_name: str) -> dict[str, str]:
    """GATEWAY: the ingress gateway pods; SIDECAR_INBOUND: the gRPC server's pods (``app: NAME``)."""
    return dict(GATEWAY_SELECTOR) if context == "GATEWAY" else {"app": service_name}


def check_context(context: str) -> str:
    return check_patch_context(context, field="context", allowed=CONTEXTS, what="a supported patch context")


def _patch(context: str, port: int, version: str, value: Mapping[str, Any], operation: str) -> dict[str, Any]:
    """A configPatches entry, reusing the k8s block, with grpc-transcoder's key order."""
    base = k8s_ef.http_filter_patch(context, value, istio_version=version, operation=operation)
    m = base["match"]
    match = {"context": m["context"], "listener": {"portNumber": int(port), **m["listener"]},
             "proxy": m["proxy"]}
    return {"applyTo": base["applyTo"], "match": match, "patch": base["patch"]}


def _envoy_filter(name: str, selector: Mapping[str, str], patch: dict[str, Any],
                  namespace: str | None) -> dict[str, Any]:
    return k8s_ef.envoy_filter(name, patches=[patch], namespace=namespace, labels=selector)


def transcoder_envoyfilter(*, descriptor: bytes | None, services: Sequence[str], version: str = "1.8",
                           service_name: str = "grpc-transcoder", service_port: int = 80,
                           context: str = "GATEWAY", filter_name: str = "legacy",
                           options: TranscoderOptions | None = None,
                           selector: Mapping[str, str] | None = None,
                           namespace: str | None = None, descriptor_path: str | None = None) -> dict[str, Any]:
    """The EnvoyFilter installing the transcoder (grpc-transcoder's defaults for omitted flags). With
    ``descriptor_path`` the descriptor is a file on the proxy (``proto_descriptor``), not inlined."""
    check_context(context)
    check_port(service_port)
    value = transcoder_filter(descriptor, services, options, name=filter_name, descriptor_path=descriptor_path)
    doc = _envoy_filter(f"grpc-transcoder-{service_name}", selector or default_selector(context, service_name),
                        _patch(context, service_port, version, value, "INSERT_BEFORE"), namespace)
    check_size(doc)
    return doc


def header_to_metadata_filter(headers: Mapping[str, str]) -> dict[str, Any]:
    """Envoy's header_to_metadata filter copying each header into ``envoy.lb`` metadata key."""
    rules = [{"header": h, "on_header_present": {"metadata_namespace": "envoy.lb", "key": key,
                                                 "type": "STRING"}, "remove": False}
             for h, key in sorted(headers.items())]
    return {"name": "envoy.filters.http.header_to_metadata",
            "typed_config": {"@type": HEADER_TO_METADATA_TYPE, "request_rules": rules}}


def header_to_metadata_envoyfilter(headers: Mapping[str, str], *, version: str = "1.8",
                                   service_name: str = "grpc-transcoder", service_port: int = 80,
                                   context: str = "GATEWAY", selector: Mapping[str, str] | None = None,
                                   namespace: str | None = None) -> dict[str, Any]:
    """grpc-transcoder's companion EnvoyFilter for a header mapping ``x=a``: header ``x`` becomes the
    ``envoy.lb`` metadata key ``a`` (for subset load balancing), inserted first in the chain."""
    check_context(context)
    check_port(service_port)
    if not headers:
        raise UsageError("no header given", where="header", hint="write `header` x-user=user")
    return _envoy_filter(f"header-to-metadata-{service_name}",
                         selector or default_selector(context, service_name),
                         _patch(context, service_port, version, header_to_metadata_filter(headers),
                                "INSERT_FIRST"), namespace)


def check_port(port: int) -> int:
    return _check_port(port, field="service_port")


def object_size(doc: Mapping[str, Any]) -> int:
    """Bytes of the object as the API server stores it (compact JSON)."""
    return len(json.dumps(doc, separators=(",", ":")).encode())


def check_size(doc: Mapping[str, Any], limit: int = K8S_OBJECT_LIMIT) -> int:
    size = object_size(doc)
    if size > limit:
        name = doc.get("metadata", {}).get("name")
        raise TranscoderError(
            f"the EnvoyFilter would be {size} bytes ({size / 1048576:.2f} MiB), over Kubernetes' object "
            f"limit of {limit} bytes (1.5 MiB in etcd)", where=f"EnvoyFilter/{name}",
            hint="load the descriptor from a file on the proxy with `descriptor_path` PATH (a ConfigMap holds "
                 "up to 1 MiB), or narrow it: compile only the needed .proto files, without source info")
    return size


def size_warnings(doc: Mapping[str, Any]) -> list[str]:
    size = object_size(doc)
    if size > K8S_ANNOTATIONS_LIMIT:
        return [f"the {doc.get('kind', 'resource')} is {size} bytes: client-side `kubectl apply` stores a copy in "
                f"an annotation "
                f"limited to {K8S_ANNOTATIONS_LIMIT} bytes (hint: use `kubectl apply --server-side` or "
                f"`kubectl create`)"]
    return []


def render_yaml(docs: Sequence[Mapping[str, Any]], *, version: str) -> str:
    """Multi-document YAML with grpc-transcoder's header comment on each document."""
    parts = []
    for doc in docs:
        body = yaml.dump(dict(doc), Dumper=_DUMPER, sort_keys=False, width=2**31 - 1, allow_unicode=True)
        head = f"# GRPC Transcoder EnvoyFilter[{version}]\n" if doc.get("kind") == k8s_ef.KIND else ""
        parts.append(f"# Generated by meshfilter transcoder\n{head}{body}")
    return "---\n".join(parts)


# --- the descriptor as a file on the proxy: a ConfigMap and the annotations that mount it ----------

CONFIGMAP_LIMIT = 1024 * 1024  # the API server refuses a ConfigMap whose data exceed 1 MiB
DESCRIPTOR_VOLUME = "transcoder-descriptor"
USER_VOLUME = "sidecar.istio.io/userVolume"
USER_VOLUME_MOUNT = "sidecar.istio.io/userVolumeMount"


def check_descriptor_path(path: str) -> str:
    """An absolute file path: its directory is where the ConfigMap is mounted, its name the key."""
    p = PurePosixPath(path)
    if not p.is_absolute() or path.endswith("/") or p.name in ("", ".", ".."):
        raise UsageError(f"{path!r} is not an absolute file path", where="descriptor_path",
                         hint="give the file's path on the proxy, e.g. /etc/envoy/descriptor/landing.pb")
    if str(p.parent) == "/":
        raise UsageError(f"{path!r} is directly under /, where a volume cannot be mounted", where="descriptor_path",
                         hint="put it in a directory of its own, e.g. /etc/envoy/descriptor/landing.pb")
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", p.name):
        raise UsageError(f"the file name {p.name!r} cannot be a ConfigMap key", where="descriptor_path",
                         hint="use letters, digits, '-', '_' and '.' in the file name")
    return path


def descriptor_configmap(name: str, descriptor: bytes, *, descriptor_path: str,
                         namespace: str | None = None) -> dict[str, Any]:
    """The ConfigMap holding the descriptor set under the file name of ``descriptor_path``."""
    check_descriptor_path(descriptor_path)
    if len(descriptor) > CONFIGMAP_LIMIT:
        raise TranscoderError(
            f"the descriptor set is {len(descriptor)} bytes, over a ConfigMap's limit of {CONFIGMAP_LIMIT} bytes",
            where=f"ConfigMap/{name}",
            hint="narrow the descriptor (compile only the needed .proto files, without source info), or deliver "
                 "the file another way (a volume, the gateway image) and leave the ConfigMap out with "
                 "`no_descriptor_configmap`")
    key = PurePosixPath(descriptor_path).name
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": k8s_ef.metadata(name, namespace=namespace),
            "binaryData": {key: base64.b64encode(descriptor).decode("ascii")}}


def descriptor_volume_annotations(configmap: str, *, descriptor_path: str,
                                  volume: str = DESCRIPTOR_VOLUME) -> dict[str, str]:
    """The pod annotations that make Istio's injector mount the ConfigMap into the proxy container so that
    ``descriptor_path`` exists there: ``sidecar.istio.io/userVolume`` and ``userVolumeMount``."""
    check_descriptor_path(descriptor_path)
    mount_dir = str(PurePosixPath(descriptor_path).parent)
    vol = [{"name": volume, "configMap": {"name": configmap}}]
    mount = [{"name": volume, "mountPath": mount_dir, "readOnly": True}]
    return {USER_VOLUME: json.dumps(vol, separators=(",", ":")),
            USER_VOLUME_MOUNT: json.dumps(mount, separators=(",", ":"))}


def annotations_patch(annotations: Mapping[str, str]) -> dict[str, Any]:
    """A merge patch of a Deployment adding ``annotations`` to its pod template."""
    return {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}
