"""``meshfilter wasm diff``: one request through a module in the emulator and in a real Envoy, compared.

The Envoy side uses :mod:`meshfilter.envoy`'s public API (bootstrap builders, ``start_envoy``): the
module as an HTTP Wasm filter in front of an in-process upstream that answers every request the same
way (and records what it received), plus one such upstream per declared cluster for the module's HTTP
calls. Envoy runs at trace level, so its log carries the module's log lines and every callback.

The emulator side gets what Envoy's filter gets: the request headers as Envoy presents them
(``:authority``, ``:path``, ``:method``, ``:scheme``, the client's headers, ``x-forwarded-proto``), the
upstream's answer, the same HTTP-call answers. Compared: whether the module is refused (and why), the
headers the upstream received, the local reply, the module's log lines at start-up (as a set: Envoy
starts the VM several times) and during the request (in order), and the callbacks of the request.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from meshfilter.errors import EnvoyError, WasmError, WasmTrap
from meshfilter.util.fs import OwnedTempDir
from meshfilter.wasm.emulator._module import load_module_bytes

REQUEST_ID = "00000000-0000-4000-8000-00000000d1ff"
# headers Envoy's router adds after the filter: not the module's doing
ROUTER_HEADERS = ("x-envoy-expected-rq-timeout-ms",)
_LOG = re.compile(r"^\[[^\]]+\]\[\d+\]\[(\w+)\]\[(\w+)\] \[[^\]]+\] (.*)$")
_WASM_LOG = re.compile(r"^wasm log(?: [^:]*)?: (.*)$", re.S)
_CALLBACK = re.compile(r"^\[host->vm\] (proxy_on_\w+)\((.*)\)$")
_LEVELS = {"trace": "trace", "debug": "debug", "info": "info", "warning": "warn", "error": "error",
           "critical": "critical"}
_REFUSAL = ("Failed to load Wasm module", "Bad function signature", "Missing or unknown Proxy-Wasm ABI",
            "Wasm module is missing malloc", "Function: ", "Failed to start base Wasm",
            "Failed to configure base Wasm plugin", "Failed to load Wasm code", "Failed to initialize Wasm code")


@dataclass
class Observation:
    """What one side did with the request."""

    refused: str | None = None  # why the module was refused (Envoy's first such line)
    upstream_headers: list[tuple[str, str]] | None = None
    upstream_body: bytes | None = None
    local_reply: tuple[int, list[tuple[str, str]], bytes] | None = None
    start_logs: set[tuple[str, str]] = field(default_factory=set)
    request_logs: list[tuple[str, str]] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    paused: bool = False  # no answer: the module paused the request and never resumed it
    authority: str | None = None  # the :authority the filter saw
    upstream_service_time: str | None = None


@dataclass
class DiffResult:
    envoy: Observation
    emulator: Observation
    differences: list[str]

    @property
    def same(self) -> bool:
        return not self.differences


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _Upstream:
    """An HTTP/1.1 upstream that answers every request with one fixed answer and records requests."""

    def __init__(self, answer: _Answer) -> None:
        self.answer = answer
        self.requests: list[tuple[list[tuple[str, str]], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append(([(k.lower(), v) for k, v in self.headers.items()], body))
                self.send_response_only(outer.answer.status)
                for k, v in outer.answer.headers:
                    self.send_header(k, v)
                self.send_header("content-length", str(len(outer.answer.body)))
                self.end_headers()
                self.wfile.write(outer.answer.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="meshfilter-diff")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def _upstreams(answers: dict[str, _Answer]) -> Iterator[dict[str, _Upstream]]:
    started: dict[str, _Upstream] = {}
    try:
        for name, answer in answers.items():
            started[name] = _Upstream(answer)
        yield started
    finally:
        for up in started.values():
            up.close()


def _split_request(headers: Sequence[tuple[str, str]]) -> tuple[str, str, str | None, list[tuple[str, str]]]:
    method, path, authority, rest = "GET", "/", None, []
    for k, v in headers:
        lk = k.lower()
        if lk == ":method":
            method = v
        elif lk == ":path":
            path = v
        elif lk in (":authority", "host"):
            authority = v
        elif not lk.startswith(":"):
            rest.append((lk, v))
    if not any(k == "x-request-id" for k, _ in rest):
        rest.append(("x-request-id", REQUEST_ID))
    return method, path, authority, rest


def parse_envoy_log(text: str) -> list[tuple[str, str, str]]:
    """(level, logger, message) per record of an Envoy log (continuation lines joined with '\\n')."""
    out: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        m = _LOG.match(line)
        if m:
            out.append((m[1], m[2], m[3]))
        elif out:
            level, logger, msg = out[-1]
            out[-1] = (level, logger, msg + "\n" + line)
    return out


def _wasm_lines(records: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    logs, callbacks = [], []
    for level, logger, msg in records:
        if logger != "wasm":
            continue
        m = _WASM_LOG.match(msg)
        if m:
            logs.append((_LEVELS.get(level, level), m[1]))
            continue
        c = _CALLBACK.match(msg)
        if c and c[1] != "proxy_on_memory_allocate":
            callbacks.append(f"{c[1]}({c[2]})")
    return logs, callbacks


def _refusal(records: list[tuple[str, str, str]]) -> str | None:
    for level, logger, msg in records:
        msg = msg.removeprefix("Wasm VM failed ")
        if logger == "wasm" and level in ("error", "critical") and msg.startswith(_REFUSAL):
            return msg
    return None


def run_in_envoy(module: bytes, *, root_id: str, plugin_config: str, vm_config: str, vm_id: str | None,
                 headers: Sequence[tuple[str, str]], body: bytes | None, upstream: _Answer,
                 clusters: dict[str, _Answer], backend: str = "process", timeout: float = 30.0,
                 request_timeout: float = 5.0) -> Observation:
    from meshfilter.envoy import bootstrap as bs
    from meshfilter.envoy import start_envoy

    obs = Observation()
    method, path, authority, rest = _split_request(headers)
    with _upstreams({"upstream": upstream, **clusters}) as ups:
        wasm = bs.wasm_filter(code=bs.wasm_code(inline=module), configuration=plugin_config, root_id=root_id,
                              vm_id=vm_id or "", vm_configuration=vm_config)
        boot = bs.filter_bootstrap([wasm], upstream=("127.0.0.1", ups["upstream"].port))
        boot["static_resources"]["clusters"] += [bs.cluster(name, "127.0.0.1", up.port)
                                                 for name, up in ups.items() if name != "upstream"]
        workdir = OwnedTempDir(prefix="diff-")  # reaped later if this process dies
        options: dict[str, Any] = {"workdir": Path(workdir.name)} if backend == "process" else {}
        try:
            env = start_envoy(boot, backend=backend, log_level="trace", timeout=timeout, **options)
        except EnvoyError as exc:
            log = Path(workdir.name, "envoy.log")
            text = log.read_text(errors="replace") if log.exists() else (exc.log_tail or "")
            obs.refused = _refusal(parse_envoy_log(text)) or exc.what
            workdir.cleanup()
            return obs
        try:
            before = len(env.log_text())
            conn = http.client.HTTPConnection(env.host, env.listener_ports["main"], timeout=request_timeout)
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                obs.authority = authority or f"{env.host}:{env.listener_ports['main']}"
                conn.putheader("host", obs.authority)
                for k, v in rest:
                    conn.putheader(k, v)
                if body is not None:
                    conn.putheader("content-length", str(len(body)))
                conn.endheaders(body)
                try:
                    resp = conn.getresponse()
                    resp_body = resp.read()
                    resp_headers = [(k.lower(), v) for k, v in resp.getheaders()]
                except TimeoutError:
                    obs.paused = True
            finally:
                conn.close()
            _wait_destroyed(env, before, timeout)
            text = env.log_text()
            start_logs, _ = _wasm_lines(parse_envoy_log(text[:before]))
            obs.start_logs = set(start_logs)
            obs.request_logs, obs.callbacks = _wasm_lines(parse_envoy_log(text[before:]))
            obs.refused = _refusal(parse_envoy_log(text))
            got = ups["upstream"].requests
            if got:
                hs, obs.upstream_body = got[0]
                obs.upstream_headers = [(k, v) for k, v in hs if k not in ROUTER_HEADERS]
            elif obs.paused:
                return obs
            else:
                obs.local_reply = (resp.status, [(k, v) for k, v in resp_headers if k not in ("date", "server")],
                                   resp_body)
            obs.upstream_service_time = next((v for k, v in resp_headers
                                              if k == "x-envoy-upstream-service-time"), None)
        finally:
            env.stop()
            workdir.cleanup()
    return obs


def _wait_destroyed(env: Any, before: int, timeout: float) -> None:
    """Until Envoy has destroyed the stream: the router, the last filter, logs its cleanup after the
    Wasm filter's on_log, on_done and on_delete ran (a paused stream is destroyed when the client has
    closed the connection)."""
    deadline = time.monotonic() + min(timeout, 10.0)
    while time.monotonic() < deadline:
        if "Executing cleanup()" in env.log_text()[before:]:
            time.sleep(0.05)
            return
        time.sleep(0.02)


def run_in_emulator(module: bytes, *, root_id: str, plugin_config: str, vm_config: str, vm_id: str | None,
                    headers: Sequence[tuple[str, str]], body: bytes | None, upstream: _Answer,
                    clusters: dict[str, _Answer], host: str = "127.0.0.1:10000",
                    service_time: str | None = "0") -> Observation:
    from meshfilter.wasm.emulator._host import HostEmulator

    obs = Observation()
    try:
        emu = HostEmulator(module, root_id=root_id, plugin_config=plugin_config, vm_config=vm_config,
                           vm_id=vm_id or None, clusters={"upstream", *clusters}, log_level="trace")
        if not emu.start_vm():
            obs.refused = "Failed to start base Wasm"
        elif not emu.configure():
            obs.refused = "Failed to configure base Wasm plugin"
    except WasmTrap as exc:
        obs.refused = exc.envoy_message
        return obs
    except WasmError as exc:
        obs.refused = exc.what
        return obs
    obs.start_logs = {(r.level, r.message) for r in emu.logs}
    if obs.refused:
        return obs
    n_logs = len(emu.logs)
    trace = emu.trace_callbacks()
    method, path, authority, rest = _split_request(headers)
    req = [(":authority", authority or host), (":path", path), (":method", method), (":scheme", "http"), *rest]
    if body is not None:
        req.append(("content-length", str(len(body))))
    req.append(("x-forwarded-proto", "http"))
    try:
        ctx = emu.new_http_context()
        ctx.request_headers(req, end_of_stream=body is None)
        held: bytes | None = body if body is not None and ctx.request_paused else None  # Envoy buffers it
        _answer(ctx, clusters)
        sent = b""  # the body as it went on to the upstream
        if held is None and body is not None and not ctx.request_ended and not ctx.request_paused:
            # Envoy's HTTP/1 codec: the body as it arrives, then an empty end of stream
            ctx.request_body(body, end_of_stream=False)
            sent += ctx.request_body_buffer
            _answer(ctx, clusters)
            if not ctx.request_ended and not ctx.request_paused:
                ctx.request_body(b"", end_of_stream=True)
                sent += ctx.request_body_buffer
                _answer(ctx, clusters)
        if held is not None and not ctx.request_paused and not ctx.request_ended:
            ctx.request_body(held, end_of_stream=True)  # buffered while paused: one chunk after the resume
            sent += ctx.request_body_buffer
            _answer(ctx, clusters)
        if not ctx.request_paused and ctx.local_response is None and not ctx.reset:
            obs.upstream_headers = [(k, v) for k, v in ctx.request_header_map if not k.startswith(":")]
            obs.upstream_headers.insert(0, ("host", ctx.request_header(":authority") or ""))
            obs.upstream_body = sent
            resp = [(":status", str(upstream.status)), *upstream.headers,
                    ("content-length", str(len(upstream.body)))]
            if service_time is not None:
                resp.append(("x-envoy-upstream-service-time", service_time))
            ctx.response_headers(resp, end_of_stream=not upstream.body)
            _answer(ctx, clusters)
            if upstream.body and not ctx.finished:
                ctx.response_body(upstream.body, end_of_stream=False)
                ctx.response_body(b"", end_of_stream=True)
        elif ctx.request_paused:
            obs.paused = True
        elif ctx.local_response is not None:
            lr = ctx.local_response
            hs = [(k, v) for k, v in ctx.response_header_map if k != ":status"]
            obs.local_reply = (lr.status_code, hs, ctx.response_body_buffer or lr.body)
        ctx.done()
    except WasmTrap as exc:
        obs.refused = exc.envoy_message
    except WasmError as exc:
        obs.refused = exc.what
    obs.request_logs = [(r.level, r.message) for r in emu.logs[n_logs:]]
    obs.callbacks = list(trace)
    return obs


def _answer(ctx: Any, clusters: dict[str, _Answer]) -> None:
    for call in list(ctx.http_calls):
        if not call.answered and call.upstream in clusters:
            a = clusters[call.upstream]
            # what Envoy's async client hands the module: the cluster's answer, plus the router's header
            call.respond([(":status", str(a.status)), *a.headers, ("content-length", str(len(a.body))),
                          ("x-envoy-upstream-service-time", "0")], a.body)


def _differences(envoy: Observation, emulator: Observation) -> list[str]:
    out: list[str] = []
    if bool(envoy.refused) != bool(emulator.refused):
        out.append(f"refused: envoy {envoy.refused or 'no'}; emulator {emulator.refused or 'no'}")
        return out
    if envoy.refused:
        if _norm(envoy.refused) != _norm(emulator.refused or ""):
            out.append(f"refusal reason: envoy {envoy.refused!r}; emulator {emulator.refused!r}")
        return out
    if envoy.paused != emulator.paused:
        out.append(f"paused (no answer): envoy {envoy.paused}; emulator {emulator.paused}")
    if envoy.upstream_headers != emulator.upstream_headers:
        out.append(f"upstream headers: envoy {envoy.upstream_headers}; emulator {emulator.upstream_headers}")
    if (envoy.upstream_body or b"") != (emulator.upstream_body or b"") and envoy.upstream_headers is not None:
        out.append(f"upstream body: envoy {envoy.upstream_body!r}; emulator {emulator.upstream_body!r}")
    if envoy.local_reply != emulator.local_reply:
        out.append(f"local reply: envoy {envoy.local_reply}; emulator {emulator.local_reply}")
    if envoy.start_logs != emulator.start_logs:
        out.append(f"start-up logs: only in envoy {sorted(envoy.start_logs - emulator.start_logs)}; only in "
                   f"emulator {sorted(emulator.start_logs - envoy.start_logs)}")
    if envoy.request_logs != emulator.request_logs:
        out.append(f"request logs: envoy {envoy.request_logs}; emulator {emulator.request_logs}")
    if envoy.callbacks != emulator.callbacks:
        out.append(f"callbacks: envoy {envoy.callbacks}; emulator {emulator.callbacks}")
    return out


def _norm(reason: str) -> str:
    """A refusal in Envoy's words: a trap with its backtrace (function names; V8 and wasmtime may place a
    trapping instruction's offset a byte apart), else the first line."""
    if reason.startswith("Function: "):
        return re.sub(r"0x[0-9a-f]+ - ", "", reason)
    first = reason.splitlines()[0] if reason else ""
    return first.split(" (hint:")[0]


def diff_module(module: bytes | str | os.PathLike[str], *, root_id: str = "", plugin_config: str = "",
                vm_config: str = "", vm_id: str | None = None, headers: Sequence[tuple[str, str]] = (),
                body: bytes | None = None, response_status: int = 200,
                response_headers: Sequence[tuple[str, str]] = (("content-type", "text/plain"),),
                response_body: bytes = b"ok", clusters: Sequence[str] = (),
                http_call_response: tuple[int, bytes] = (200, b""), backend: str = "process",
                timeout: float = 30.0) -> DiffResult:
    """Run one request through ``module`` in a real Envoy and in the emulator and compare them.

    ``headers`` may hold ``:method``, ``:path`` and ``:authority``; ``response_*`` is the upstream's
    answer; every cluster in ``clusters`` answers the module's HTTP calls with ``http_call_response``
    (status, body)."""
    raw = load_module_bytes(module)
    upstream = _Answer(response_status, list(response_headers), response_body)
    status, cbody = http_call_response
    answers = {name: _Answer(status, [], cbody) for name in clusters}
    envoy = run_in_envoy(raw, root_id=root_id, plugin_config=plugin_config, vm_config=vm_config, vm_id=vm_id,
                         headers=headers, body=body, upstream=upstream, clusters=answers, backend=backend,
                         timeout=timeout)
    emulator = run_in_emulator(raw, root_id=root_id, plugin_config=plugin_config, vm_config=vm_config,
                               vm_id=vm_id, headers=headers, body=body, upstream=upstream, clusters=answers,
                               host=envoy.authority or "127.0.0.1:10000",
                               service_time=envoy.upstream_service_time or "0")
    return DiffResult(envoy, emulator, _differences(envoy, emulator))
