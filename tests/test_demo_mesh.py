"""Unit tests for the demo's pure parts: topology, routes, bootstraps, filter selection, apps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshfilter.demo import filters as demo_filters
from meshfilter.demo.apps import HelloApp, greeting_line
from meshfilter.demo.mesh import (
    Instance,
    cluster_name,
    ingress_bootstrap,
    outbound_filters,
    seed_ab_topology,
    seed_canary_topology,
    selected_filters,
    service_routes,
    sidecar_bootstrap,
)
from meshfilter.demo.run import AB_PROBES, CANARY_PROBES, Probe
from meshfilter.errors import ConfigError, UsageError

FAKE_MODULE = b"\x00asm\x01\x00\x00\x00"
SEED_HELLO1 = {
    "apiVersion": "istio.alibabacloud.com/v1beta1",
    "kind": "ASMFilterDeployment",
    "metadata": {"name": "hello1-propagate-header"},
    "spec": {
        "workload": {"kind": "Deployment", "labels": {"app": "hello1-deploy-v2", "version": "v2"}},
        "filter": {
            "patchContext": "SIDECAR_OUTBOUND",
            "parameters": '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}',
            "image": "wasm-repo-registry.cn-beijing.cr.aliyuncs.com/asm_wasm/propagate_header:0.0.1",
            "rootID": "propaganda_filter_root",
            "id": "hello1-propagate-header",
        },
    },
}


def _routes(boot: dict[str, Any], listener: str) -> list[dict[str, Any]]:
    lst = next(x for x in boot["static_resources"]["listeners"] if x["name"] == listener)
    hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
    return list(hcm["route_config"]["virtual_hosts"][0]["routes"])


def _http_filters(boot: dict[str, Any], listener: str) -> list[str]:
    lst = next(x for x in boot["static_resources"]["listeners"] if x["name"] == listener)
    return [f["name"] for f in lst["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]]


def _listeners(boot: dict[str, Any]) -> list[str]:
    return [x["name"] for x in boot["static_resources"]["listeners"]]


def _ports() -> dict[str, int]:
    return {f"hello{s}-v{v}": 20000 + 10 * s + v for s in (1, 2, 3) for v in (1, 2)}


# ------------------------------------------------------------------------------------ topology

def test_seed_ab_topology_has_six_instances_with_the_seed_labels() -> None:
    topo = seed_ab_topology()
    assert [i.name for i in topo.instances] == ["hello1-v1", "hello1-v2", "hello2-v1", "hello2-v2",
                                               "hello3-v1", "hello3-v2"]
    inst = topo.instance("hello2-v2")
    assert inst.labels == {"app": "hello2-deploy-v2", "service": "hello2-deploy", "version": "v2"}
    assert inst.backend == "hello3" and topo.instance("hello3-v1").backend is None
    assert (inst.greeting, topo.instance("hello2-v1").greeting) == ("Bonjour", "Hello")


def test_start_order_puts_backends_first() -> None:
    tiers = [[i.name for i in tier] for tier in seed_ab_topology().start_order()]
    assert tiers == [["hello3-v1", "hello3-v2"], ["hello2-v1", "hello2-v2"], ["hello1-v1", "hello1-v2"]]


@pytest.mark.parametrize(("service", "value"), [("hello1", "v2"), ("hello2", "hello2v2"), ("hello3", "hello3v2")])
def test_virtual_service_exact_match_selects_v2_and_default_v1(service: str, value: str) -> None:
    routes = service_routes(seed_ab_topology(), service)
    assert len(routes) == 2
    first, default = routes
    assert first["match"]["headers"] == [{"name": "route-v", "string_match": {"exact": value}}]
    assert first["route"]["cluster"] == f"outbound|8001|{service}v2|{service}-svc"
    assert "headers" not in default["match"]
    assert default["route"]["cluster"] == f"outbound|8001|{service}v1|{service}-svc"


def test_canary_routes_on_the_prefer_tag_and_apps_propagate_it() -> None:
    topo = seed_canary_topology()
    assert topo.propagate == ("x-asm-prefer-tag",)
    for svc in ("hello1", "hello2", "hello3"):
        first, default = service_routes(topo, svc)
        assert first["match"]["headers"] == [{"name": "x-asm-prefer-tag",
                                              "string_match": {"exact": "version-gray"}}]
        assert first["route"]["cluster"] == cluster_name(svc, "v2")
        assert default["route"]["cluster"] == cluster_name(svc, "v1")
    assert seed_ab_topology().propagate == ()  # A/B: the apps propagate nothing, the module does it


# ------------------------------------------------------------------------------------ bootstraps

def test_ingress_routes_hello1_and_points_clusters_at_the_sidecars() -> None:
    boot = ingress_bootstrap(seed_ab_topology(), port=8001, inbound_ports=_ports())
    assert _listeners(boot) == ["gateway"]
    lst = boot["static_resources"]["listeners"][0]
    assert lst["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8001}
    assert lst["enable_reuse_port"] is False  # a second demo must fail to bind 8001, not share it
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    assert set(clusters) == {cluster_name("hello1", "v1"), cluster_name("hello1", "v2")}
    ep = clusters[cluster_name("hello1", "v2")]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert ep["endpoint"]["address"]["socket_address"]["port_value"] == _ports()["hello1-v2"]
    assert _http_filters(boot, "gateway") == ["envoy.filters.http.router"]


def test_sidecar_has_inbound_to_its_app_and_outbound_to_its_backend() -> None:
    topo = seed_ab_topology()
    boot = sidecar_bootstrap(topo, topo.instance("hello1-v2"), app_port=31000, inbound_ports=_ports(),
                             outbound_filters=[{"name": "x.test"}])
    assert _listeners(boot) == ["inbound", "outbound"]
    assert all(x["address"]["socket_address"]["port_value"] == 0 for x in boot["static_resources"]["listeners"])
    assert _http_filters(boot, "inbound") == ["envoy.filters.http.router"]
    assert _http_filters(boot, "outbound") == ["x.test", "envoy.filters.http.router"]
    out_routes = _routes(boot, "outbound")
    assert out_routes[0]["match"]["headers"][0]["string_match"]["exact"] == "hello2v2"
    lst = next(x for x in boot["static_resources"]["listeners"] if x["name"] == "outbound")
    vhost = lst["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    assert vhost["domains"] == ["hello2-svc", "hello2-svc:8001"]
    clusters = {c["name"] for c in boot["static_resources"]["clusters"]}
    assert clusters == {"inbound|8001||hello1-svc", cluster_name("hello2", "v1"), cluster_name("hello2", "v2")}


def test_leaf_sidecar_has_no_outbound_listener() -> None:
    topo = seed_ab_topology()
    boot = sidecar_bootstrap(topo, topo.instance("hello3-v2"), app_port=31000, inbound_ports={})
    assert _listeners(boot) == ["inbound"]


# ------------------------------------------------------------------------------------ filters

def test_seed_filter_deployments_come_from_the_k8s_renderer_field_for_field() -> None:
    deps = demo_filters.seed_filter_deployments()
    assert [d["metadata"]["name"] for d in deps] == ["hello1-propagate-header", "hello2-propagate-header"]
    assert deps[0] == SEED_HELLO1
    assert json.loads(deps[1]["spec"]["filter"]["parameters"]) == {"head_tag_name": "route-v",
                                                                  "head_tag_value": "hello3v2"}
    assert [d["metadata"]["name"] for d in demo_filters.seed_filter_deployments(["hello1"])] == [
        "hello1-propagate-header"]


def test_unknown_only_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="hello9"):
        demo_filters.seed_filter_deployments(["hello9"])


def test_module_parameters_and_root_id_are_read_from_the_resources() -> None:
    dep = json.loads(json.dumps(SEED_HELLO1))
    dep["spec"]["filter"]["parameters"] = '{"head_tag_name": "x-other", "head_tag_value": "zz"}'
    dep["spec"]["filter"]["rootID"] = "another_root"
    dep["spec"]["workload"]["labels"] = {"app": "hello2-deploy-v1"}
    (flt,) = demo_filters.workload_filters([dep], FAKE_MODULE)
    cfg = flt.http_filter["typed_config"]["config"]
    assert cfg["root_id"] == "another_root"
    assert cfg["configuration"]["value"] == '{"head_tag_name": "x-other", "head_tag_value": "zz"}'
    assert cfg["vm_config"]["code"]["local"]["inline_bytes"] == "AGFzbQEAAAA="
    topo = seed_ab_topology()
    chosen = [i.name for i in topo.instances if outbound_filters(i, [flt])]
    assert chosen == ["hello2-v1"]


def test_seed_filters_land_on_the_v2_workloads_only() -> None:
    topo = seed_ab_topology()
    flts = demo_filters.workload_filters(demo_filters.seed_filter_deployments(), FAKE_MODULE)
    placed = {i.name: [f.id for f in selected_filters(i, flts)] for i in topo.instances}
    assert placed == {"hello1-v1": [], "hello1-v2": ["hello1-propagate-header"], "hello2-v1": [],
                      "hello2-v2": ["hello2-propagate-header"], "hello3-v1": [], "hello3-v2": []}
    only = demo_filters.workload_filters(demo_filters.seed_filter_deployments(["hello1"]), FAKE_MODULE)
    assert [i.name for i in topo.instances if selected_filters(i, only)] == ["hello1-v2"]


def test_inbound_context_filters_do_not_go_outbound() -> None:
    dep = json.loads(json.dumps(SEED_HELLO1))
    dep["spec"]["filter"]["patchContext"] = "SIDECAR_INBOUND"
    flts = demo_filters.workload_filters([dep], FAKE_MODULE)
    assert outbound_filters(Instance("hello1", "v2", "hello2"), flts) == []


def test_bad_parameters_in_a_resource_fail_with_the_shared_validation() -> None:
    dep = json.loads(json.dumps(SEED_HELLO1))
    dep["spec"]["filter"]["parameters"] = '{"head_tag_name": "route-v"}'
    with pytest.raises(ConfigError, match="missing key head_tag_value"):
        demo_filters.workload_filters([dep], FAKE_MODULE)


def test_gateway_tagging_filter_is_the_generated_lua() -> None:
    from meshfilter.filters.tagging import seed_ruleset
    from meshfilter.lua.codegen import compile_rules

    flt = demo_filters.gateway_tagging_filter()
    assert flt["name"] == "envoy.filters.http.lua"
    assert flt["typed_config"]["default_source_code"]["inline_string"] == compile_rules(seed_ruleset())


# ------------------------------------------------------------------------------------ apps, probes

def test_greeting_line_is_the_seed_form() -> None:
    assert greeting_line("Bonjour", "eric", "hello1", "172.17.68.239") == "Bonjour eric@hello1:172.17.68.239"


def test_leaf_app_answers_its_own_line_only() -> None:
    app = HelloApp(service="hello3", greeting="Hello", ip="127.0.0.1", backend=None, sidecar=None)
    assert app.answer("eric", {}) == (200, "Hello eric@hello3:127.0.0.1")


def test_app_without_a_sidecar_reports_the_broken_hop() -> None:
    app = HelloApp(service="hello1", greeting="Hello", ip="127.0.0.1", backend="hello2-svc", sidecar=None)
    assert app.answer("eric", {}) == (502, "Hello eric@hello1:127.0.0.1<(hello2-svc: no sidecar)")


def test_probe_curl_lines() -> None:
    url = "http://127.0.0.1:8001/hello/eric"
    assert AB_PROBES[0].curl(url) == f"curl -H 'route-v: v2' {url}"
    assert AB_PROBES[1].curl(url) == f"curl {url}"
    assert CANARY_PROBES[0].curl(url).startswith("curl -A 'Mozilla/5.0 (iPhone13")
    assert Probe("x", (("user-agent", "a"), ("x-asm-prefer-tag", "b"))).curl(url) == \
        f"curl -A 'a' -H 'x-asm-prefer-tag: b' {url}"
