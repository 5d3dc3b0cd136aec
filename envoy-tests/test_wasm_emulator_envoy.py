"""The emulator agrees with a real Envoy on a module built with a real SDK (AssemblyScript).

The same request goes through the AssemblyScript SDK filter in Envoy 1.40 (upstream: the echo
server) and in the emulator; the upstream's request headers must equal the emulator's resulting
request headers, for the headers the filter touches.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshfilter.envoy import EchoServer, RunningEnvoy
from meshfilter.envoy import bootstrap as bs
from meshfilter.wasm import HostEmulator

AS_FILTER = Path(__file__).resolve().parent.parent / "tests" / "data" / "wasm_sdk" / "as_filter.wasm"
TOUCHED = ("user-agent", "x-as-seen", "x-as-tag")
REQUESTS = [
    [("user-agent", "curl/8")],
    [("user-agent", "curl/8"), ("x-as-tag", "client"), ("x-as-tag", "second")],
    [("user-agent", "a"), ("x-as-seen", "pre")],
]


def _upstream_headers(env: RunningEnvoy, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=15)
    try:
        conn.putrequest("GET", "/", skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200, body
        return [(k.lower(), v) for k, v in body["raw_headers"]]
    finally:
        conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


def test_assemblyscript_filter_same_in_envoy_and_emulator(start: Callable[..., RunningEnvoy], echo: EchoServer) -> None:
    module = AS_FILTER.read_bytes()
    wasm = bs.wasm_filter(code=bs.wasm_code(inline=module), configuration="gray", root_id="as_tag")
    env = start(bs.filter_bootstrap([wasm], upstream=(echo.host, echo.port)))
    emu = HostEmulator(module, root_id="as_tag", plugin_config=b"gray")
    assert emu.start()
    for headers in REQUESTS:
        in_envoy = [(k, v) for k, v in _upstream_headers(env, headers) if k in TOUCHED]
        in_emulator = [(k, v) for k, v in emu.run_request(headers).request_headers if k in TOUCHED]
        assert in_envoy == in_emulator, (headers, env.log_tail())
    assert ("x-as-tag", "gray") in in_emulator
