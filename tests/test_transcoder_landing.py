"""The landing example service: the four models over a real in-process grpcio server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from meshfilter.examples.landing import HELLOS, LandingClient, proto_text, run_all, serve, server_target
from meshfilter.examples.landing.__main__ import main as landing_main

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    server, port = serve(0, "127.0.0.1")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def _check(result: object, idx: int) -> None:
    kv = result.kv  # type: ignore[attr-defined]
    assert kv["data"] == HELLOS[idx] and kv["idx"] == str(idx) and kv["meta"] == "PYTHON"
    assert UUID.match(kv["id"])
    assert result.type == 0 and result.id > 0  # type: ignore[attr-defined]


def test_four_models(target: str) -> None:
    with LandingClient(target) as c:
        r = c.talk("3")
        assert r.status == 200 and len(r.results) == 1
        _check(r.results[0], 3)
        stream = c.talk_one_answer_more("0,1,2")
        assert [x.status for x in stream] == [200, 200, 200]
        for i, x in enumerate(stream):
            _check(x.results[0], i)
        one = c.talk_more_answer_one(["4", "5", "0,1"])
        assert [x.kv["idx"] for x in one.results] == ["4", "5", "0", "1"]
        bidi = c.talk_bidirectional(["2", "3,4"])
        assert [[x.kv["idx"] for x in b.results] for b in bidi] == [["2"], ["3", "4"]]


@pytest.mark.parametrize("data", ["6", "x", "", "-1", "0,9"])
def test_bad_index_is_invalid_argument(target: str, data: str) -> None:
    with LandingClient(target) as c, pytest.raises(grpc.RpcError) as ei:
        c.talk(data)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "is not an index of 0..5" in ei.value.details()  # type: ignore[attr-defined]


def test_hellos_are_the_seed_list() -> None:
    assert HELLOS == ("Hello", "Bonjour", "Hola", "こんにちは", "Ciao", "안녕하세요")


def test_server_target_reads_grpc_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRPC_SERVER", raising=False)
    assert server_target(None) == "localhost:9996"
    monkeypatch.setenv("GRPC_SERVER", "grpc-server-svc.grpc-best.svc.cluster.local")
    assert server_target(None) == "grpc-server-svc.grpc-best.svc.cluster.local:9996"
    monkeypatch.setenv("GRPC_SERVER", "10.0.0.1:7000")
    assert server_target(None) == "10.0.0.1:7000"
    assert server_target("h:1") == "h:1"


def test_proto_command_prints_the_annotated_proto(capsys: pytest.CaptureFixture[str]) -> None:
    assert landing_main(["proto"]) == 0
    out = capsys.readouterr().out
    assert out == proto_text()
    for needle in ('package org.feuyeux.grpc;', 'import "google/api/annotations.proto";',
                   'get: "/v1/talk/{data}/{meta}"', 'get: "/v1/talk1n/{data}/{meta}"',
                   'post: "/v1/talkn1"', 'post: "/v1/talknn"', 'rpc talkBidirectional (stream TalkRequest) '
                   'returns (stream TalkResponse)', "map<string, string> kv = 3;"):
        assert needle in out


def test_call_command_runs_all_four_models(target: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_SERVER", target)
    assert landing_main(["call"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"talk", "talkOneAnswerMore", "talkMoreAnswerOne", "talkBidirectional"}
    assert out["talk"]["results"][0]["kv"]["data"] == "Hello"
    assert run_all(target)["talkMoreAnswerOne"]["status"] == 200


def test_call_command_unreachable_server_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from meshfilter.util.ports import free_port

    rc = landing_main(["call", "--server", f"127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "UNAVAILABLE" in err


def test_serve_command_as_a_subprocess() -> None:
    from meshfilter.util.ports import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "meshfilter.examples.landing", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        assert f"listening on 127.0.0.1:{port}" in proc.stdout.readline().decode()
        with LandingClient(f"127.0.0.1:{port}") as c:
            c.wait_ready(20)
            assert c.talk("1").results[0].kv["data"] == "Bonjour"
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0  # SIGTERM stops it cleanly
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
