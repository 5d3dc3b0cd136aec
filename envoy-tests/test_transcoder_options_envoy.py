"""GrpcJsonTranscoder's options, each proven in a real Envoy (both backends) where it changes behaviour.

The same request goes to two Envoys made by ``meshfilter transcoder --envoy-config``: one with Envoy's
defaults, one with the option's flag, in front of one gRPC server (tests/data/transcoder/options.proto,
every method echoes what it received). The descriptor-as-a-file path (``--descriptor-path``) is proven
too: Envoy loads ``proto_descriptor`` from the file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from meshfilter.cli import main
from meshfilter.envoy import RunningEnvoy
from meshfilter.envoy import bootstrap as b
from meshfilter.transcoder.compile import compile_protos

pytestmark = pytest.mark.envoy
PROTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "transcoder" / "options.proto"
PKG = "meshfilter.test"


@pytest.fixture(scope="module")
def descriptor() -> bytes:
    return compile_protos([PROTO], [PROTO.parent])


@pytest.fixture(scope="module")
def grpc_port(descriptor: bytes) -> Iterator[int]:
    """The Options service on a loopback port (grpcio, in this process); stopped by its handle at teardown."""
    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor).file:
        pool.AddSerializedFile(f.SerializeToString())

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    echo_t, body_t, unknown_t = cls(f"{PKG}.EchoRequest"), cls("google.api.HttpBody"), cls(f"{PKG}.UnknownQueryParams")

    def raw(req: Any, ctx: Any) -> Any:
        lines = []
        for ext in req.extensions:
            if ext.type_url.endswith(".UnknownQueryParams"):
                params = unknown_t.FromString(ext.value)
                lines += [f"{k}={','.join(params.key[k].values)}" for k in sorted(params.key)]
        return body_t(content_type="text/plain", data="\n".join(lines).encode())

    def unary(fn: Callable[..., Any], req_t: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=req_t.FromString,
                                                   response_serializer=lambda m: m.SerializeToString())

    handlers = {
        "Echo": unary(lambda req, ctx: req, echo_t), "Path": unary(lambda req, ctx: req, echo_t),
        "Verb": unary(lambda req, ctx: req, echo_t), "Raw": unary(raw, body_t),
        "Stream": grpc.unary_stream_rpc_method_handler(lambda req, ctx: iter([req, req]),
                                                       request_deserializer=echo_t.FromString,
                                                       response_serializer=lambda m: m.SerializeToString()),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(f"{PKG}.Options", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait(10)


def _bootstrap(tmp_path: Path, port: int, *flags: str) -> dict[str, Any]:
    out = tmp_path / f"envoy-{abs(hash(flags))}.yaml"
    rc = main(["transcoder", "--proto", str(PROTO), "-I", str(PROTO.parent), "--envoy-config", "--grpc-server",
               f"127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--admin-port", "0", "--reject-unknown-method",
               *flags, "-o", str(out)])
    assert rc == 0
    return dict(yaml.safe_load(out.read_text()))


def _get(envoy: RunningEnvoy, path: str, **kw: Any) -> requests.Response:
    return requests.get(envoy.url(path=path), timeout=10, **kw)


def test_each_option_changes_what_envoy_does(start: Callable[..., RunningEnvoy], grpc_port: int,
                                             tmp_path: Path) -> None:
    base = start(_bootstrap(tmp_path, grpc_port))
    opts = start(_bootstrap(tmp_path, grpc_port, "--case-insensitive-enum-parsing", "--query_param_unescape_plus",
                            "--url-unescape-spec", "ALL_CHARACTERS", "--match_unregistered_custom_verb",
                            "--capture-unknown-query-parameters", "--stream-sse-style-delimited"))

    # case_insensitive_enum_parsing: "talk" for the enum value TALK
    body = json.dumps({"text": "x", "mode": "talk"})
    headers = {"content-type": "application/json"}
    assert requests.post(base.url(path="/v1/echo"), data=body, headers=headers, timeout=10).status_code == 400
    r = requests.post(opts.url(path="/v1/echo"), data=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["mode"] == "TALK", r.text

    # query_param_unescape_plus: '+' in a query parameter is a space
    assert _get(base, "/v1/echo?text=a+b").json()["text"] == "a+b"
    assert _get(opts, "/v1/echo?text=a+b").json()["text"] == "a b"

    # url_unescape_spec: a multi-segment variable keeps %2F (ALL_CHARACTERS_EXCEPT_RESERVED) or decodes it
    assert _get(base, "/v1/path/a%2Fb/c").json()["path"] == "a%2Fb/c"
    assert _get(opts, "/v1/path/a%2Fb/c").json()["path"] == "a/b/c"

    # match_unregistered_custom_verb: ":bar" is then a verb no template has, so nothing matches (404)
    r = _get(base, "/v1/verb/foo:bar")
    assert r.status_code == 200 and r.json()["text"] == "foo:bar", r.text
    assert _get(opts, "/v1/verb/foo:bar").status_code == 404

    # capture_unknown_query_parameters: the HttpBody request carries them as UnknownQueryParams
    raw = {"data": b"payload", "headers": {"content-type": "text/plain"}, "timeout": 10}
    r = requests.post(opts.url(path="/v1/raw?foo=bar&foo=baz&x=1"), **raw)  # type: ignore[arg-type]
    assert r.status_code == 200 and r.text == "foo=bar,baz\nx=1", (r.status_code, r.text)
    r = requests.post(base.url(path="/v1/raw?foo=bar"), **raw)  # type: ignore[arg-type]
    assert r.text != "foo=bar"  # without the option nothing is captured

    # stream_sse_style_delimited: a server stream as Server-Sent Events instead of a JSON array
    r = _get(base, "/v1/stream/s")
    assert [m["text"] for m in r.json()] == ["s", "s"]
    r = _get(opts, "/v1/stream/s")
    events = [e.strip() for e in r.text.split("\n\n") if e.strip()]
    assert len(events) == 2 and all(e.startswith("data: ") for e in events), r.text
    assert [json.loads(e.removeprefix("data: "))["text"] for e in events] == ["s", "s"]


def _v1_only(boot: dict[str, Any], port: int) -> dict[str, Any]:
    """The bootstrap's transcoder, on a listener that routes only /v1/... to the gRPC server (418 otherwise)."""
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    listener = b.http_listener("main", 0, http_filters=hcm["http_filters"][:-1],
                               routes=[b.route_to_cluster("grpc", prefix="/v1/"),
                                       b.direct_response_route("no route", status=418)])
    return b.bootstrap(listeners=[listener], clusters=[b.cluster("grpc", "127.0.0.1", port, http2=True)])


def test_match_incoming_request_route(start: Callable[..., RunningEnvoy], grpc_port: int, tmp_path: Path) -> None:
    body = {"data": json.dumps({"text": "r"}), "headers": {"content-type": "application/json"}, "timeout": 10}
    # by default the route is chosen again on the gRPC path (/meshfilter.test.Options/Echo): no /v1/ route
    base = start(_v1_only(_bootstrap(tmp_path, grpc_port), grpc_port))
    assert requests.post(base.url(path="/v1/echo"), **body).status_code == 418  # type: ignore[arg-type]
    keep = start(_v1_only(_bootstrap(tmp_path, grpc_port, "--match-incoming-request-route"), grpc_port))
    r = requests.post(keep.url(path="/v1/echo"), **body)  # type: ignore[arg-type]
    assert r.status_code == 200 and r.json()["text"] == "r", r.text


def test_descriptor_from_a_file_on_the_proxy(start: Callable[..., RunningEnvoy], grpc_port: int,
                                             descriptor: bytes, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """--descriptor-path: the EnvoyFilter names the file; Envoy loads it from there (proto_descriptor)."""
    from meshfilter.k8s.envoyfilter import patch_values
    from meshfilter.transcoder.bootstrap import bootstrap_with_filter

    desc_dir = tmp_path / "etc-envoy-descriptor"
    desc_dir.mkdir()
    path = desc_dir / "options.pb"
    out = tmp_path / "ef.yaml"
    rc = main(["transcoder", "--proto", str(PROTO), "-I", str(PROTO.parent), "--descriptor-path", str(path),
               "--filter-name", "modern", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    ef, cm = list(yaml.safe_load_all(out.read_text()))
    value = patch_values(ef)[0]
    tc = value["typed_config"]
    assert tc["proto_descriptor"] == str(path) and "proto_descriptor_bin" not in tc
    # what the ConfigMap mount puts at that path
    path.write_bytes(base64.b64decode(cm["binaryData"]["options.pb"]))
    envoy = start(bootstrap_with_filter(value, grpc_host="127.0.0.1", grpc_port=grpc_port))
    assert _get(envoy, "/v1/echo?text=from-file").json()["text"] == "from-file"
