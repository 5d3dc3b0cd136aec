"""Tag rules compiled to Wasm, in a real Envoy: the gateway's routes see the tag (seed section 2.4).

A CORS filter before the tagging module resolves the route first, so a route chosen on the tag proves
the module's route-cache clear re-selected it (Envoy 1.40 would also clear on a header change, older
proxies do not). The emulator gives the same answers for the same requests.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import pytest

from meshfilter.envoy import RunningEnvoy
from meshfilter.envoy import bootstrap as bs
from meshfilter.filters import tagging as t
from meshfilter.wasm import HostEmulator, build_tag_rules

Headers = list[tuple[str, str]]
REQUESTS: list[tuple[Headers, bytes]] = [
    ([("user-agent", "Mozilla/5.0 (iPhone13,2)")], b"gray"),
    ([("user-agent", "curl/8")], b"base"),
    ([], b"base"),
    ([("user-agent", "iPhone13"), ("x-asm-prefer-tag", "version-base")], b"gray"),
    ([("user-agent", "curl/8"), ("x-asm-prefer-tag", "version-gray")], b"base"),
]


def _bootstrap(module: bytes, *, with_cors: bool) -> dict[str, Any]:
    gray = {"match": {"prefix": "/", "headers": [bs.header_exact("x-asm-prefer-tag", "version-gray")]},
            "direct_response": {"status": 200, "body": {"inline_string": "gray"}}}
    wasm = bs.wasm_filter(code=bs.wasm_code(inline=module), configuration="", root_id="", vm_id="tag-rules")
    filters = [bs.cors_filter(), wasm] if with_cors else [wasm]
    return bs.bootstrap(listeners=[bs.http_listener("main", 0, routes=[gray, bs.direct_response_route("base")],
                                                    http_filters=filters)])


def _route(env: RunningEnvoy, headers: Headers) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=15)
    try:
        conn.putrequest("GET", "/", skip_accept_encoding=True)
        for name, value in [*headers, ("origin", "http://example.com")]:
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().read()
    finally:
        conn.close()


@pytest.mark.parametrize("abi", ["0.2.1", "0.1.0"])
def test_gateway_routes_on_the_wasm_tag_after_cors(start: Callable[..., RunningEnvoy], abi: str) -> None:
    module = build_tag_rules(t.seed_ruleset(), abi=abi)
    env = start(_bootstrap(module, with_cors=True))
    emu = HostEmulator(module)
    for headers, expected in REQUESTS:
        assert _route(env, headers) == expected, (headers, env.log_tail())
        tag = emu.run_request(headers).request_header_values("x-asm-prefer-tag")
        assert tag == ["version-" + expected.decode()]
    assert [ln for ln in env.log_text().splitlines() if "[error]" in ln and "wasm" in ln.lower()] == []


def test_envoy_140_also_reselects_without_the_modules_clear(start: Callable[..., RunningEnvoy]) -> None:
    """Envoy 1.40 clears the route cache itself when a Wasm filter changes request headers, so even a
    module built with ``clear_route_cache=False`` routes on the tag here. This pins that fact; the
    module's own clear is for older proxies (Istio 1.8 era) that do not."""
    module = build_tag_rules(t.seed_ruleset(), clear_route_cache=False)
    env = start(_bootstrap(module, with_cors=True))
    assert _route(env, [("user-agent", "iPhone13")]) == b"gray"
