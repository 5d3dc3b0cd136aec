"""The demo's hello app as a real subprocess (no Envoy): handshake, answers, backend call, exit."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshfilter.demo.mesh import Instance, seed_ab_topology, seed_canary_topology
from meshfilter.demo.run import AppProcess
from meshfilter.errors import DemoError


class FakeSidecar:
    """Stands in for the outbound sidecar: records what the app sent, answers like hello3-v2."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                body = b"Bonjour eric@hello3:127.0.0.1"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[AppProcess]]:
    started: list[AppProcess] = []
    yield started
    for a in started:
        a.stop()
    for a in started:
        assert a.proc.poll() is not None, f"app {a.pid} still running"


def _get(port: int, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/hello/eric", headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read().decode()


def test_leaf_app_answers_after_the_handshake(tmp_path: Path, apps: list[AppProcess]) -> None:
    app = AppProcess(Instance("hello3", "v1", None), seed_ab_topology(), tmp_path)
    apps.append(app)
    port = app.wait_listening()
    assert port > 0
    app.connect_sidecar(None)
    assert _get(port) == (200, "Hello eric@hello3:127.0.0.1")


def test_app_calls_its_backend_through_its_sidecar(tmp_path: Path, apps: list[AppProcess]) -> None:
    sidecar = FakeSidecar()
    try:
        app = AppProcess(Instance("hello2", "v2", "hello3"), seed_ab_topology(), tmp_path)
        apps.append(app)
        port = app.wait_listening()
        app.connect_sidecar(("127.0.0.1", sidecar.port))
        status, body = _get(port, {"route-v": "hello2v2", "x-asm-prefer-tag": "version-gray"})
        assert (status, body) == (200, "Bonjour eric@hello2:127.0.0.1<Bonjour eric@hello3:127.0.0.1")
        (call,) = sidecar.seen
        assert call["path"] == "/hello/eric"
        assert call["host"] == "hello3-svc:8001"
        # A/B: the app propagates nothing (the Wasm module in the sidecar sets route-v)
        assert "route-v" not in call and "x-asm-prefer-tag" not in call
    finally:
        sidecar.close()


def test_canary_app_propagates_the_prefer_tag_only(tmp_path: Path, apps: list[AppProcess]) -> None:
    sidecar = FakeSidecar()
    try:
        app = AppProcess(Instance("hello1", "v1", "hello2"), seed_canary_topology(), tmp_path)
        apps.append(app)
        port = app.wait_listening()
        app.connect_sidecar(("127.0.0.1", sidecar.port))
        _get(port, {"route-v": "v2", "x-asm-prefer-tag": "version-gray"})
        (call,) = sidecar.seen
        assert call["x-asm-prefer-tag"] == "version-gray"
        assert "route-v" not in call
    finally:
        sidecar.close()


def test_unreachable_sidecar_is_a_502_naming_the_backend(tmp_path: Path, apps: list[AppProcess]) -> None:
    app = AppProcess(Instance("hello1", "v1", "hello2"), seed_ab_topology(), tmp_path)
    apps.append(app)
    port = app.wait_listening()
    app.connect_sidecar(("127.0.0.1", 1))  # nothing listens on port 1
    with pytest.raises(urllib.error.HTTPError) as info:
        _get(port)
    assert info.value.code == 502
    assert info.value.read().decode().startswith("Hello eric@hello1:127.0.0.1<(hello2-svc: ")


def test_app_exits_when_its_stdin_closes(tmp_path: Path, apps: list[AppProcess]) -> None:
    app = AppProcess(Instance("hello3", "v2", None), seed_ab_topology(), tmp_path)
    apps.append(app)
    app.wait_listening()
    app.connect_sidecar(None)
    assert app.proc.stdin is not None
    app.proc.stdin.close()
    assert app.proc.wait(timeout=10) == 0


def test_app_dying_before_ready_raises_with_its_log(tmp_path: Path, apps: list[AppProcess]) -> None:
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho \"boom: cannot start $4\" >&2\nexit 3\n")
    fake_python.chmod(0o755)
    app = AppProcess(Instance("hello3", "v2", None), seed_ab_topology(), tmp_path, python=str(fake_python))
    apps.append(app)
    with pytest.raises(DemoError) as info:
        app.wait_listening(timeout=10)
    err = info.value
    assert err.component == "app hello3-v2"
    assert "exited with status 3 before it was ready" in err.what
    assert "boom: cannot start hello3" in err.log_tail
