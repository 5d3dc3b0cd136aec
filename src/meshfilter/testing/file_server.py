"""A static HTTP file server on loopback, for tests that make Envoy (or meshfilter) fetch a module by URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@contextmanager
def serve_directory(directory: str | Path, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``directory`` over HTTP on a free port; yields the base URL (``http://127.0.0.1:PORT``). The server
    is shut down and its socket closed by its handle on exit, also when the body raises."""
    root = str(directory)

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=root, **kw)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="meshfilter-file-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
