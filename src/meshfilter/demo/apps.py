"""The demo's applications: the seed's hello1..3, each in a v1 (``Hello``) and a v2 (``Bonjour``).

One small HTTP app per instance. ``GET /hello/<name>`` answers ``<greeting> <name>@<service>:<ip>``
and, when the instance has a backend (``HTTP_HELLO_BACKEND``, e.g. ``hello2-svc``), calls that
backend *through its own outbound sidecar* and appends ``<`` and the backend's answer.

Run one as a subprocess::

    HTTP_HELLO_BACKEND=hello2-svc python -m meshfilter.demo.apps --service hello1 --greeting Bonjour

Start-up handshake (stdin/stdout, so no port is ever guessed):

1. the app binds ``--host`` on a free port and prints ``LISTENING <host> <port>`` on stdout;
2. the orchestrator starts the app's sidecar and writes one line on the app's stdin: the sidecar's
   outbound address ``<host>:<port>`` (empty when there is no backend). In Kubernetes, iptables
   plays this part: the app dials ``hello2-svc`` and the connection lands in its sidecar;
3. the app prints ``READY`` and serves.

When its stdin reaches EOF (the orchestrator exited, even by SIGKILL), the app exits: an app can
never outlive the demo that started it.

Headers named in ``HTTP_HELLO_PROPAGATE`` (comma separated) are copied from the incoming request to
the backend call, the way a tracing agent propagates its context; the A/B demo propagates nothing
(the propagate-header Wasm module does that job in the sidecar), the canary demo propagates
``x-asm-prefer-tag``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BACKEND_PORT = 8001  # the port every hello service listens on in the seed (hello*-svc:8001)


def greeting_line(greeting: str, name: str, service: str, ip: str) -> str:
    """The seed's text form of one hop: ``Bonjour eric@hello1:172.17.68.239``."""
    return f"{greeting} {name}@{service}:{ip}"


class HelloApp:
    """One instance: what it answers and where its calls go. Pure apart from the backend call."""

    def __init__(self, *, service: str, greeting: str, ip: str, backend: str | None,
                 sidecar: tuple[str, int] | None, propagate: Sequence[str] = (),
                 timeout: float = 10.0) -> None:
        self.service = service
        self.greeting = greeting
        self.ip = ip
        self.backend = backend or None
        self.sidecar = sidecar
        self.propagate = tuple(h.strip().lower() for h in propagate if h.strip())
        self.timeout = timeout

    def answer(self, name: str, headers: dict[str, str]) -> tuple[int, str]:
        own = greeting_line(self.greeting, name, self.service, self.ip)
        if not self.backend:
            return 200, own
        status, body = self.call_backend(name, headers)
        return (200 if status == 200 else 502), f"{own}<{body}"

    def call_backend(self, name: str, headers: dict[str, str]) -> tuple[int, str]:
        if self.sidecar is None:
            return 502, f"({self.backend}: no sidecar)"
        out = {h: headers[h] for h in self.propagate if h in headers}
        out["host"] = f"{self.backend}:{BACKEND_PORT}"
        conn = http.client.HTTPConnection(self.sidecar[0], self.sidecar[1], timeout=self.timeout)
        try:
            conn.request("GET", f"/hello/{urllib.parse.quote(name)}", headers=out)
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace").strip()
            if resp.status != 200 and not body:
                body = f"({self.backend}: HTTP {resp.status})"
            return resp.status, body
        except OSError as exc:
            return 502, f"({self.backend}: {exc})"
        finally:
            conn.close()


def make_handler(app: HelloApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"hello-{app.service}"

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/healthz", "/ready"):
                self._send(200, "ok")
                return
            prefix = "/hello/"
            if not path.startswith(prefix) or len(path) == len(prefix):
                self._send(404, f"try /hello/<name> on {app.service}")
                return
            name = urllib.parse.unquote(path[len(prefix):])
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = app.answer(name, headers)
            self._send(status, body)

        def _send(self, status: int, body: str) -> None:
            raw = body.encode("utf-8")
            self.send_response(status)
            self.send_header("content-type", "text/plain; charset=utf-8")
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"{app.service} {self.address_string()} {format % args}\n")

    return Handler


def _parse_sidecar(line: str) -> tuple[str, int] | None:
    line = line.strip()
    if not line:
        return None
    host, _, port = line.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m meshfilter.demo.apps", description=__doc__.splitlines()[0])
    p.add_argument("--service", required=True, help="service name, e.g. hello1")
    p.add_argument("--greeting", required=True, help="Hello (v1) or Bonjour (v2)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind and to report as <ip>")
    p.add_argument("--port", type=int, default=0, help="port to bind (0: a free one)")
    args = p.parse_args(argv)
    backend = os.environ.get("HTTP_HELLO_BACKEND", "").strip() or None
    propagate = [h for h in os.environ.get("HTTP_HELLO_PROPAGATE", "").split(",") if h.strip()]

    app = HelloApp(service=args.service, greeting=args.greeting, ip=args.host, backend=backend,
                   sidecar=None, propagate=propagate)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(app))
    server.daemon_threads = True
    print(f"LISTENING {args.host} {server.server_address[1]}", flush=True)
    line = sys.stdin.readline()
    if not line:  # the orchestrator went away before the handshake
        return 1
    app.sidecar = _parse_sidecar(line)
    print("READY", flush=True)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the orchestrator is gone
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
