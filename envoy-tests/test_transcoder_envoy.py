"""HTTP/JSON client -> real Envoy (gRPC-JSON transcoder) -> real gRPC server (the landing example).

Two variants of the same Envoy, both produced by the CLI:

* ``standalone``: ``meshfilter transcoder --proto landing.proto --envoy-config ...``;
* ``envoyfilter``: the seed's grpc-transcoder invocation (legacy filter name) rendered as an
  EnvoyFilter, whose ``patch.value`` is placed into a bootstrap in front of the same server.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from meshfilter.cli import main as cli_main
from meshfilter.envoy import RunningEnvoy
from meshfilter.examples.landing import HELLOS, LandingClient, descriptor_set, run_all
from meshfilter.k8s.envoyfilter import patch_values
from meshfilter.k8s.schema import validate_resource
from meshfilter.transcoder.bootstrap import bootstrap_with_filter
from meshfilter.util.ports import free_port
from meshfilter.util.proc import stop_process

pytestmark = pytest.mark.envoy
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
OPTIONS = ["--reject-unknown-method", "--convert-grpc-status"]


@pytest.fixture(scope="module")
def landing_port() -> Iterator[int]:
    """The example server as a subprocess on a free loopback port; ended by PID at teardown."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter.examples.landing", "serve", "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "listening" in line, line + proc.stdout.read().decode()
        with LandingClient(f"127.0.0.1:{port}") as c:
            c.wait_ready(15)
        yield port
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def proto_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from meshfilter.examples.landing import proto_text

    p = tmp_path_factory.mktemp("landing") / "landing.proto"
    p.write_text(proto_text(), encoding="utf-8")
    return p


def _standalone(tmp: Path, proto: Path, port: int) -> dict[str, Any]:
    out = tmp / "envoy.yaml"
    rc = cli_main(["transcoder", "--proto", str(proto), "--proto_pkg", "org.feuyeux.grpc", "--envoy-config",
                   "--grpc-server", f"127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--admin-port", "0",
                   *OPTIONS, "-o", str(out)])
    assert rc == 0
    return dict(yaml.safe_load(out.read_text()))


def _from_envoyfilter(tmp: Path, proto: Path, port: int) -> dict[str, Any]:
    desc = tmp / "landing.proto-descriptor"
    desc.write_bytes(descriptor_set())
    out = tmp / "ef.yaml"
    rc = cli_main(["transcoder", "--version", "1.7", "--service_port", "9996", "--service_name",
                   "grpc-server-svc", "--proto_pkg", "org.feuyeux.grpc", "--proto_svc", "LandingService",
                   "--descriptor", str(desc), *OPTIONS, "-o", str(out)])
    assert rc == 0
    doc = yaml.safe_load(out.read_text())
    validate_resource(doc)
    (value,) = patch_values(doc)
    assert value["name"] == "envoy.grpc_json_transcoder"  # grpc-transcoder's legacy name still loads
    return bootstrap_with_filter(value, grpc_host="127.0.0.1", grpc_port=port)


@pytest.fixture(params=["standalone", "envoyfilter"])
def envoy(request: pytest.FixtureRequest, start: Callable[..., RunningEnvoy], landing_port: int,
          proto_file: Path, tmp_path: Path) -> RunningEnvoy:
    build = _standalone if request.param == "standalone" else _from_envoyfilter
    return start(build(tmp_path, proto_file, landing_port))


def _check_result(result: dict[str, Any], idx: int) -> None:
    assert result["type"] == "OK"
    assert int(result["id"]) > 0 and isinstance(result["id"], str)  # int64 prints as a JSON string
    kv = result["kv"]
    assert kv["data"] == HELLOS[idx] and kv["idx"] == str(idx) and kv["meta"] == "PYTHON"
    assert UUID.match(kv["id"]), kv


def test_unary_get_talk(envoy: RunningEnvoy) -> None:
    r = requests.get(envoy.url(path="/v1/talk/0/java"), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == 200 and len(body["results"]) == 1
    _check_result(body["results"][0], 0)
    assert "\n" in r.text  # print_options.add_whitespace


def test_server_streaming_get_talk1n(envoy: RunningEnvoy) -> None:
    r = requests.get(envoy.url(path="/v1/talk1n/0,1,2/java"), timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 3  # a server stream becomes a JSON array
    for i, resp in enumerate(body):
        assert resp["status"] == 200
        _check_result(resp["results"][0], i)


def test_client_streaming_post_talkn1(envoy: RunningEnvoy) -> None:
    # a client stream is sent as a JSON array of request messages, one element per message
    reqs = [{"data": "3", "meta": "java"}, {"data": "4", "meta": "java"}, {"data": "5", "meta": "java"}]
    r = requests.post(envoy.url(path="/v1/talkn1"), data=json.dumps(reqs), timeout=10,
                      headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict) and body["status"] == 200
    assert [res["kv"]["data"] for res in body["results"]] == [HELLOS[3], HELLOS[4], HELLOS[5]]
    for res, i in zip(body["results"], (3, 4, 5), strict=True):
        _check_result(res, i)


def test_bidirectional_post_talknn(envoy: RunningEnvoy) -> None:
    reqs = [{"data": "1", "meta": "java"}, {"data": "2,3", "meta": "java"}]
    r = requests.post(envoy.url(path="/v1/talknn"), data=json.dumps(reqs), timeout=10,
                      headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 2
    assert [res["kv"]["idx"] for res in body[0]["results"]] == ["1"]
    assert [res["kv"]["idx"] for res in body[1]["results"]] == ["2", "3"]


def test_native_grpc_passes_through(envoy: RunningEnvoy) -> None:
    target = envoy.url().removeprefix("http://")
    results = run_all(target)
    assert results["talk"]["results"][0]["kv"]["data"] == "Hello"
    assert [r["results"][0]["kv"]["data"] for r in results["talkOneAnswerMore"]] == list(HELLOS[:3])
    assert len(results["talkMoreAnswerOne"]["results"]) == 3
    assert [r["results"][0]["kv"]["idx"] for r in results["talkBidirectional"]] == ["3", "4", "5"]


def test_unknown_path_is_404_with_reject_unknown_method(envoy: RunningEnvoy) -> None:
    r = requests.get(envoy.url(path="/v1/nothing/here"), timeout=10)
    assert r.status_code == 404, (r.status_code, r.text)


def test_malformed_json_body_is_400(envoy: RunningEnvoy) -> None:
    r = requests.post(envoy.url(path="/v1/talkn1"), data=b'[{"data": "0", ', timeout=10,
                      headers={"content-type": "application/json"})
    assert r.status_code == 400, (r.status_code, r.text)


def test_grpc_error_becomes_http_status_with_convert_grpc_status(envoy: RunningEnvoy) -> None:
    r = requests.get(envoy.url(path="/v1/talk/9/java"), timeout=10)
    assert r.status_code == 400, (r.status_code, r.text)  # INVALID_ARGUMENT -> 400
    body = r.json()
    assert body["code"] == 3 and "not an index" in body["message"]


def test_without_the_options_unknown_paths_and_errors_are_not_converted(
        start: Callable[..., RunningEnvoy], landing_port: int) -> None:
    """Control: the 404 and the JSON error body above come from the options, not from Envoy's defaults."""
    from meshfilter.examples.landing import SERVICE
    from meshfilter.transcoder.bootstrap import transcoder_bootstrap

    envoy = start(transcoder_bootstrap(descriptor=descriptor_set(), services=[SERVICE], grpc_host="127.0.0.1",
                                       grpc_port=landing_port))
    r = requests.get(envoy.url(path="/v1/nothing/here"), timeout=10)
    assert r.status_code != 404  # passed through to the gRPC server, which resets it
    r = requests.get(envoy.url(path="/v1/talk/9/java"), timeout=10)
    assert r.headers.get("grpc-status") == "3" and r.content == b""  # no JSON google.rpc.Status body
    assert requests.get(envoy.url(path="/v1/talk/2/java"), timeout=10).json()["results"][0]["kv"]["data"] == "Hola"


def test_server_answers_directly(landing_port: int) -> None:
    """Sanity check of the server fixture itself."""
    t0 = time.monotonic()
    with LandingClient(f"127.0.0.1:{landing_port}") as c:
        assert c.talk("5").results[0].kv["data"] == HELLOS[5]
    assert time.monotonic() - t0 < 10
