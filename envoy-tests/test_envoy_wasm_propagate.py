"""propagate-header in a real Envoy 1.40 (V8): header replace semantics, route re-selection behind
a filter that already resolved the route, refusal of bad configurations with the module's own log
line, and the header arriving through an Envoy upstream hop."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import pytest

from meshfilter.envoy import EchoServer, RunningEnvoy, validate_bootstrap
from meshfilter.envoy import bootstrap as bs
from meshfilter.errors import EnvoyError, EnvoyValidationError
from meshfilter.filters.propagate import LOG_PREFIX, PROBLEMS, ROOT_ID
from meshfilter.wasm import build_propagate_header

CONFIG = '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'
MODULES = {abi: build_propagate_header(abi=abi) for abi in ("0.2.1", "0.1.0")}
Start = Callable[..., RunningEnvoy]


def propagate(abi: str = "0.2.1", config: str = CONFIG, root_id: str = ROOT_ID) -> dict[str, Any]:
    return bs.wasm_filter(code=bs.wasm_code(inline=MODULES[abi]), configuration=config, root_id=root_id)


def get(env: RunningEnvoy, headers: list[tuple[str, str]], path: str = "/") -> dict[str, Any]:
    """GET through the listener with these header lines (repeats allowed); the echo's JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=10)
    try:
        conn.putrequest("GET", path)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (resp.status, body[:300], env.log_tail())
        result: dict[str, Any] = json.loads(body)
        return result
    finally:
        conn.close()


def values(echo_json: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in echo_json["raw_headers"] if k == name]


@pytest.fixture(scope="module")
def echo() -> Any:
    with EchoServer() as server:
        yield server


@pytest.mark.parametrize("abi", ["0.2.1", "0.1.0"])
def test_header_is_added_replaced_and_collapsed(start: Start, echo: EchoServer, abi: str) -> None:
    env = start(bs.filter_bootstrap([propagate(abi)], upstream=(echo.host, echo.port)))
    assert values(get(env, []), "route-v") == ["hello2v2"]
    assert values(get(env, [("route-v", "other")]), "route-v") == ["hello2v2"]
    several = get(env, [("route-v", "a"), ("x-keep", "1"), ("Route-V", "b"), ("route-v", "c")])
    assert values(several, "route-v") == ["hello2v2"]
    assert values(several, "x-keep") == ["1"]


def test_configured_name_is_lower_cased_by_envoy(start: Start, echo: EchoServer) -> None:
    """The module passes the name as configured; Envoy lower-cases header names itself."""
    env = start(bs.filter_bootstrap([propagate(config='{"head_tag_name": "Route-V", "head_tag_value": "x"}')],
                                    upstream=(echo.host, echo.port)))
    got = get(env, [("route-v", "a"), ("ROUTE-V", "b")])
    assert [(k, v) for k, v in got["raw_headers"] if k.lower() == "route-v"] == [("route-v", "x")]


def _routes_v2_first() -> list[dict[str, Any]]:
    """Route 1 matches route-v: hello2v2 and tags the request x-route: v2; route 2 is the default."""
    v2 = bs.route_to_cluster("upstream", headers=[bs.header_exact("route-v", "hello2v2")])
    v2["request_headers_to_add"] = [{"header": {"key": "x-route", "value": "v2"}}]
    default = bs.route_to_cluster("upstream")
    default["request_headers_to_add"] = [{"header": {"key": "x-route", "value": "default"}}]
    return [v2, default]


def _listener_bootstrap(filters: list[dict[str, Any]], echo: EchoServer) -> dict[str, Any]:
    return bs.bootstrap(
        listeners=[bs.http_listener("main", 0, routes=_routes_v2_first(), http_filters=filters)],
        clusters=[bs.cluster("upstream", echo.host, echo.port)])


@pytest.mark.parametrize("abi", ["0.2.1", "0.1.0"])
def test_route_is_reselected_after_cors_resolved_it(start: Start, echo: EchoServer, abi: str) -> None:
    env = start(_listener_bootstrap([bs.cors_filter(), propagate(abi)], echo))
    got = get(env, [("route-v", "v1"), ("origin", "http://example.com")])
    assert values(got, "route-v") == ["hello2v2"]
    assert values(got, "x-route") == ["v2"]


def test_envoy_140_reselects_without_the_modules_clear(start: Start, echo: EchoServer) -> None:
    """Envoy 1.40 clears the route cache itself when a Wasm filter changes a request header, so the
    ``clear_route_cache=False`` build (``--no-clear-route-cache``) routes on the header here too."""
    module = build_propagate_header(clear_route_cache=False)
    wasm = bs.wasm_filter(code=bs.wasm_code(inline=module), configuration=CONFIG, root_id=ROOT_ID)
    env = start(_listener_bootstrap([bs.cors_filter(), wasm], echo))
    got = get(env, [("route-v", "v1"), ("origin", "http://example.com")])
    assert values(got, "route-v") == ["hello2v2"]
    assert values(got, "x-route") == ["v2"]


def test_control_cors_pins_the_route_for_a_filter_that_does_not_clear_it(start: Start, echo: EchoServer) -> None:
    """Without a route-cache clear the header changes but the route chosen by CORS stays: so the
    test above really proves re-selection."""
    env = start(_listener_bootstrap([bs.cors_filter(), bs.header_mutation_set("route-v", "hello2v2")], echo))
    got = get(env, [("route-v", "v1")])
    assert values(got, "route-v") == ["hello2v2"]
    assert values(got, "x-route") == ["default"]


BAD_CONFIGS = {
    "invalid_json": '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"',
    "not_object": '["route-v", "hello2v2"]',
    "missing_name": '{"head_tag_value": "hello2v2"}',
    "missing_value": '{"head_tag_name": "route-v"}',
    "name_not_string": '{"head_tag_name": 7, "head_tag_value": "hello2v2"}',
    "value_not_string": '{"head_tag_name": "route-v", "head_tag_value": null}',
    "empty_name": '{"head_tag_name": "", "head_tag_value": "hello2v2"}',
    "bad_name": '{"head_tag_name": "route v", "head_tag_value": "hello2v2"}',
    "bad_value": '{"head_tag_name": "route-v", "head_tag_value": "hello\\r\\n2v2"}',
}


def test_every_problem_has_a_bad_config() -> None:
    assert set(BAD_CONFIGS) == set(PROBLEMS)


@pytest.mark.parametrize("problem", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_by_envoy_with_the_module_log_line(problem: str) -> None:
    boot = bs.filter_bootstrap([propagate(config=BAD_CONFIGS[problem])])
    with pytest.raises(EnvoyValidationError) as err:
        validate_bootstrap(boot)
    line = LOG_PREFIX + PROBLEMS[problem]
    error_lines = [ln for ln in err.value.log_tail.splitlines() if line in ln]
    assert error_lines and "[error]" in error_lines[0], err.value.log_tail
    assert "Unable to create Wasm plugin" in err.value.what


@pytest.mark.parametrize("abi", ["0.2.1", "0.1.0"])
def test_bad_config_makes_envoy_fail_to_start(start: Start, abi: str) -> None:
    with pytest.raises(EnvoyError) as err:
        start(bs.filter_bootstrap([propagate(abi, config='{"head_tag_name": "a b", "head_tag_value": "x"}')]),
              timeout=20)
    assert LOG_PREFIX + PROBLEMS["bad_name"] in err.value.log_tail, err.value.log_tail


def test_wrong_root_id_is_refused() -> None:
    with pytest.raises(EnvoyValidationError) as err:
        validate_bootstrap(bs.filter_bootstrap([propagate(root_id="some_other_root")]))
    assert "plugin root id does not match the module's root id propaganda_filter_root" in err.value.log_tail
    validate_bootstrap(bs.filter_bootstrap([propagate(root_id="")]))  # no root id: the default root context


def test_header_arrives_through_an_envoy_upstream_hop(start: Start, echo: EchoServer) -> None:
    """client -> Envoy A (propagate-header) -> Envoy B (routes on route-v) -> echo: B picks its
    v2 route because of the header A set, as a next hop's sidecar would pick the v2 subset."""
    hop = start(_listener_bootstrap([], echo), name="hop")
    edge = start(bs.filter_bootstrap([propagate()], upstream=("127.0.0.1", hop.listener_ports["main"])),
                 name="edge")
    got = get(edge, [("route-v", "v1")])
    assert values(got, "route-v") == ["hello2v2"]
    assert values(got, "x-route") == ["v2"]
    assert "x-envoy-expected-rq-timeout-ms" in got["headers"]  # it did pass through Envoy B
