"""The built-in echo upstream: answers every request with the request headers it received, as JSON.

Body: ``{"method": ..., "path": ..., "headers": {name: value}, "raw_headers": [[name, value], ...]}``.
``headers`` lower-cases names and joins repeated ones with ", "; ``raw_headers`` keeps every line
in order, so a test can count how many values a header carried.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "meshfilter-echo"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = [[k.lower(), v] for k, v in self.headers.items()]
        joined: dict[str, str] = {}
        for k, v in raw:
            joined[k] = f"{joined[k]}, {v}" if k in joined else v
        payload: dict[str, Any] = {"method": self.command, "path": self.path, "headers": joined,
                                   "raw_headers": raw, "body": body.decode("utf-8", "replace")}
        out = json.dumps(payload, indent=1).encode() + b"\n"
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class EchoServer:
    """A threaded echo upstream on ``host:port`` (0 picks a free port). Context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = ThreadingHTTPServer((host, port), _EchoHandler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="meshfilter-echo",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EchoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
