# ruff: noqa: E501  (WebAssembly text: one instruction sequence per line)
"""Small hand-written proxy-wasm modules (WAT) for the emulator's feature tests and the envoy-tests that
prove the same behaviour in Envoy 1.40. Each is a function returning WAT text."""

from __future__ import annotations

from pathlib import Path

from meshfilter.wasm import abi
from meshfilter.wasm.pairs import serialize_pairs

TCP_FILTER = Path(__file__).parent / "data" / "wasm_tcp" / "tcp_filter.wat"

_PRELUDE = """
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get $n) (i32.const 8))))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  ;; log(level, ptr, len)
  (func $say (param $ptr i32) (param $len i32) (drop (call $proxy_log (i32.const 2) (local.get $ptr) (local.get $len))))
  ;; write the decimal of $v at $at, return the length
  (func $itoa (param $v i32) (param $at i32) (result i32) (local $n i32) (local $t i32) (local $i i32)
    (local.set $t (local.get $v))
    (loop $c (local.set $n (i32.add (local.get $n) (i32.const 1))) (local.set $t (i32.div_u (local.get $t) (i32.const 10)))
      (br_if $c (i32.ne (local.get $t) (i32.const 0))))
    (local.set $i (local.get $n))
    (loop $d (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $at) (local.get $i)) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $d (i32.ne (local.get $i) (i32.const 0))))
    (local.get $n))
  ;; log "<label>=<number>"
  (func $say_num (param $ptr i32) (param $len i32) (param $v i32) (local $n i32)
    (memory.copy (i32.const 60000) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (i32.const 60000) (local.get $len)) (i32.const 61))
    (local.set $n (call $itoa (local.get $v) (i32.add (i32.const 60001) (local.get $len))))
    (drop (call $proxy_log (i32.const 2) (i32.const 60000) (i32.add (i32.add (local.get $len) (i32.const 1)) (local.get $n)))))
"""


def _imports(*names: str) -> str:
    out = []
    for name in names:
        sig = abi.host_functions("0.2.1")[("env", name)].signature
        out.append(f'(import "env" "{name}" (func ${name} {sig.wat(None)}))')
    return "\n  ".join(out)


def _esc(raw: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in raw)


_CALL_HEADERS = serialize_pairs([(b":path", b"/check"), (b":method", b"GET"), (b":authority", b"auth")])


def _data(strings: dict[int, str]) -> str:
    return "\n  ".join(f'(data (i32.const {at}) "{text}")' for at, text in strings.items())


def http_call_module() -> str:
    """On request headers: an HTTP call to cluster ``auth`` and pause. On the answer: logs the status and
    body, then continues the stream when the body is ``allow``, else a local 403 ``denied``."""
    return f"""(module
  {_imports("proxy_log", "proxy_http_call", "proxy_get_header_map_value", "proxy_get_buffer_bytes",
            "proxy_set_effective_context", "proxy_continue_stream", "proxy_send_local_response")}
  {_PRELUDE}
  {_data({0: "auth", 16: _esc(_CALL_HEADERS),
          100: ":status", 120: "status=", 140: "body=", 160: "allow", 170: "denied", 180: "token"})}
  (global $stream (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (global.set $stream (local.get $ctx))
    (drop (call $proxy_http_call (i32.const 0) (i32.const 4) (i32.const 16) (i32.const {len(_CALL_HEADERS)}) (i32.const 0) (i32.const 0)
                                 (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 400)))
    (call $say_num (i32.const 180) (i32.const 5) (i32.load (i32.const 400)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $nh i32) (param $bs i32) (param $nt i32)
    (local $n i32)
    (drop (call $proxy_get_header_map_value (i32.const 6) (i32.const 100) (i32.const 7) (i32.const 404) (i32.const 408)))
    (memory.copy (i32.const 1000) (i32.const 120) (i32.const 7))
    (memory.copy (i32.const 1007) (i32.load (i32.const 404)) (i32.load (i32.const 408)))
    (call $say (i32.const 1000) (i32.add (i32.const 7) (i32.load (i32.const 408))))
    (drop (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (local.get $bs) (i32.const 412) (i32.const 416)))
    (memory.copy (i32.const 1100) (i32.const 140) (i32.const 5))
    (memory.copy (i32.const 1105) (i32.load (i32.const 412)) (i32.load (i32.const 416)))
    (call $say (i32.const 1100) (i32.add (i32.const 5) (i32.load (i32.const 416))))
    (drop (call $proxy_set_effective_context (global.get $stream)))
    (if (i32.and (i32.eq (i32.load (i32.const 416)) (i32.const 5))
                 (i32.eq (i32.load (i32.load (i32.const 412))) (i32.load (i32.const 160))))
      (then (drop (call $proxy_continue_stream (i32.const 0))))
      (else (drop (call $proxy_send_local_response (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 170)
                                                   (i32.const 6) (i32.const 0) (i32.const 0) (i32.const -1))))))
)"""


def http_call_body_module() -> str:
    """:func:`http_call_module`, also logging ``token=<size>`` for each request body chunk."""
    return http_call_module().replace('(func (export "proxy_on_http_call_response")', """(func (export "proxy_on_request_body") (param i32) (param $size i32) (param i32) (result i32)
    (call $say_num (i32.const 180) (i32.const 5) (local.get $size)) (i32.const 0))
  (func (export "proxy_on_http_call_response")""")


def grpc_module(service: bytes) -> str:
    """On request headers: a unary gRPC call (``svc/Unary``, message ``ping``) and a stream
    (``svc/Stream``) that sends ``hello``; logs every gRPC callback with its sizes and the close status."""
    esc = _esc(service)
    return f"""(module
  {_imports("proxy_log", "proxy_grpc_call", "proxy_grpc_stream", "proxy_grpc_send", "proxy_get_buffer_bytes",
            "proxy_get_status", "proxy_grpc_close")}
  {_PRELUDE}
  {_data({0: esc, 200: "svc", 210: "Unary", 220: "Stream", 230: "ping", 240: "hello", 250: "call", 260: "stream",
          270: "initial", 280: "message", 290: "trailing", 300: "close", 310: "status"})}
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $proxy_grpc_call (i32.const 0) (i32.const {len(service)}) (i32.const 200) (i32.const 3) (i32.const 210)
                                 (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 230) (i32.const 4) (i32.const 1000)
                                 (i32.const 400)))
    (call $say_num (i32.const 250) (i32.const 4) (i32.load (i32.const 400)))
    (drop (call $proxy_grpc_stream (i32.const 0) (i32.const {len(service)}) (i32.const 200) (i32.const 3) (i32.const 220)
                                   (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 404)))
    (call $say_num (i32.const 260) (i32.const 6) (i32.load (i32.const 404)))
    (drop (call $proxy_grpc_send (i32.load (i32.const 404)) (i32.const 240) (i32.const 5) (i32.const 0)))
    (i32.const 0))
  (func (export "proxy_on_grpc_receive_initial_metadata") (param i32) (param $t i32) (param $n i32)
    (call $say_num (i32.const 270) (i32.const 7) (local.get $n)))
  (func (export "proxy_on_grpc_receive") (param i32) (param $t i32) (param $size i32)
    (drop (call $proxy_get_buffer_bytes (i32.const 5) (i32.const 0) (local.get $size) (i32.const 420) (i32.const 424)))
    (call $say (i32.load (i32.const 420)) (i32.load (i32.const 424))))
  (func (export "proxy_on_grpc_receive_trailing_metadata") (param i32) (param $t i32) (param $n i32)
    (call $say_num (i32.const 290) (i32.const 8) (local.get $n)))
  (func (export "proxy_on_grpc_close") (param i32) (param $t i32) (param $code i32)
    (call $say_num (i32.const 300) (i32.const 5) (local.get $code))
    (drop (call $proxy_get_status (i32.const 430) (i32.const 434) (i32.const 438)))
    (call $say (i32.load (i32.const 434)) (i32.load (i32.const 438))))
)"""


def queue_timer_metrics_module() -> str:
    """Root context: registers queue ``jobs``, sets a 100 ms tick, defines counter ``ticks``, gauge ``depth``
    and histogram ``sizes``. A tick increments ``ticks``; a request enqueues its header count; queue-ready
    dequeues, logs the item and records its size."""
    return f"""(module
  {_imports("proxy_log", "proxy_register_shared_queue", "proxy_enqueue_shared_queue", "proxy_dequeue_shared_queue",
            "proxy_set_tick_period_milliseconds", "proxy_define_metric", "proxy_increment_metric",
            "proxy_record_metric", "proxy_set_shared_data", "proxy_get_shared_data")}
  {_PRELUDE}
  {_data({0: "jobs", 10: "ticks", 20: "depth", 30: "sizes", 40: "item", 50: "ready", 60: "seen", 70: "yes"})}
  (global $q (mut i32) (i32.const 0))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $proxy_register_shared_queue (i32.const 0) (i32.const 4) (i32.const 400)))
    (global.set $q (i32.load (i32.const 400)))
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 100)))
    (drop (call $proxy_define_metric (i32.const 0) (i32.const 10) (i32.const 5) (i32.const 404)))
    (drop (call $proxy_define_metric (i32.const 1) (i32.const 20) (i32.const 5) (i32.const 408)))
    (drop (call $proxy_define_metric (i32.const 2) (i32.const 30) (i32.const 5) (i32.const 412)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_increment_metric (i32.load (i32.const 404)) (i64.const 1))))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $len i32)
    (local.set $len (call $itoa (local.get $n) (i32.const 2000)))
    (drop (call $proxy_enqueue_shared_queue (global.get $q) (i32.const 2000) (local.get $len)))
    (drop (call $proxy_set_shared_data (i32.const 60) (i32.const 4) (i32.const 70) (i32.const 3) (i32.const 0)))
    (drop (call $proxy_record_metric (i32.load (i32.const 408)) (i64.const 7)))
    (i32.const 0))
  (func (export "proxy_on_queue_ready") (param $root i32) (param $token i32)
    (if (i32.eqz (call $proxy_dequeue_shared_queue (local.get $token) (i32.const 420) (i32.const 424)))
      (then (call $say (i32.load (i32.const 420)) (i32.load (i32.const 424)))
            (drop (call $proxy_record_metric (i32.load (i32.const 412)) (i64.extend_i32_u (i32.load (i32.const 424))))))))
)"""


def go_start_module() -> str:
    """The host calls the standard Go runtime (GOOS=wasip1) makes while it starts, in ``_initialize``:
    fd_fdstat_set_flags, fd_fdstat_get, poll_oneoff, clock_time_get, random_get, environ, args, sched_yield
    is not among them (not allowed while starting). It logs each errno; on_vm_start logs "started"."""
    calls = [("fd_fdstat_get", "(i32.const 1) (i32.const 500)"),
             ("fd_fdstat_set_flags", "(i32.const 1) (i32.const 4)"),
             ("poll_oneoff", "(i32.const 600) (i32.const 700) (i32.const 1) (i32.const 504)"),
             ("clock_time_get", "(i32.const 1) (i64.const 0) (i32.const 508)"),
             ("random_get", "(i32.const 520) (i32.const 16)"),
             ("environ_sizes_get", "(i32.const 540) (i32.const 544)"),
             ("args_sizes_get", "(i32.const 548) (i32.const 552)")]
    imports = "\n  ".join(
        f'(import "wasi_snapshot_preview1" "{n}" (func ${n} {abi.WASI_FUNCTIONS[n].wat(None)}))' for n, _ in calls)
    labels = {3000 + 32 * i: n for i, (n, _) in enumerate(calls)}
    body = " ".join(f"(call $say_num (i32.const {3000 + 32 * i}) (i32.const {len(n)}) (call ${n} {a}))"
                    for i, (n, a) in enumerate(calls))
    return f"""(module
  {imports}
  {_imports("proxy_log")}
  {_PRELUDE}
  {_data({**labels, 2900: "started"})}
  (func (export "_initialize") {body})
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (call $say (i32.const 2900) (i32.const 7)) (i32.const 1))
)"""


def trap_module() -> str:
    """Logs a Rust-like panic message, then traps in a named function two calls deep."""
    return f"""(module
  {_imports("proxy_log")}
  {_PRELUDE}
  {_data({0: "panicked at src/lib.rs:7:5: boom"})}
  (func $rust_panic (unreachable))
  (func $handle_request (call $rust_panic))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_log (i32.const 4) (i32.const 0) (i32.const 32)))
    (call $handle_request) (i32.const 0))
)"""


# Envoy's property paths the probe reads (envoy-tests/test_wasm_corpus_envoy.py compares them)
PROPERTY_PATHS = (
    "plugin_name", "plugin_root_id", "plugin_vm_id", "node", "node.id", "request.path", "request.url_path",
    "request.host", "request.scheme", "request.method", "request.headers", "request.referer", "request.useragent",
    "request.id", "request.protocol", "request.query", "request.time", "request.duration", "request.size",
    "request.total_size", "request.headers.user-agent", "response.code", "response.code_details",
    "response.flags", "response.grpc_status", "response.headers", "response.size", "source.address",
    "source.port", "destination.address", "destination.port", "connection.id", "connection.mtls",
    "connection.requested_server_name", "connection_id", "upstream.address", "upstream.port",
    "xds.cluster_name", "xds.route_name", "xds.listener_direction", "cluster_name", "route_name", "metadata",
    "filter_state", "nope", "plugin_name.x", "request",
)


def property_probe_module(paths: tuple[str, ...] = PROPERTY_PATHS) -> str:
    """Logs ``<phase><path>=<status>:<hex value>`` for every path, in on_vm_start (V), on_request_headers (Q)
    and on_log (L)."""
    datas, calls, off = [], [], 1024
    for p in paths:
        raw = p.replace(".", "\0").encode()
        datas.append(f'(data (i32.const {off}) "{_esc(raw)}")')
        calls.append(f"(call $probe (i32.const {off}) (i32.const {len(raw)}))")
        off += len(raw) + 8
    body = " ".join(calls)
    return f"""(module
  {_imports("proxy_log", "proxy_get_property")}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (global $phase (mut i32) (i32.const 0))
  {" ".join(datas)}
  (func (export "malloc") (param $n i32) (result i32) (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get $n) (i32.const 8)))) (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func $hex (param $b i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $b) (i32.const 10)) (then (i32.add (local.get $b) (i32.const 48)))
      (else (i32.add (local.get $b) (i32.const 87)))))
  (func $probe (param $p i32) (param $n i32) (local $st i32) (local $o i32) (local $i i32) (local $vp i32) (local $vn i32)
    (i32.store (i32.const 200) (i32.const 0)) (i32.store (i32.const 204) (i32.const 0))
    (local.set $st (call $proxy_get_property (local.get $p) (local.get $n) (i32.const 200) (i32.const 204)))
    (local.set $o (i32.const 131072))
    (i32.store8 (local.get $o) (global.get $phase)) (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (memory.copy (local.get $o) (local.get $p) (local.get $n)) (local.set $o (i32.add (local.get $o) (local.get $n)))
    (i32.store8 (local.get $o) (i32.const 61)) (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (i32.store8 (local.get $o) (i32.add (i32.const 48) (local.get $st))) (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (i32.store8 (local.get $o) (i32.const 58)) (local.set $o (i32.add (local.get $o) (i32.const 1)))
    (local.set $vp (i32.load (i32.const 200))) (local.set $vn (i32.load (i32.const 204)))
    (if (i32.gt_u (local.get $vn) (i32.const 400)) (then (local.set $vn (i32.const 400))))
    (block $done (loop $l (br_if $done (i32.ge_u (local.get $i) (local.get $vn)))
      (i32.store8 (local.get $o) (call $hex (i32.shr_u (i32.load8_u (i32.add (local.get $vp) (local.get $i))) (i32.const 4))))
      (i32.store8 (i32.add (local.get $o) (i32.const 1)) (call $hex (i32.and (i32.load8_u (i32.add (local.get $vp) (local.get $i))) (i32.const 15))))
      (local.set $o (i32.add (local.get $o) (i32.const 2))) (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
    (drop (call $proxy_log (i32.const 2) (i32.const 131072) (i32.sub (local.get $o) (i32.const 131072)))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (global.set $phase (i32.const 86)) {body} (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (global.set $phase (i32.const 81)) {body} (i32.const 0))
  (func (export "proxy_on_log") (param i32) (global.set $phase (i32.const 76)) {body})
)"""


def wasi_probe_module(module: str = "wasi_snapshot_preview1") -> str:
    """Calls every WASI function cpp-host registers in on_vm_start, once with fd 1 and once with fd 9 as
    first argument (other pointers at zeroed memory), and logs ``<name>:<fd>=<errno>``."""
    imports, calls, datas, off = [], [], [], 16384
    for name, sig in abi.WASI_FUNCTIONS.items():
        imports.append(f'(import "{module}" "{name}" (func ${name} {sig.wat(None)}))')
        for fd in (1, 9):
            label = f"{name}:{fd}"
            datas.append(f'(data (i32.const {off}) "{label}")')
            args = ["(i64.const 0)" if k == "I" else f"(i32.const {fd})" if i == 0 else "(i32.const 8192)"
                    for i, k in enumerate(sig.params)]
            call = f"(call ${name} {' '.join(args)})"
            if not sig.results:
                call += " (i32.const 0)"
            calls.append(f"(call $say_num (i32.const {off}) (i32.const {len(label)}) {call})")
            off += 64
    return f"""(module
  {" ".join(imports)}
  {_imports("proxy_log")}
  {_PRELUDE}
  {" ".join(datas)}
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) {" ".join(calls)} (i32.const 1))
)"""
