"""Header tagging in a real Envoy: the seed's gateway scenario, and the differential test over the shared
vectors (tests/data/tagging_vectors.yaml) in every place the rules run:

  Python reference | Lua in LuaJIT in-process | Lua in Envoy | Wasm in the emulator | Wasm in Envoy

The Envoy columns send each vector's header lines over HTTP/1.1 to Envoy, which runs the filter and
forwards to the echo upstream; the upstream reports the header lines it received.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from meshfilter.envoy import EchoServer, RunningEnvoy
from meshfilter.envoy.bootstrap import (
    bootstrap,
    cluster,
    direct_response_route,
    filter_bootstrap,
    header_exact,
    http_listener,
    lua_filter,
    route_to_cluster,
    wasm_code,
    wasm_filter,
)
from meshfilter.filters import tagging as t
from meshfilter.k8s.envoyfilter import patch_values
from meshfilter.k8s.lua_envoyfilter import lua_envoy_filter
from meshfilter.lua.codegen import compile_rules
from meshfilter.lua.inprocess import run_request
from meshfilter.testing.tagging import load_vectors

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "data" / "tagging_vectors.yaml"
TABLE = load_vectors(VECTORS)
Headers = list[tuple[str, str]]
# a Lua error in Envoy's log: "[error][lua] ... script log: ..." or "... lua ... error"
LUA_ERROR = re.compile(r"\[(error|critical)\]\[lua\]|script log: .*attempt|lua_filter.*error", re.I)


def send(env: RunningEnvoy, headers: Sequence[tuple[str, str]], path: str = "/", listener: str = "main") -> Headers:
    """One HTTP/1.1 request with exactly these header lines (values sent as UTF-8 bytes); the header
    lines the echo upstream received, decoded back to text."""
    conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports[listener], timeout=15)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value.encode("utf-8"))
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body[:300]
    finally:
        conn.close()
    raw = json.loads(body)["raw_headers"]
    return [(k, v.encode("latin-1").decode("utf-8")) for k, v in raw]


def lua_envoy(start: Callable[..., RunningEnvoy], echo: EchoServer, rs: t.RuleSet) -> RunningEnvoy:
    """Envoy running exactly the HTTP filter of the EnvoyFilter `meshfilter lua tag` renders."""
    doc = lua_envoy_filter(compile_rules(rs))
    return start(filter_bootstrap(patch_values(doc), upstream=(echo.host, echo.port)))


def lua_errors(env: RunningEnvoy) -> list[str]:
    return [line for line in env.log_text().splitlines() if LUA_ERROR.search(line)]


# --------------------------------------------------------------------------- the seed's scenario


def test_seed_gateway_scenario(start: Callable[..., RunningEnvoy]) -> None:
    with EchoServer() as echo:
        env = lua_envoy(start, echo, t.seed_ruleset())

        def tag(headers: Headers) -> list[str]:
            return t.observe(send(env, headers), ["x-asm-prefer-tag"])["x-asm-prefer-tag"]

        ua_13 = "Mozilla/5.0 (iPhone13,2; CPU iPhone OS 15_0 like Mac OS X) AppleWebKit/605.1.15"
        assert tag([("user-agent", ua_13)]) == ["version-gray"]
        assert tag([("user-agent", "Mozilla/5.0 (Linux; Android 12; Pixel 6)")]) == ["version-base"]
        assert tag([]) == ["version-base"]  # no user agent at all
        # a client sending its own tag (even twice) gets it replaced by exactly one value
        assert tag([("user-agent", "curl/8.0"), ("x-asm-prefer-tag", "version-gray")]) == ["version-base"]
        assert tag([("X-ASM-Prefer-Tag", "a"), ("x-asm-prefer-tag", "b"), ("user-agent", ua_13)]) == \
            ["version-gray"]
        assert lua_errors(env) == []


def test_seed_published_script_crashes_without_user_agent(start: Callable[..., RunningEnvoy]) -> None:
    """Control for the log check above: the seed's own logic (concatenation fixed, stray ends removed)
    still passes nil to string.match, and Envoy logs that Lua error; ours does not."""
    seed_logic = """
function envoy_on_request(request_handle)
  local user_agent = request_handle:headers():get("user-agent")
  if string.match(user_agent, "^.*iPhone13.*") then
    request_handle:headers():add("x-asm-prefer-tag", "version-gray")
  else
    request_handle:headers():add("x-asm-prefer-tag", "version-base")
  end
end
"""
    with EchoServer() as echo:
        env = start(filter_bootstrap([lua_filter(seed_logic)], upstream=(echo.host, echo.port)))
        conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=15)
        conn.putrequest("GET", "/", skip_accept_encoding=True)
        conn.endheaders()
        conn.getresponse().read()
        conn.close()
        # and `add` keeps a client-sent value beside the new one
        got = send(env, [("user-agent", "curl"), ("x-asm-prefer-tag", "version-gray")])
        assert t.observe(got, ["x-asm-prefer-tag"])["x-asm-prefer-tag"] == ["version-gray", "version-base"]
        assert lua_errors(env), env.log_tail()


def test_gateway_routing_sees_the_tag(start: Callable[..., RunningEnvoy]) -> None:
    """Routes matching x-asm-prefer-tag in the same Envoy see the tag the filter set (Envoy clears the
    route cache when Lua changes request headers), also when the client sent the opposite tag."""
    gray = {"match": {"prefix": "/", "headers": [header_exact("x-asm-prefer-tag", "version-gray")]},
            "direct_response": {"status": 200, "body": {"inline_string": "gray"}}}
    lua_http = patch_values(lua_envoy_filter(compile_rules(t.seed_ruleset())))
    env = start(bootstrap(listeners=[http_listener("main", 0, routes=[gray, direct_response_route("base")],
                                                   http_filters=lua_http)]))

    def route(headers: Headers) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=15)
        try:
            conn.putrequest("GET", "/", skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            return conn.getresponse().read()
        finally:
            conn.close()

    assert route([("user-agent", "iPhone13"), ("x-asm-prefer-tag", "version-base")]) == b"gray"
    assert route([("user-agent", "curl/8"), ("x-asm-prefer-tag", "version-gray")]) == b"base"
    assert route([]) == b"base"


# --------------------------------------------------------------------------- differential


def _wasm_columns(name: str, rs: t.RuleSet) -> tuple[Callable[[Headers], Headers], dict[str, Any]]:
    """The Wasm module for ``rs``: a runner in the emulator, and the HTTP filter for Envoy."""
    from meshfilter.wasm import HostEmulator, build_tag_rules

    module = build_tag_rules(rs)
    emu = HostEmulator(module)

    def emulate(headers: Headers) -> Headers:
        result = emu.run_request(headers)
        assert not [r for r in result.logs if r.level in ("error", "critical")], result.logs
        return [(k, v) for k, v in result.request_headers]

    http_filter = wasm_filter(code=wasm_code(inline=module), configuration="", root_id="",
                              vm_id=f"tag-rules-{name}", name="tag-rules")
    return emulate, http_filter


def test_differential_all_columns(start: Callable[..., RunningEnvoy]) -> None:
    """Every vector, every column. One Envoy serves every rule set: listener ``lua-<ruleset>`` runs the
    Lua filter `meshfilter lua tag` renders, ``wasm-<ruleset>`` the Wasm module (portable sets only)."""
    columns: dict[str, dict[str, Callable[[Headers], Headers]]] = {}
    listeners = []
    for name, rs in TABLE.rulesets.items():
        script = compile_rules(rs)
        cols: dict[str, Callable[[Headers], Headers]] = {
            "python": lambda h, rs=rs: t.evaluate(rs, h),
            "lua-inprocess": lambda h, script=script: run_request(script, h).headers,
        }
        lua_http = patch_values(lua_envoy_filter(script))
        listeners.append(http_listener(f"lua-{name}", 0, routes=[route_to_cluster("upstream")], http_filters=lua_http))
        if not rs.uses_lua_only():
            cols["wasm-emulator"], wasm_http = _wasm_columns(name, rs)
            listeners.append(http_listener(f"wasm-{name}", 0, routes=[route_to_cluster("upstream")],
                                           http_filters=[wasm_http]))
        columns[name] = cols
    with EchoServer() as echo:
        env = start(bootstrap(listeners=listeners, clusters=[cluster("upstream", echo.host, echo.port)]))
        for name, rs in TABLE.rulesets.items():
            columns[name]["lua-envoy"] = lambda h, name=name: send(env, h, listener=f"lua-{name}")
            if not rs.uses_lua_only():
                columns[name]["wasm-envoy"] = lambda h, name=name: send(env, h, listener=f"wasm-{name}")
        mismatches = []
        checked = 0
        for v in TABLE.vectors:
            rs = TABLE.rulesets[v.ruleset]
            for col, run in columns[v.ruleset].items():
                got = t.observe(run(list(v.headers)), rs.set_names())
                checked += 1
                if got != v.expect:
                    mismatches.append(f"{v.id} [{col}]: got {_short(got)}, expected {_short(v.expect)}")
        assert not mismatches, "\n".join(mismatches)
        assert lua_errors(env) == []
    portable = sum(1 for v in TABLE.vectors if not v.lua_only)
    assert portable >= 40
    assert checked == 5 * portable + 3 * (len(TABLE.vectors) - portable)


def _short(obj: object) -> str:
    text = repr(obj)
    return text if len(text) < 200 else text[:200] + "..."
