"""A proxy-wasm network (TCP) filter in Envoy 1.40 (envoy.filters.network.wasm before tcp_proxy) and in
the emulator: the same bytes reach the upstream and the client, the same log lines in the same order
(tests/data/wasm_tcp/tcp_filter.wat; the module the deploy tests can reuse for a NETWORK WasmPlugin)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from tests.wasm_modules import TCP_FILTER

from meshfilter.envoy import RunningEnvoy, start_envoy
from meshfilter.envoy import bootstrap as bs
from meshfilter.wasm import assemble
from meshfilter.wasm.emulator import HostEmulator
from meshfilter.wasm.emulator.diff import _wasm_lines, parse_envoy_log

NETWORK_WASM = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


class PongServer:
    """Accepts one connection: reads a chunk, answers "pong", closes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            self.received.append(conn.recv(4096))
            conn.sendall(b"pong")
            time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pong() -> Iterator[PongServer]:
    server = PongServer()
    yield server
    server.close()


@pytest.fixture
def envoy(pong: PongServer) -> Iterator[RunningEnvoy]:
    module = assemble(TCP_FILTER.read_text())
    wasm = {"name": "envoy.filters.network.wasm", "typed_config": {
        "@type": NETWORK_WASM, "config": bs.wasm_plugin_config(code=bs.wasm_code(inline=module), configuration="",
                                                               root_id="tcp")}}
    proxy = {"name": "envoy.filters.network.tcp_proxy",
             "typed_config": {"@type": TCP_PROXY, "stat_prefix": "tcp", "cluster": "upstream"}}
    boot = bs.bootstrap(listeners=[{"name": "main", "address": bs.socket_address("127.0.0.1", 0),
                                    "filter_chains": [{"filters": [wasm, proxy]}]}],
                        clusters=[bs.cluster("upstream", "127.0.0.1", pong.port)])
    env = start_envoy(boot, log_level="trace")
    yield env
    env.stop()


def test_network_filter_same_in_envoy_and_emulator(envoy: RunningEnvoy, pong: PongServer) -> None:
    before = len(envoy.log_text())
    with socket.create_connection(("127.0.0.1", envoy.listener_ports["main"]), timeout=10) as client:
        client.sendall(b"ping")
        received = b""
        while chunk := client.recv(4096):
            received += chunk
    deadline = time.monotonic() + 10
    while "proxy_on_done" not in envoy.log_text()[before:] and time.monotonic() < deadline:
        time.sleep(0.05)
    logs, callbacks = _wasm_lines(parse_envoy_log(envoy.log_text()[before:]))

    emu = HostEmulator(TCP_FILTER.read_text(), root_id="tcp")
    result = emu.run_connection([b"ping"], [b"pong"])  # the upstream closes first, as PongServer does
    assert pong.received == [b"to-upstream:ping"] and result.downstream_data.startswith(b"to-upstream:ping")
    assert received == result.upstream_data == b"to-client:pongto-client:"
    assert logs == [(r.level, r.message) for r in result.logs]
    assert callbacks[:3] == ["proxy_on_context_create(2, 1)", "proxy_on_new_connection(2)",
                             "proxy_on_downstream_data(2, 4, 0)"]
