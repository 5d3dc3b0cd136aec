"""The emulator against Envoy 1.40, with ``wasm diff``'s machinery (meshfilter.wasm.emulator.diff).

Every module of ../shared/wasm-corpus/ and the AssemblyScript fixture runs one request in a real Envoy
and in the emulator: both refuse it with the same words, or both give the upstream the same headers,
answer with the same local reply and log the same lines. Then the host's behaviour case by case, each
with a small module run in both: Envoy's refusals (no ABI marker, a callback with the wrong signature,
an HTTP call to an unknown cluster), the start-up allow-list and the Go runtime's start-up calls, the
results of every WASI function, Envoy's property paths, HTTP callouts answered by a cluster, traps.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.wasm_modules import (
    PROPERTY_PATHS,
    go_start_module,
    http_call_body_module,
    http_call_module,
    property_probe_module,
    trap_module,
    wasi_probe_module,
)

from meshfilter.wasm import assemble
from meshfilter.wasm.emulator.diff import _Answer, diff_module, run_in_emulator, run_in_envoy

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "wasm-corpus"
AS_FILTER = ROOT / "tests" / "data" / "wasm_sdk" / "as_filter.wasm"
HEADERS = [(":path", "/x?q=1"), ("user-agent", "curl/8"), ("x-as-tag", "client"), ("x-a", "1"), ("x-a", "2")]

# module -> (diff keyword arguments, what Envoy does with it)
CASES: dict[str, tuple[dict[str, object], str]] = {
    "cc_on_request_headers_http.wasm": ({}, "runs"),
    "rust_envoy_filter_metadata_main.wasm": ({}, "runs"),
    "tinygo_2020_helloworld.wasm": ({"root_id": "my_root_id"}, "traps"),  # no HTTP context: panics
    "tinygo_2020_http_headers.wasm": ({"root_id": "my_root_id"}, "runs"),
    "tinygo_2020_http_auth_random.wasm": ({"root_id": "my_root_id", "clusters": ["httpbin"],
                                           "http_call_response": (200, b"x")}, "runs"),
    "mosn/add_req_header_v1.wasm": ({}, "refused"),
    "mosn/add_req_header_v2.wasm": ({}, "runs"),
    "mosn/example_data_http.wasm": ({}, "refused"),
    "mosn/wasmer_testdata_data.wasm": ({}, "refused"),
}


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared wasm corpus is not at {CORPUS}")
    return CORPUS


def test_every_corpus_module_is_covered(corpus: Path) -> None:
    assert sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*.wasm")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_module_same_in_envoy_and_emulator(corpus: Path, name: str) -> None:
    kwargs, expected = CASES[name]
    result = diff_module(corpus / name, headers=HEADERS, **kwargs)  # type: ignore[arg-type]
    assert result.same, result.differences
    if expected == "refused":
        assert result.envoy.refused and result.envoy.refused.startswith("Bad function signature for: "
                                                                        "proxy_on_request_headers, want: i32 i32")
    elif expected == "traps":
        assert result.envoy.refused and result.envoy.refused.startswith("Function: proxy_on_context_create failed")
        assert "Proxy-Wasm plugin in-VM backtrace:" in result.envoy.refused  # the same frames, names, offsets
    else:
        assert result.envoy.refused is None
        assert result.envoy.upstream_headers is not None or result.envoy.local_reply is not None


def test_assemblyscript_fixture_same_in_envoy_and_emulator() -> None:
    for headers in (HEADERS, [("user-agent", "a"), ("x-as-seen", "pre")]):
        result = diff_module(AS_FILTER, root_id="as_tag", plugin_config="gray", headers=headers)
        assert result.same, result.differences
        assert ("x-as-tag", "gray") in (result.envoy.upstream_headers or [])
    # a body: Envoy's HTTP/1 codec hands it over as it came, then an empty end of stream
    result = diff_module(AS_FILTER, root_id="as_tag", plugin_config="gray", body=b"hello world",
                         headers=[(":method", "POST"), ("user-agent", "u")])
    assert result.same, result.differences
    assert "proxy_on_request_body(2, 11, 0)" in result.envoy.callbacks
    assert result.envoy.upstream_body == b"hello world"


def test_tinygo_http_callout_answered_by_a_cluster_both_ways(corpus: Path) -> None:
    # the module hashes the callout's body: one body grants, another denies (a local 403)
    outcomes = set()
    for body in (b"x", b"y", b"allow-me", b"z"):
        result = diff_module(corpus / "tinygo_2020_http_auth_random.wasm", root_id="my_root_id", headers=HEADERS,
                             clusters=["httpbin"], http_call_response=(200, body))
        assert result.same, result.differences
        outcomes.add("denied" if result.envoy.local_reply else "granted")
    assert outcomes == {"denied", "granted"}


def test_http_call_to_an_unknown_cluster_is_bad_argument_in_both() -> None:
    module = assemble(http_call_module())
    result = diff_module(module, headers=HEADERS)  # cluster "auth" is not declared
    assert result.same, result.differences
    assert result.envoy.paused  # the module waits for an answer that never comes
    assert ("info", "token=0") in result.envoy.request_logs


def test_http_call_answered_by_a_declared_cluster_in_both() -> None:
    module = assemble(http_call_module())
    for body, granted in ((b"allow", True), (b"deny!", False)):
        result = diff_module(module, headers=HEADERS, clusters=["auth"], http_call_response=(200, body))
        assert result.same, result.differences
        assert (result.envoy.upstream_headers is not None) is granted
        assert ("info", f"body={body.decode()}") in result.envoy.request_logs


def test_module_without_abi_marker_is_refused_by_both() -> None:
    module = assemble('(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) '
                      '(i32.const 0)))')
    result = diff_module(module, headers=HEADERS)
    assert result.same, result.differences
    assert result.envoy.refused == "Missing or unknown Proxy-Wasm ABI version"


def test_go_runtime_start_calls_run_in_both() -> None:
    result = diff_module(assemble(go_start_module()), headers=HEADERS)
    assert result.same, result.differences
    assert ("info", "fd_fdstat_set_flags=52") in result.envoy.start_logs
    assert ("info", "started") in result.envoy.start_logs


def test_a_host_call_outside_the_start_allow_list_fails_both() -> None:
    wat = go_start_module().replace('"fd_fdstat_get"', '"sched_yield"').replace(
        "(call $fd_fdstat_get (i32.const 1) (i32.const 500))", "(call $fd_fdstat_get)").replace(
        "$fd_fdstat_get (param i32) (param i32)", "$fd_fdstat_get")
    result = diff_module(assemble(wat), headers=HEADERS)
    assert result.same, result.differences
    assert result.envoy.refused and "Uncaught Error: restricted_callback" in result.envoy.refused


@pytest.mark.parametrize("wasi", ["wasi_snapshot_preview1", "wasi_unstable"])
def test_every_wasi_function_answers_as_in_envoy(wasi: str) -> None:
    result = diff_module(assemble(wasi_probe_module(wasi)), headers=HEADERS)
    assert result.same, result.differences
    assert ("info", "fd_fdstat_set_flags:1=52") in result.envoy.start_logs
    assert ("info", "path_open:1=44") in result.envoy.start_logs


def test_a_trap_reads_the_same_in_both() -> None:
    result = diff_module(assemble(trap_module(), strip=False), headers=HEADERS)
    assert result.same, result.differences
    assert result.envoy.refused and "rust_panic" in result.envoy.refused


# values that depend on the run (ports, times, ids, sizes): compared by status only
_VARYING = ("request.time", "request.duration", "request.id", "request.host", "request.headers", "request.total_size",
            "source.address", "source.port", "destination.address", "destination.port", "upstream.address",
            "upstream.port", "connection.id", "connection_id", "response.headers", "response.size",
            "response.total_size")


def _props(logs: list[tuple[str, str]] | set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    out = {}
    for _, msg in logs:
        phase, rest = msg[0], msg[1:]
        path, _, value = rest.partition("=")
        status, _, hexval = value.partition(":")
        out[(phase, path.replace("\0", "."))] = (status, hexval)
    return out


def test_property_paths_answer_as_in_envoy() -> None:
    module = assemble(property_probe_module())
    upstream = _Answer(200, [("content-type", "text/plain")], b"ok")
    kw = dict(root_id="r1", plugin_config="", vm_config="", vm_id=None, headers=HEADERS, body=None,
              upstream=upstream, clusters={})
    envoy = run_in_envoy(module, **kw)  # type: ignore[arg-type]
    emu = run_in_emulator(module, host=envoy.authority or "", service_time=envoy.upstream_service_time, **kw)  # type: ignore[arg-type]
    got_envoy = _props(envoy.start_logs) | _props(envoy.request_logs)
    got_emu = _props(emu.start_logs) | _props(emu.request_logs)
    assert set(got_envoy) == {(ph, p) for ph in "VQL" for p in PROPERTY_PATHS}
    for key, (status, value) in got_envoy.items():
        assert got_emu[key][0] == status, key
        if key[1] not in _VARYING:
            assert got_emu[key][1] == value, key


def test_a_paused_request_gets_its_body_after_the_callout_in_both() -> None:
    wat = http_call_body_module()
    result = diff_module(assemble(wat), headers=[(":method", "POST"), *HEADERS], body=b"12345", clusters=["auth"],
                         http_call_response=(200, b"allow"))
    assert result.same, result.differences
    assert result.envoy.upstream_body == b"12345"
    assert [c for c in result.envoy.callbacks if "body" in c][0].startswith("proxy_on_request_body(2, 5")
