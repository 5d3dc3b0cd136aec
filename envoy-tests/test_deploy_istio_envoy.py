"""Istio WasmPlugin's current fields in a real Envoy (both backends), as Istio translates them:

- ``vmConfig.env`` -> ``vm_config.environment_variables``: the module (tests/data/deploy/env_headers.wat)
  reads its environment with WASI ``environ_get`` and shows it as request headers; the emulator, given the
  same environment, shows the same (Envoy is the reference);
- ``type: NETWORK`` -> ``envoy.filters.network.wasm``: a TCP filter module (tcp_prefix.wat) runs on a TCP
  listener in front of a TCP echo server and prefixes what the client sends.

Both resources come from ``meshfilter deploy wasmplugin ... --validate`` (Envoy's validate mode on the
resource's Envoy part) before their Envoy part serves traffic.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from meshfilter import HostEmulator
from meshfilter.cli import main
from meshfilter.envoy import RunningEnvoy
from meshfilter.envoy.bootstrap import filter_bootstrap
from meshfilter.envoy.echo import EchoServer
from meshfilter.k8s.envoy_check import check_bootstrap, envoy_part, tcp_bootstrap
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import schema_errors
from meshfilter.wasm.codegen import assemble

pytestmark = [pytest.mark.envoy]
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "deploy"
HOST_VAR = "MESHFILTER_TEST_FROM_HOST"


def _module(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(assemble((DATA / f"{name}.wat").read_text()))
    return path


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Envoy loaded the filter" in err
    (doc,) = load_yaml(out)
    assert schema_errors(doc) == []
    return doc


def test_vm_env_reaches_the_module_and_the_emulator_agrees(start: Callable[..., RunningEnvoy], envoy_backend,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(HOST_VAR, "from the proxy's environment")
    module = _module("env_headers", tmp_path)
    doc = _cli(["deploy", "wasmplugin", "--name", "env", "--image", "r.example.com/env:1", "--root-id", "env",
                "--env", "LOG_FORMAT=json", "--env", "GREETING=a b=c", "--env-from-host", HOST_VAR,
                "--env-from-host", "MESHFILTER_TEST_NOT_SET", "--module", str(module), "--validate"], capsys)
    assert doc["spec"]["vmConfig"]["env"] == [
        {"name": "LOG_FORMAT", "value": "json"}, {"name": "GREETING", "value": "a b=c"},
        {"name": HOST_VAR, "valueFrom": "HOST"}, {"name": "MESHFILTER_TEST_NOT_SET", "valueFrom": "HOST"}]
    (http,) = envoy_part(doc, module=module.read_bytes())
    env = http["typed_config"]["config"]["vm_config"]["environment_variables"]
    assert env == {"host_env_keys": [HOST_VAR, "MESHFILTER_TEST_NOT_SET"],
                   "key_values": {"LOG_FORMAT": "json", "GREETING": "a b=c"}}
    with EchoServer() as echo:
        envoy = start(filter_bootstrap([http], upstream=(echo.host, echo.port)))
        resp = requests.get(envoy.url(path="/env"), timeout=10)
        assert resp.status_code == 200, resp.text
        seen = sorted(v for k, v in resp.json()["raw_headers"] if k == "x-wasm-env")
    # the environment Envoy gives the VM: key_values, plus each host key that its own environment has
    # (a process inherits ours; a container has its own, without our variable)
    expected = {"LOG_FORMAT": "json", "GREETING": "a b=c"}
    if envoy_backend.name == "process":
        expected[HOST_VAR] = os.environ[HOST_VAR]
    assert seen == sorted(f"{k}={v}" for k, v in expected.items())
    emulated = HostEmulator(module, root_id="env", environ=expected).run_request([(":path", "/env")])
    assert sorted(emulated.request_header_values("x-wasm-env")) == seen


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def tcp_echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on loopback; shut down by its handle at teardown."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _roundtrip(port: int, payload: bytes, want: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        got = b""
        while len(got) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def test_network_plugin_runs_on_a_tcp_listener(start: Callable[..., RunningEnvoy], tcp_echo: tuple[str, int],
                                               tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = _module("tcp_prefix", tmp_path)
    doc = _cli(["deploy", "wasmplugin", "--name", "tcp", "--image", "r.example.com/tcp:1", "--root-id", "tcp",
                "--type", "NETWORK", "--match-port", "9000", "--module", str(module), "--validate"], capsys)
    assert doc["spec"]["type"] == "NETWORK" and doc["spec"]["match"] == [{"mode": "CLIENT",
                                                                         "ports": [{"number": 9000}]}]
    (net,) = envoy_part(doc, module=module.read_bytes())
    assert net["name"] == "envoy.filters.network.wasm"
    listener = check_bootstrap(doc, module=module.read_bytes())["static_resources"]["listeners"][0]
    assert [f["name"] for f in listener["filter_chains"][0]["filters"]] == ["envoy.filters.network.wasm",
                                                                            "envoy.filters.network.tcp_proxy"]
    envoy = start(tcp_bootstrap([net], upstream=tcp_echo))
    port = envoy.listener_ports["main"]
    assert _roundtrip(port, b"hello\n", len(b"wasm:hello\n")) == b"wasm:hello\n"
    # control: the same listener without the module echoes the bytes unchanged
    plain = start(tcp_bootstrap([], upstream=tcp_echo))
    assert _roundtrip(plain.listener_ports["main"], b"hello\n", len(b"hello\n")) == b"hello\n"
