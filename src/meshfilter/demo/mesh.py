"""The demo mesh as data, and the Envoy bootstraps that realize it. Pure: no I/O.

The seed's topology (section 2.2): three services chained ``hello1 -> hello2 -> hello3``, each with
a ``v1`` (answers ``Hello``) and a ``v2`` (answers ``Bonjour``) Deployment. Its mesh semantics:

- a DestinationRule per service with subsets ``<service>v1`` / ``<service>v2`` (label ``version``);
- a VirtualService per service: an *exact* match on one request header selects the v2 subset,
  everything else goes to the v1 subset (:class:`RouteRule`).

Realization with Envoy (one process per box)::

    client -> ingress (gateway) --route on hello1's rule--> sidecar(hello1-vX).inbound -> app hello1-vX
    app hello1-vX -> sidecar(hello1-vX).outbound [filters of this workload] --route on hello2's rule-->
        sidecar(hello2-vY).inbound -> app hello2-vY -> ... -> app hello3-vZ

Cluster names follow Istio's ``outbound|8001|hello2v2|hello2-svc``. HTTP filters selected for a
workload (the propagate-header module from an ASMFilterDeployment) go on that workload's outbound
listener only (``SIDECAR_OUTBOUND``), before the router.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshfilter.envoy import bootstrap as bs

SERVICE_PORT = 8001  # the seed's hello*-svc port
GREETINGS = {"v1": "Hello", "v2": "Bonjour"}
AB_HEADER = "route-v"
CANARY_HEADER = "x-asm-prefer-tag"
CANARY_GRAY = "version-gray"
CANARY_BASE = "version-base"
LOCALHOST = "127.0.0.1"


@dataclass(frozen=True)
class Instance:
    """One Deployment of a service, e.g. ``hello1-deploy-v2``, and its app process."""

    service: str  # hello1
    version: str  # v1 | v2
    backend: str | None  # the service it calls (hello2), or None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.version}"

    @property
    def deployment(self) -> str:
        return f"{self.service}-deploy-{self.version}"

    @property
    def labels(self) -> dict[str, str]:
        """The pod labels of the seed's hello.yaml."""
        return {"app": self.deployment, "service": f"{self.service}-deploy", "version": self.version}

    @property
    def greeting(self) -> str:
        return GREETINGS[self.version]


@dataclass(frozen=True)
class RouteRule:
    """A VirtualService: ``header == value`` selects ``match_version``; otherwise ``default_version``."""

    header: str
    value: str
    match_version: str = "v2"
    default_version: str = "v1"


@dataclass(frozen=True)
class Topology:
    instances: tuple[Instance, ...]
    routes: Mapping[str, RouteRule]  # service -> its VirtualService
    entry: str = "hello1"  # the service the gateway routes to
    propagate: tuple[str, ...] = ()  # headers the apps copy to their backend calls
    name: str = "ab"

    def instance(self, name: str) -> Instance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise KeyError(name)

    def versions(self, service: str) -> list[str]:
        return [i.version for i in self.instances if i.service == service]

    def start_order(self) -> list[list[Instance]]:
        """Tiers of instances whose backends are already up: the leaves first (hello3, then hello2...)."""
        done: set[str] = set()
        tiers: list[list[Instance]] = []
        left = list(self.instances)
        while left:
            tier = [i for i in left if i.backend is None or i.backend in done]
            if not tier:
                raise ValueError(f"cycle among services: {sorted({i.service for i in left})}")
            tiers.append(tier)
            done.update(i.service for i in tier)
            left = [i for i in left if i not in tier]
        return tiers


def _chain(services: Sequence[str]) -> tuple[Instance, ...]:
    out = []
    for idx, svc in enumerate(services):
        backend = services[idx + 1] if idx + 1 < len(services) else None
        out += [Instance(svc, "v1", backend), Instance(svc, "v2", backend)]
    return tuple(out)


SEED_SERVICES = ("hello1", "hello2", "hello3")


def seed_ab_topology() -> Topology:
    """Seed section 2.2: ``route-v: v2`` -> hello1v2, ``route-v: hello2v2`` -> hello2v2,
    ``route-v: hello3v2`` -> hello3v2, default v1 everywhere."""
    return Topology(
        instances=_chain(SEED_SERVICES),
        routes={"hello1": RouteRule(AB_HEADER, "v2"),
                "hello2": RouteRule(AB_HEADER, "hello2v2"),
                "hello3": RouteRule(AB_HEADER, "hello3v2")},
        name="ab",
    )


def seed_canary_topology() -> Topology:
    """Seed section 2.4 on the same chain: every VirtualService routes ``x-asm-prefer-tag:
    version-gray`` to the gray (v2) subset and everything else to base (v1); the apps propagate the
    tag (what the seed's tracing agent does for its traffic label)."""
    rule = RouteRule(CANARY_HEADER, CANARY_GRAY)
    return Topology(instances=_chain(SEED_SERVICES), routes=dict.fromkeys(SEED_SERVICES, rule),
                    propagate=(CANARY_HEADER,), name="canary")


def svc_host(service: str) -> str:
    return f"{service}-svc"


def subset(service: str, version: str) -> str:
    return f"{service}{version}"


def cluster_name(service: str, version: str) -> str:
    """Istio's name for a subset cluster: ``outbound|8001|hello2v2|hello2-svc``."""
    return f"outbound|{SERVICE_PORT}|{subset(service, version)}|{svc_host(service)}"


def service_routes(topology: Topology, service: str) -> list[dict[str, Any]]:
    """The Envoy routes of one VirtualService: the exact header match first, then the default."""
    rule = topology.routes[service]
    versions = topology.versions(service)
    routes = []
    if rule.match_version in versions:
        routes.append(bs.route_to_cluster(cluster_name(service, rule.match_version),
                                          headers=[bs.header_exact(rule.header, rule.value)]))
    routes.append(bs.route_to_cluster(cluster_name(service, rule.default_version)))
    return routes


def service_clusters(topology: Topology, service: str, inbound_ports: Mapping[str, int]) -> list[dict[str, Any]]:
    """One cluster per subset, pointing at that instance's sidecar inbound listener."""
    return [bs.cluster(cluster_name(service, i.version), LOCALHOST, inbound_ports[i.name])
            for i in topology.instances if i.service == service]


ACCESS_LOG_FORMAT = (
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(:PATH)%\" %RESPONSE_CODE% route-v=%REQ(ROUTE-V)% "
    "x-asm-prefer-tag=%REQ(X-ASM-PREFER-TAG)% -> %UPSTREAM_CLUSTER%\n"
)


def _access_log() -> dict[str, Any]:
    return {"access_log": [{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
        },
    }]}


def _listener(name: str, port: int, *, routes: Sequence[dict[str, Any]], domains: Sequence[str] = ("*",),
              http_filters: Sequence[dict[str, Any]] = (), host: str = LOCALHOST) -> dict[str, Any]:
    lst = bs.http_listener(name, port, routes=routes, http_filters=http_filters, host=host,
                           vhost_extra={"domains": list(domains)}, hcm_extra=_access_log())
    # No SO_REUSEPORT: with it, two demos racing for 8001 would both bind it and share its traffic;
    # without it the loser fails to bind and takes a free port instead.
    lst["enable_reuse_port"] = False
    return lst


def ingress_bootstrap(topology: Topology, *, port: int, inbound_ports: Mapping[str, int],
                      http_filters: Sequence[dict[str, Any]] = (), host: str = LOCALHOST) -> dict[str, Any]:
    """The ingress gateway: listener ``gateway`` on ``port`` (0: any free one), every host, routed by
    the entry service's VirtualService, after ``http_filters`` (the canary's tagging filter)."""
    svc = topology.entry
    return bs.bootstrap(
        listeners=[_listener("gateway", port, routes=service_routes(topology, svc), http_filters=http_filters,
                             host=host)],
        clusters=service_clusters(topology, svc, inbound_ports),
        admin_host=LOCALHOST,
    )


def sidecar_bootstrap(topology: Topology, instance: Instance, *, app_port: int,
                      inbound_ports: Mapping[str, int],
                      outbound_filters: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """One workload's sidecar: listener ``inbound`` to its app, and, when the app has a backend,
    listener ``outbound`` for the backend's host, running ``outbound_filters`` then the backend's
    VirtualService. ``inbound_ports`` maps the backend's instances to their sidecars' inbound ports."""
    inbound_cluster = f"inbound|{SERVICE_PORT}||{svc_host(instance.service)}"
    listeners = [_listener("inbound", 0, routes=[bs.route_to_cluster(inbound_cluster)])]
    clusters = [bs.cluster(inbound_cluster, LOCALHOST, app_port)]
    if instance.backend:
        be = instance.backend
        host = svc_host(be)
        listeners.append(_listener("outbound", 0, routes=service_routes(topology, be),
                                   domains=(host, f"{host}:{SERVICE_PORT}"),
                                   http_filters=outbound_filters))
        clusters += service_clusters(topology, be, inbound_ports)
    return bs.bootstrap(listeners=listeners, clusters=clusters, admin_host=LOCALHOST)


@dataclass(frozen=True)
class WorkloadFilter:
    """An HTTP filter for the workloads whose labels include ``labels`` (ASMFilterDeployment
    ``spec.workload.labels``), in ``patch_context``."""

    id: str
    labels: Mapping[str, str]
    http_filter: dict[str, Any] = field(hash=False, compare=False)
    patch_context: str = "SIDECAR_OUTBOUND"
    summary: str = ""  # for humans: what the filter does

    def applies_to(self, instance: Instance) -> bool:
        return all(instance.labels.get(k) == v for k, v in self.labels.items())


def selected_filters(instance: Instance, filters: Sequence[WorkloadFilter]) -> list[WorkloadFilter]:
    """The filters for ``instance``'s outbound listener, in the given order."""
    return [f for f in filters if f.patch_context in ("SIDECAR_OUTBOUND", "ANY") and f.applies_to(instance)]


def outbound_filters(instance: Instance, filters: Sequence[WorkloadFilter]) -> list[dict[str, Any]]:
    """The outbound HTTP filters of ``instance``, in the given order."""
    return [f.http_filter for f in selected_filters(instance, filters)]
