"""One filter class (``meshfilter.sdk``) run on every backend, side by side, for the same request.

:class:`FilterUnderTest` compiles the class once per backend and runs a request through

=============  ============================================================================
reference      :func:`meshfilter.sdk.run_request`, the class itself in CPython
emulator       the compiled Wasm module in the proxy-wasm host emulator
lua            the compiled Lua script in LuaJIT in-process (``meshfilter.lua.inprocess``)
envoy-wasm     a real Envoy running the module (``envoy.filters.http.wasm``)
envoy-lua      a real Envoy running the script (``envoy.filters.http.lua``)
=============  ============================================================================

Every backend gets the same request as Envoy's filters see it: the pseudo-headers, the given header
lines, ``x-forwarded-proto: http`` (Envoy adds it before any filter) and ``x-meshfilter-probe: 1``
(see below). The upstream answers with the status asked for (header ``x-upstream-status``) and
``content-type: application/json``; a local reply is answered with its own headers plus Envoy's
``content-type: text/plain`` and ``content-length`` when it has a body, and the filter's response
callback runs on it (as in Envoy).

What is compared (:class:`Outcome`): the request headers upstream (none after a local reply), the
local reply (status, body), the response headers downstream, and the route: in Envoy a CORS filter
resolves the route first, then ``header_mutation`` adds ``x-meshfilter-probe: 1`` without clearing
the route cache, then the filter runs; the route chosen in the end tells whether the route was
selected again (Envoy 1.40 does that after ``clear_route_cache()`` and after any request-header
write). Headers only Envoy or the codec add (``x-request-id``, ``date``, ``server``,
``content-length``, ...) are left out. In-process backends also compare the route-cache clear count
and the log lines.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from meshfilter.sdk.api import HttpFilter, from_wire, to_wire, wire_bytes
from meshfilter.sdk.checker import check_class
from meshfilter.sdk.reference import run_request

__all__ = ["BACKENDS", "FilterUnderTest", "Outcome", "SideBySide", "StatusEcho", "load_class", "side_by_side"]

BACKENDS = ("reference", "emulator", "lua", "envoy-wasm", "envoy-lua")
IN_PROCESS = ("reference", "emulator", "lua")
PROBE = ("x-meshfilter-probe", "1")
ROUTE_HEADER = "x-meshfilter-route"
STATUS_HEADER = "x-upstream-status"
AUTHORITY = "sdk.test"
ORIGIN = "http://origin.test"  # a CORS request, so the CORS filter surely resolves the route
# added by Envoy, its codecs or the router, not by the filter
NOT_COMPARED_REQUEST = frozenset({"x-request-id", "x-envoy-expected-rq-timeout-ms", ROUTE_HEADER, "content-length"})
NOT_COMPARED_RESPONSE = frozenset({"date", "server", "content-length", "x-envoy-upstream-service-time"})

HeaderLines = list[tuple[bytes, bytes]]
Normal = dict[str, list[str]]


def _normal(lines: Iterable[tuple[bytes | str, bytes | str]], drop: frozenset[str]) -> Normal:
    """name -> values in order, as text (UTF-8, undecodable bytes as surrogate escapes)."""
    out: Normal = {}
    for k, v in lines:
        key = (k.decode("latin-1") if isinstance(k, bytes) else k).lower()
        if key in drop:
            continue
        value = v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
        out.setdefault(key, []).append(value)
    return out


@dataclass(frozen=True)
class Outcome:
    """What one backend did with the request, normalised for comparison."""

    request_headers: Normal | None       # upstream; None after a local reply
    local_reply: tuple[int, str] | None  # (status, body)
    response_headers: Normal             # downstream, ":status" included
    route_reselected: bool | None        # None after a local reply
    route_cache_clears: int | None = None           # in-process backends only
    logs: list[tuple[str, str]] | None = None       # in-process backends only

    def compare(self, other: Outcome) -> list[str]:
        """What differs, field by field (fields a side does not know are skipped)."""
        out = []
        for name in ("request_headers", "local_reply", "response_headers", "route_reselected", "route_cache_clears",
                     "logs"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if name in ("route_cache_clears", "logs") and (mine is None or theirs is None):
                continue
            if name == "route_reselected" and theirs is None and other.local_reply is None:
                continue  # not observable there (the emulator counts clears, not writes)
            if mine != theirs:
                out.append(f"{name}: {theirs!r} != reference {mine!r}")
        return out


@dataclass
class SideBySide:
    """The outcomes of one request, by backend (``reference`` first)."""

    request: list[tuple[str, str]]
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def __getitem__(self, backend: str) -> Outcome:
        return self.outcomes[backend]

    def differences(self) -> list[str]:
        ref = self.outcomes["reference"]
        return [f"{name}: {line}" for name, o in self.outcomes.items() if name != "reference"
                for line in ref.compare(o)]

    def agree(self) -> bool:
        return not self.differences()


# -- the upstream --------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        raw = [[k.lower(), v] for k, v in self.headers.items()]
        status = int(self.headers.get(STATUS_HEADER) or 200)
        body = json.dumps({"path": self.path, "raw_headers": raw}).encode()
        self.send_response_only(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class StatusEcho:
    """An upstream answering with the request's header lines (JSON ``raw_headers``, latin-1 text) and
    the status named by the request header ``x-upstream-status`` (default 200). Context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="meshfilter-status-echo",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StatusEcho:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the filter on every backend ---------------------------------------------------------------------

def _lines(headers: Iterable[tuple[str | bytes, str | bytes]]) -> HeaderLines:
    return [(k if isinstance(k, bytes) else k.encode(), wire_bytes(to_wire(v))) for k, v in headers]


class FilterUnderTest:
    """``filter_class`` with ``config``, compiled for every backend; :meth:`run` sends one request.

    ``envoy_backend`` is a :mod:`meshfilter.envoy` backend (``get_backend("process")`` or
    ``"container"``) for the two Envoy columns; the Envoys start on first use and stop in
    :meth:`close`.
    """

    def __init__(self, filter_class: type[HttpFilter], config: Mapping[str, Any] | str | bytes | None = None, *,
                 envoy_backend: Any = None, abi: str = "0.2.1") -> None:
        from meshfilter.lua.python_filter import compile_program as compile_lua
        from meshfilter.wasm.python_filter import compile_program as compile_wasm

        self.filter_class = filter_class
        self.program = check_class(filter_class)
        self.config = json.dumps(dict(config)) if isinstance(config, Mapping) else (config or "")
        filter_class(self.config)  # a refused configuration is an error here, on every backend
        self.wasm = compile_wasm(self.program, abi=abi)
        self.lua = compile_lua(self.program, self.config)
        self.envoy_backend = envoy_backend
        self._tmp = tempfile.TemporaryDirectory(prefix="meshfilter-sdk-")
        self.wasm_path = Path(self._tmp.name) / "filter.wasm"
        self.wasm_path.write_bytes(self.wasm)
        self._emu: Any = None
        self._upstream: StatusEcho | None = None
        self._envoys: dict[str, Any] = {}

    # inputs
    def inputs(self, headers: Sequence[tuple[str | bytes, str | bytes]], method: str, path: str,
               status: int) -> tuple[HeaderLines, HeaderLines]:
        """(request lines as the filter sees them, upstream response lines) for the in-process backends."""
        request = [(b":authority", AUTHORITY.encode()), (b":path", path.encode()), (b":method", method.encode()),
                   (b":scheme", b"http"), *_lines(headers), (b"origin", ORIGIN.encode()),
                   (STATUS_HEADER.encode(), str(status).encode()),
                   (b"x-forwarded-proto", b"http"), (PROBE[0].encode(), PROBE[1].encode())]
        response = [(b":status", str(status).encode()), (b"content-type", b"application/json")]
        return request, response

    def run(self, headers: Sequence[tuple[str | bytes, str | bytes]] = (), *, method: str = "GET", path: str = "/",
            status: int = 200, backends: Sequence[str] = BACKENDS) -> SideBySide:
        request, response = self.inputs(headers, method, path, status)
        text = [(k.decode(), from_wire(v.decode("ascii", "surrogateescape"))) for k, v in request]
        out = SideBySide(text)
        for name in backends:
            out.outcomes[name] = getattr(self, "_" + name.replace("-", "_"))(request, response)
        return out

    def _reference(self, request: HeaderLines, response: HeaderLines) -> Outcome:
        wire = [(k.decode("ascii"), v.decode("ascii", "surrogateescape")) for k, v in request]
        res = run_request(self.filter_class, self.config, wire, [(k.decode(), v.decode()) for k, v in response])
        reply = (res.local_reply.status, res.local_reply.body) if res.local_reply else None
        return Outcome(request_headers=None if reply else _upstream_view(res.request_headers),
                       local_reply=reply,
                       response_headers=_normal(res.response_headers or [], NOT_COMPARED_RESPONSE),
                       route_reselected=None if reply else res.route_reselected,
                       route_cache_clears=res.route_cache_clears, logs=res.logs)

    def emulator(self) -> Any:
        """The module in a started :class:`~meshfilter.wasm.emulator.HostEmulator` (one for all requests)."""
        if self._emu is None:
            from meshfilter.wasm.emulator import HostEmulator

            self._emu = HostEmulator(self.wasm, plugin_config=self.config, root_id=self.program.root_id)
            if not self._emu.start():
                raise AssertionError(f"the module refused its configuration: {self._emu.logs_at('error')}")
        return self._emu

    def _emulator(self, request: HeaderLines, response: HeaderLines) -> Outcome:
        emu = self.emulator()
        ctx = emu.new_http_context()
        ctx.request_headers(request)
        upstream = ctx.request_header_map
        reply = ctx.local_response
        if reply is None:
            ctx.response_headers(response)
        # else: the emulator, as Envoy, has run the module's response callback on its local reply
        downstream = ctx.response_header_map
        logs = [(_LEVEL.get(r.level, r.level), from_wire(to_wire(r.message))) for r in ctx.logs]
        clears = ctx.route_cache_clears
        ctx.done()
        out_reply = (reply.status_code, reply.body.decode("utf-8", "surrogateescape")) if reply else None
        return Outcome(request_headers=None if reply else _upstream_view(upstream), local_reply=out_reply,
                       response_headers=_normal(downstream, NOT_COMPARED_RESPONSE),
                       route_reselected=None, route_cache_clears=clears, logs=logs)

    def _lua(self, request: HeaderLines, response: HeaderLines) -> Outcome:
        from meshfilter.lua.inprocess import run_stream

        res = run_stream(self.lua, request, response)
        reply = (res.local_reply[0], res.local_reply[2].decode("utf-8", "surrogateescape")) if res.local_reply else None
        return Outcome(request_headers=None if reply else _upstream_view(res.request_headers), local_reply=reply,
                       response_headers=_normal(res.response_headers or [], NOT_COMPARED_RESPONSE),
                       route_reselected=None if reply else bool(res.route_cache_clears or res.request_header_writes),
                       route_cache_clears=res.route_cache_clears,
                       logs=[(lvl, t.decode("utf-8", "surrogateescape")) for lvl, t in res.logs])

    # Envoy
    def envoy(self, kind: str) -> Any:
        """The running Envoy for ``kind`` ("wasm" or "lua"), started on first use."""
        if kind not in self._envoys:
            from meshfilter.envoy import bootstrap as bs
            from meshfilter.envoy import get_backend

            if self._upstream is None:
                self._upstream = StatusEcho()
            backend = self.envoy_backend or get_backend("process")
            if kind == "wasm":
                flt = bs.wasm_filter(code=bs.wasm_code(path=str(self.wasm_path)), configuration=self.config,
                                     root_id=self.program.root_id)
            else:
                flt = bs.lua_filter(self.lua)
            self._envoys[kind] = backend.start(self.bootstrap(flt), name=f"sdk-{kind}")
        return self._envoys[kind]

    def bootstrap(self, http_filter: dict[str, Any]) -> dict[str, Any]:
        """A listener ``main``: CORS (resolves the route), header_mutation (adds the probe header
        without clearing the route cache), then the filter; two routes to the upstream telling
        which one Envoy used."""
        from meshfilter.envoy import bootstrap as bs

        assert self._upstream is not None
        routes: list[dict[str, Any]] = [
            {"match": {"prefix": "/", "headers": [bs.header_exact(*PROBE)]}, "route": {"cluster": "upstream"},
             "request_headers_to_add": [{"header": {"key": ROUTE_HEADER, "value": "reselected"}}]},
            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"},
             "request_headers_to_add": [{"header": {"key": ROUTE_HEADER, "value": "cached"}}]},
        ]
        filters = [bs.cors_filter(), bs.header_mutation_set(*PROBE), http_filter]
        return bs.bootstrap(listeners=[bs.http_listener("main", 0, routes=routes, http_filters=filters)],
                            clusters=[bs.cluster("upstream", self._upstream.host, self._upstream.port)])

    def _envoy_wasm(self, request: HeaderLines, response: HeaderLines) -> Outcome:
        return self._send(self.envoy("wasm"), request)

    def _envoy_lua(self, request: HeaderLines, response: HeaderLines) -> Outcome:
        return self._send(self.envoy("lua"), request)

    def _send(self, env: Any, request: HeaderLines) -> Outcome:
        pseudo = dict(request[:4])
        conn = http.client.HTTPConnection("127.0.0.1", env.listener_ports["main"], timeout=20)
        try:
            conn.putrequest(pseudo[b":method"].decode(), pseudo[b":path"].decode(), skip_host=True,
                            skip_accept_encoding=True)
            conn.putheader("host", pseudo[b":authority"])
            for k, v in request[4:]:
                if k in (b"x-forwarded-proto", PROBE[0].encode()):
                    continue  # Envoy adds these itself
                conn.putheader(k.decode(), v)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            lines = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.getheaders()]
            status = resp.status
        finally:
            conn.close()
        downstream = _normal([(b":status", str(status).encode()), *lines], NOT_COMPARED_RESPONSE)
        upstream = None
        routed = None
        if body.startswith(b"{") and any(k.lower() == b"content-type" and v == b"application/json" for k, v in lines):
            echoed = json.loads(body)
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in echoed["raw_headers"]]
            routes = [v for k, v in raw if k == ROUTE_HEADER.encode()]
            routed = routes == [b"reselected"]
            upstream = _upstream_view(raw)
        reply = None if upstream is not None else (status, body.decode("utf-8", "surrogateescape"))
        return Outcome(request_headers=upstream, local_reply=reply, response_headers=downstream,
                       route_reselected=routed)

    def close(self) -> None:
        for env in self._envoys.values():
            env.stop()
        self._envoys.clear()
        if self._upstream is not None:
            self._upstream.stop()
            self._upstream = None
        self._tmp.cleanup()

    def __enter__(self) -> FilterUnderTest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LEVEL = {"warning": "warn", "err": "error"}


def load_class(path: str | Path, class_name: str) -> type[HttpFilter]:
    """Import the filter class ``class_name`` from the file ``path`` (as module ``<stem>``)."""
    import importlib.util
    import sys

    p = Path(path)
    spec = importlib.util.spec_from_file_location(p.stem, p)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[p.stem] = module
    spec.loader.exec_module(module)
    cls: type[HttpFilter] = getattr(module, class_name)
    return cls


@contextmanager
def side_by_side(envoy_backend: Any = None) -> Iterator[Callable[..., SideBySide]]:
    """``run(FilterClass, config, headers=(), *, method, path, status, backends)``: one request on every
    backend (each class and configuration compiled once); everything started is stopped on exit.
    The pytest plugin's ``filter_backends`` fixture."""
    made: dict[tuple[type, str], FilterUnderTest] = {}

    def run(filter_class: type[HttpFilter], config: Mapping[str, Any] | str | bytes | None = None,
            headers: Sequence[tuple[str | bytes, str | bytes]] = (), *, method: str = "GET", path: str = "/",
            status: int = 200, backends: Sequence[str] = BACKENDS) -> SideBySide:
        key_cfg = json.dumps(dict(config), sort_keys=True) if isinstance(config, Mapping) else str(config or "")
        key = (filter_class, key_cfg)
        if key not in made:
            made[key] = FilterUnderTest(filter_class, config, envoy_backend=envoy_backend)
        return made[key].run(headers, method=method, path=path, status=status, backends=backends)

    try:
        yield run
    finally:
        for fut in made.values():
            fut.close()


def _upstream_view(lines: Iterable[tuple[bytes | str, bytes | str]]) -> Normal:
    """Request header lines as the upstream sees them: pseudo-headers dropped (``:authority`` is
    ``host``), the transport's own headers dropped."""
    out = []
    for k, v in lines:
        key = k.decode("latin-1") if isinstance(k, bytes) else k
        if key == ":authority":
            out.append(("host", v))
        elif key.startswith(":"):
            continue
        else:
            out.append((key, v))
    return _normal(out, NOT_COMPARED_REQUEST)
