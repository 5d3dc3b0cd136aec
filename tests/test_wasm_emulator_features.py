"""The emulator's host features, one test each: HTTP calls answered by the test, gRPC calls and streams,
queues, timers, metrics, shared data, continue after a pause, properties, TCP filters, traps, VM start
restrictions, the static check, and the start-up host calls of the Go runtime."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tests.wasm_modules import (
    TCP_FILTER,
    go_start_module,
    grpc_module,
    http_call_body_module,
    http_call_module,
    queue_timer_metrics_module,
    trap_module,
)

from meshfilter.errors import WasmError, WasmTrap
from meshfilter.wasm import abi
from meshfilter.wasm.emulator import (
    Action,
    FilterStatus,
    HostEmulator,
    PeerType,
    check_module,
    grpc_service,
    serialize_property,
)
from meshfilter.wasm.pairs import parse_pairs

REQUEST = [(":authority", "h"), (":path", "/"), (":method", "GET"), ("user-agent", "ua")]


def _messages(logs: list) -> list[str]:  # type: ignore[type-arg]
    return [r.message for r in logs]


# -- HTTP calls ------------------------------------------------------------------------------------------

def test_http_call_answered_by_the_test_continues_the_stream() -> None:
    emu = HostEmulator(http_call_module(), clusters=["auth"])
    ctx = emu.new_http_context()
    assert ctx.request_headers(REQUEST) is Action.PAUSE
    assert ctx.paused
    [call] = ctx.http_calls
    assert (call.token, call.upstream, call.header(":path"), call.timeout_ms) == (4, "auth", "/check", 5000)
    call.respond([(":status", "200")], b"allow")
    assert _messages(ctx.logs) == ["token=4"]  # Envoy 1.40's first HTTP callout id (measured)
    assert _messages(emu.logs)[-2:] == ["status=200", "body=allow"]
    assert ctx.continued == [0] and not ctx.paused  # proxy_continue_stream resumed the request
    with pytest.raises(WasmError, match="answered already"):
        call.respond()


def test_http_call_denied_sends_the_local_reply_through_the_response_callbacks() -> None:
    emu = HostEmulator(http_call_module(), clusters=["auth"])
    res = emu.run_request(REQUEST, response_headers=[(":status", "200")],
                          http_call_response=([(":status", "503")], b"nope", []))
    assert res.reached_upstream is False and res.response_action is None
    assert res.local_response is not None and res.local_response.status_code == 403
    assert res.response_headers == [(":status", "403"), ("content-length", "6"), ("content-type", "text/plain")]
    assert res.response_body == b"denied"
    assert _messages(emu.logs)[-2:] == ["status=503", "body=nope"]


def test_http_call_to_an_undeclared_cluster_is_bad_argument() -> None:
    emu = HostEmulator(http_call_module())  # no clusters declared
    res = emu.run_request(REQUEST)
    assert res.http_calls == [] and emu.http_calls == []
    assert _messages(res.logs) == ["token=0"]  # BadArgument: no token written


def test_http_call_reset_reports_broken_connection() -> None:
    emu = HostEmulator(http_call_module(), clusters=["auth"])
    ctx = emu.new_http_context()
    ctx.request_headers(REQUEST)
    ctx.http_calls[0].fail()
    assert _messages(emu.logs)[-2:] == ["status=", "body="]  # no headers, no body
    assert ctx.local_response is not None and ctx.local_response.status_code == 403


# -- gRPC ------------------------------------------------------------------------------------------------

def test_grpc_call_and_stream() -> None:
    emu = HostEmulator(grpc_module(grpc_service("grpc")), clusters=["grpc"])
    res = emu.run_request(REQUEST)
    call, stream = res.grpc_calls
    assert (call.token, stream.token) == (5, 6)  # cpp-host's callout ids: the type in the low 2 bits
    assert (call.cluster, call.service, call.method, call.message) == ("grpc", "svc", "Unary", b"ping")
    assert not call.stream
    assert (stream.method, stream.stream, stream.sent) == ("Stream", True, [b"hello"])
    emu.clear_records()
    call.respond(b"pong", initial_metadata=[("a", "1")], trailing_metadata=[("grpc-status", "0"), ("x", "y")])
    assert emu.logs_at("info") == ["initial=1", "pong", "trailing=2", "close=0", ""]
    emu.clear_records()
    stream.receive(b"chunk")
    stream.close(14, "unavailable")
    assert emu.logs_at("info") == ["chunk", "close=14", "unavailable"]
    with pytest.raises(WasmError, match="is closed"):
        stream.receive(b"more")


def test_grpc_call_with_an_unparsable_service_is_parse_failure() -> None:
    emu = HostEmulator(grpc_module(b"\xff\xff"), clusters=["grpc"])
    res = emu.run_request(REQUEST)
    assert res.grpc_calls == []
    assert _messages(res.logs) == ["call=0", "stream=0"]


# -- queues, timers, metrics, shared data -------------------------------------------------------------------

def test_queue_ready_timers_metrics_and_shared_data() -> None:
    emu = HostEmulator(queue_timer_metrics_module())
    assert emu.start()
    assert emu.tick_period_ms == 100
    emu.run_request(REQUEST)
    assert _messages(emu.logs) == ["4"]  # proxy_on_queue_ready dequeued the header count
    assert emu.metrics["depth"].value == 7 and emu.metrics["sizes"].samples == (1,)
    assert emu.shared_data[b"seen"][0] == b"yes"
    assert emu.advance(350) == 3 and emu.metric("ticks") == 3
    emu.enqueue("jobs", b"from-test")
    assert _messages(emu.logs)[-1] == "from-test"
    with pytest.raises(WasmError, match="no shared queue"):
        emu.enqueue("nope", b"x")


# -- properties ---------------------------------------------------------------------------------------------

PROPS = """(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $gp (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32) (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "get") (param $p i32) (param $n i32) (result i32) (local $st i32)
    (local.set $st (call $gp (local.get $p) (local.get $n) (i32.const 100) (i32.const 104)))
    (if (i32.eqz (local.get $st))
      (then (drop (call $log (i32.const 2) (i32.load (i32.const 100)) (i32.load (i32.const 104))))))
    (local.get $st))
  (func (export "put") (param $p i32) (param $n i32) (result i32) (i32.const 0))
)"""


def _get(emu: HostEmulator, path: str) -> tuple[int, bytes]:
    raw = path.replace(".", "\0").encode()
    emu.write_memory(4096, raw)
    n = len(emu.logs)
    status = emu.call_export("get", 4096, len(raw))
    return int(status or 0), (emu.logs[n].message.encode("utf-8", "surrogateescape") if len(emu.logs) > n else b"")


def test_properties_envoy_paths_and_defaults() -> None:
    emu = HostEmulator(PROPS, root_id="r1", properties={"metadata.filter_metadata.x": "set-by-test"})
    assert emu.start()
    emu.set_effective_context(emu.root_context_id)
    assert _get(emu, "plugin_root_id") == (0, b"r1")
    assert _get(emu, "plugin_vm_id") == (0, b"r1")  # vm_id defaults to the root id, as envoy run does
    assert _get(emu, "request.path")[0] == abi.Status.NOT_FOUND  # the root context has no request
    ctx = emu.new_http_context()
    ctx.request_headers([(":path", "/a?b=1"), (":method", "POST"), (":authority", "h"), (":scheme", "http"),
                         ("user-agent", "ua"), ("x-request-id", "id-1")])
    emu.set_effective_context(ctx.context_id)
    assert _get(emu, "request.url_path") == (0, b"/a")
    assert _get(emu, "request.query") == (0, b"b=1")
    assert _get(emu, "request.method") == (0, b"POST")
    assert _get(emu, "request.id") == (0, b"id-1")
    assert _get(emu, "request.referer")[0] == abi.Status.NOT_FOUND
    assert _get(emu, "response.code")[0] == abi.Status.NOT_FOUND  # no response yet
    assert _get(emu, "xds.cluster_name") == (0, b"upstream")
    assert _get(emu, "connection.mtls") == (0, b"\x00")
    assert _get(emu, "request")[0] == abi.Status.SERIALIZATION_FAILURE
    assert _get(emu, "metadata.filter_metadata.x") == (0, b"set-by-test")
    assert _get(emu, "nope")[0] == abi.Status.NOT_FOUND
    status, headers = _get(emu, "request.headers")
    assert status == 0 and (b"user-agent", b"ua") in parse_pairs(headers)
    ctx.response_headers([(":status", "404")])
    ctx.done()


def test_property_values_serialize_as_envoy() -> None:
    assert serialize_property(200) == struct.pack("<Q", 200)
    assert serialize_property(True) == b"\x01"
    assert parse_pairs(serialize_property({"a": "1"})) == [(b"a", b"1")]


# -- TCP -----------------------------------------------------------------------------------------------------

def test_tcp_filter_rewrites_both_directions_and_sees_the_closes() -> None:
    emu = HostEmulator(TCP_FILTER.read_text())
    res = emu.run_connection([b"ping"], [b"pong"])  # the upstream closes first, as in Envoy's tcp_proxy
    assert res.new_connection == FilterStatus.CONTINUE
    # the module prefixes every chunk, the empty end-of-stream ones too (as it does in Envoy)
    assert res.downstream_data == b"to-upstream:pingto-upstream:"
    assert res.upstream_data == b"to-client:pongto-client:"
    assert _messages(res.logs) == ["new connection", "downstream data: ping", "upstream data: pong",
                                   "upstream data: ", "upstream close peer=0", "downstream data: ",
                                   "downstream close peer=2", "done"]  # then the context is gone


def test_tcp_context_step_by_step() -> None:
    emu = HostEmulator(TCP_FILTER.read_text())
    ctx = emu.new_tcp_context()
    assert ctx.new_connection() == FilterStatus.CONTINUE
    assert ctx.downstream_data(b"a", end_of_stream=True) == FilterStatus.CONTINUE
    assert ctx.sent_upstream == [b"to-upstream:a"]
    ctx.upstream_data(b"b", end_of_stream=True)  # the upstream ended: its close event
    assert _messages(ctx.logs)[-1] == "upstream close peer=0"
    ctx.downstream_close(PeerType.REMOTE)
    assert ctx.finished and _messages(ctx.logs)[-1] == "done"


# -- traps, start, check ----------------------------------------------------------------------------------------

def test_trap_carries_the_backtrace_and_the_panic_message() -> None:
    emu = HostEmulator(trap_module())
    with pytest.raises(WasmTrap) as info:
        emu.run_request(REQUEST)
    err = info.value
    assert err.callback == "proxy_on_request_headers"
    assert err.reason == "Uncaught RuntimeError: unreachable"
    assert [f.split(" - ")[1] for f in err.backtrace][:2] == ["rust_panic", "handle_request"]
    assert err.last_logs[-1] == "panicked at src/lib.rs:7:5: boom"
    assert "backtrace: rust_panic < handle_request" in err.line() and "panicked at" in err.line()
    assert err.envoy_message.splitlines()[:3] == [
        "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable",
        "Proxy-Wasm plugin in-VM backtrace:", f"  0:  {err.backtrace[0]}"]
    assert "\n" not in err.line()


def test_go_runtime_start_calls_are_allowed_with_cpp_host_results() -> None:
    emu = HostEmulator(go_start_module())
    assert emu.start_vm()
    assert _messages(emu.logs) == ["fd_fdstat_get=0", "fd_fdstat_set_flags=52", "poll_oneoff=0",
                                   "clock_time_get=0", "random_get=0", "environ_sizes_get=0",
                                   "args_sizes_get=0", "started"]


def test_a_host_call_outside_the_start_allow_list_fails_the_start() -> None:
    wat = go_start_module().replace('"fd_fdstat_get"', '"sched_yield"').replace(
        "(call $fd_fdstat_get (i32.const 1) (i32.const 500))", "(call $fd_fdstat_get)").replace(
        "$fd_fdstat_get (param i32) (param i32)", "$fd_fdstat_get")
    with pytest.raises(WasmTrap, match="_initialize trapped: Uncaught Error: restricted_callback"):
        HostEmulator(wat).start_vm()


def test_bad_callback_signature_is_refused_with_envoys_words() -> None:
    wat = """(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 0))
      (func (export "proxy_abi_version_0_1_0"))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0)))"""
    msg = ("Bad function signature for: proxy_on_request_headers, want: i32 i32 -> i32, but the module "
           "exports: i32 i32 i32 -> i32")
    with pytest.raises(WasmError, match=msg.replace("(", r"\(")):
        HostEmulator(wat)
    check = check_module(wat)
    assert not check.ok and [p.message for p in check.problems] == [msg]


def test_check_lists_every_problem() -> None:
    wat = """(module (import "env" "nope" (func)) (import "env" "proxy_log" (func (param i32) (result i32)))
      (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_tick") (param i32) (result i32) (i32.const 0)))"""
    assert [p.kind for p in check_module(wat).problems] == ["import", "import", "allocator", "signature"]


def test_memory_access_outside_is_an_error() -> None:
    emu = HostEmulator(PROPS)
    emu.write_memory(10, b"abc")
    assert emu.read_memory(10, 3) == b"abc"
    with pytest.raises(WasmError, match="outside the module's memory"):
        emu.read_memory(65535, 2)


CORPUS_RUNS = {  # module -> (root id, what it logs for one request)
    "cc_on_request_headers_http.wasm": ("", "user-agent -> ua"),
    "tinygo_2020_http_headers.wasm": ("my_root_id", "request header: user-agent: ua"),
    "mosn/add_req_header_v2.wasm": ("", None),
    "rust_envoy_filter_metadata_main.wasm": ("", None),
}


def test_corpus_modules_serve_requests_in_the_emulator(corpus: Path) -> None:
    for name, (root_id, line) in CORPUS_RUNS.items():
        emu = HostEmulator(corpus / name, root_id=root_id)
        for _ in range(3):
            res = emu.run_request(REQUEST, response_headers=[(":status", "200")])
            assert res.reached_upstream, name
            if line is not None:
                assert any(line in r.message for r in res.logs), (name, res.logs)
        assert emu.logs_at("error") == [] and emu.logs_at("critical") == [], name
    res = HostEmulator(corpus / "mosn/add_req_header_v2.wasm").run_request(REQUEST)
    assert res.request_header("wasm-context") == str(res.context_id)


def test_corpus_modules_load_or_are_refused(corpus: Path) -> None:
    refused = {"mosn/add_req_header_v1.wasm", "mosn/example_data_http.wasm", "mosn/wasmer_testdata_data.wasm"}
    for path in sorted(corpus.rglob("*.wasm")):
        name = str(path.relative_to(corpus))
        assert check_module(path).ok is (name not in refused), name


@pytest.fixture
def corpus() -> Path:
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "wasm-corpus"
    if not path.is_dir():
        pytest.skip("the shared wasm corpus is not beside the repository")
    return path


def test_a_paused_request_holds_its_body_until_it_continues() -> None:
    wat = http_call_body_module()
    emu = HostEmulator(wat, clusters=["auth"])
    held = emu.run_request(REQUEST, body=b"12345")  # nobody answers the call: no body callback
    assert held.paused and _messages(held.logs) == ["token=4"]
    res = emu.run_request(REQUEST, body=b"12345", http_call_response=([(":status", "200")], b"allow", []))
    assert res.reached_upstream and _messages(res.logs) == ["token=8", "token=5"]  # the body after the resume


def test_a_host_function_without_emulation_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshfilter.errors import HostCallError
    from meshfilter.wasm.emulator import _wasi

    full = _wasi.Wasi.functions
    monkeypatch.setattr(_wasi.Wasi, "functions",
                        lambda self: {k: v for k, v in full(self).items() if k != "fd_read"})
    wat = """(module (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 0))
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
        (call $r (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))"""
    emu = HostEmulator(wat)  # Envoy's host has it, so the module loads
    with pytest.raises(HostCallError, match=r"wasi_snapshot_preview1\.fd_read, which the emulator does not emulate"):
        emu.start_vm()
