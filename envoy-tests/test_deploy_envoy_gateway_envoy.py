"""Envoy Gateway's EnvoyExtensionPolicy in a real Envoy (both backends).

- The HTTP-URL code path as Envoy Gateway configures Envoy (internal/xds/translator/wasm.go): the module's
  ``vm_config.code`` is a ``remote`` data source, fetched by Envoy from an HTTP server (here a local one,
  ended by its handle at teardown) and checked against its sha256. The right sha256 loads and filters
  requests; a wrong one is refused: Envoy logs ``fetch remote data [uri = ...]: data is invalid``, the
  plugin fails to load and, failing closed, requests get 503.
- A policy holding both the Lua tagging filter and the Wasm module: both act on one request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from meshfilter.cli import main
from meshfilter.envoy import RunningEnvoy
from meshfilter.envoy.bootstrap import cluster, filter_bootstrap
from meshfilter.envoy.echo import EchoServer
from meshfilter.filters.propagate import ROOT_ID
from meshfilter.k8s import envoy_gateway as eg
from meshfilter.k8s.envoy_check import envoy_part
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import schema_errors
from meshfilter.testing.file_server import serve_directory
from meshfilter.wasm import build_propagate_header

pytestmark = [pytest.mark.envoy]
PARAMS = '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'


@pytest.fixture(scope="module")
def module() -> bytes:
    return build_propagate_header(abi="0.2.1", root_id=ROOT_ID)


@pytest.fixture
def served(module: bytes, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """(URL of the module, port) on a local HTTP server; shut down by its handle at teardown."""
    (tmp_path / "propagate_header.wasm").write_bytes(module)
    with serve_directory(tmp_path) as base:
        yield f"{base}/propagate_header.wasm", int(base.rsplit(":", 1)[1])


def _policy(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc = main(["deploy", "envoy-gateway", "--name", "propagate", "--namespace", "default", *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (doc,) = load_yaml(out)
    assert schema_errors(doc) == []
    return doc


def _remote_bootstrap(ext: dict[str, Any], url: str, port: int, sha256: str, upstream: EchoServer) -> dict[str, Any]:
    """Envoy Gateway's Envoy side: the remote-code Wasm filter, and the cluster it fetches the module through."""
    boot = filter_bootstrap([eg.wasm_http_filter(ext, serving_url=url, sha256=sha256)],
                            upstream=(upstream.host, upstream.port))
    boot["static_resources"]["clusters"].append(cluster(eg.WASM_CLUSTER, "127.0.0.1", port))
    return boot


def test_http_url_module_is_fetched_by_envoy_and_checked(module: bytes, served: tuple[str, int],
                                                         start: Callable[..., RunningEnvoy],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, port = served
    sha = hashlib.sha256(module).hexdigest()
    doc = _policy(["--target-ref", "HTTPRoute/hello", "--url", url, "--sha256", sha, "--root-id", ROOT_ID,
                   "--parameters", PARAMS, "--validate"], capsys)
    (ext,) = doc["spec"]["wasm"]
    assert ext["code"] == {"type": "HTTP", "http": {"url": url, "sha256": sha}}
    with EchoServer() as echo:
        envoy = start(_remote_bootstrap(ext, url, port, sha, echo))
        resp = requests.get(envoy.url(path="/hello"), headers={"route-v": "old"}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert [v for k, v in resp.json()["raw_headers"] if k == "route-v"] == ["hello2v2"]


def test_wrong_sha256_is_refused_by_envoy_with_its_log_line(module: bytes, served: tuple[str, int],
                                                            start: Callable[..., RunningEnvoy],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    url, port = served
    wrong = "0" * 64
    # meshfilter's own check refuses it before any Envoy runs
    rc = main(["deploy", "envoy-gateway", "--name", "p", "--target-ref", "Gateway/gw", "--url", url,
               "--sha256", wrong, "--root-id", ROOT_ID, "--parameters", PARAMS, "--validate"])
    _, err = capsys.readouterr()
    assert rc == 1 and "module sha256 is" in err and len(err.strip().splitlines()) == 1
    # and so does Envoy, fetching it as Envoy Gateway configures it
    ext = eg.wasm_extension(eg.http_code(url, sha256=wrong), root_id=ROOT_ID,
                            config={"head_tag_name": "route-v", "head_tag_value": "x"})
    with EchoServer() as echo:
        envoy = start(_remote_bootstrap(ext, url, port, wrong, echo), log_level="debug")
        resp = requests.get(envoy.url(path="/hello"), timeout=10)
        log = envoy.log_text()
    refused = [ln for ln in log.splitlines() if f"fetch remote data [uri = {url}]: data is invalid" in ln]
    print("Envoy's log line:", refused[:1])
    assert refused, log[-3000:]
    assert f"Plugin {ROOT_ID} failed to load" in log
    assert resp.status_code == 503  # failing closed: the filter is missing, requests are refused


def test_lua_tagging_and_wasm_in_one_policy(module: bytes, served: tuple[str, int], start: Callable[..., RunningEnvoy],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = served
    doc = _policy(["--target-ref", "Gateway/eg", "--url", url, "--sha256", hashlib.sha256(module).hexdigest(),
                   "--root-id", ROOT_ID, "--parameters", PARAMS, "--header", "user-agent", "--contains", "iPhone13",
                   "--set", "x-asm-prefer-tag=version-gray", "--else", "x-asm-prefer-tag=version-base",
                   "--validate"], capsys)
    assert [x["type"] for x in doc["spec"]["lua"]] == ["Inline"]
    filters = envoy_part(doc)
    assert [f["name"] for f in filters] == ["envoy.filters.http.lua", "envoy.filters.http.wasm"]  # EG's order
    with EchoServer() as echo:
        envoy = start(filter_bootstrap(filters, upstream=(echo.host, echo.port)))
        for agent, tag in (("Mozilla/5.0 (iPhone13)", "version-gray"), ("curl/8", "version-base")):
            resp = requests.get(envoy.url(path="/"), headers={"user-agent": agent, "route-v": "old"}, timeout=10)
            raw = resp.json()["raw_headers"]
            assert [v for k, v in raw if k == "x-asm-prefer-tag"] == [tag]
            assert [v for k, v in raw if k == "route-v"] == ["hello2v2"]
