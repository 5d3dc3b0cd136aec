"""Filters written in Python, compiled to proxy-wasm modules, in the host emulator: configuration
checked exactly like the Python side (same problems, same texts, same order), only the defined
callbacks exported, memory flat, no trap whatever the headers or the configuration."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshfilter.filters import propagate as oracle
from meshfilter.sdk import examples
from meshfilter.sdk.checker import check_file, check_source
from meshfilter.sdk.config import ConfigProblem, parse_config
from meshfilter.sdk.ir import ConfigField
from meshfilter.wasm import build_propagate_header
from meshfilter.wasm.emulator import HostEmulator
from meshfilter.wasm.python_filter import build_python_filter, compile_program

FIELDS = (ConfigField("name", "header_name", True), ConfigField("value", "header_value", False, "dflt"),
          ConfigField("plain", "str", False, ""), ConfigField("n", "int", False, 7),
          ConfigField("on", "bool", False, False), ConfigField("keys", "list", False, ("x",)))
ALL_KINDS = '''
from meshfilter.sdk import HeaderName, HeaderValue, HttpFilter, Request


class AllKinds(HttpFilter):
    class Config:
        name: HeaderName
        value: HeaderValue = "dflt"
        plain: str = ""
        n: int = 7
        on: bool = False
        keys: list[str] = ["x"]

    def on_request_headers(self, request: Request) -> None:
        request.headers.set("x-name", self.config.name)
        request.headers.set("x-value", self.config.value)
        request.headers.set("x-plain", self.config.plain)
        request.headers.set("x-n", str(self.config.n))
        if self.config.on:
            request.headers.set("x-on", "yes")
        for k in self.config.keys:
            request.headers.add("x-keys", k)
'''
PROGRAM = check_source(ALL_KINDS, "all_kinds.py")
MODULE = compile_program(PROGRAM)
CONFIGS = ['{"name": "X-A"}', '', '{}', '[]', '"x"', '{"name": 1}', '{"name": "a b"}', '{"name": ""}',
           '{"name":"a","n":1.5}', '{"name":"a","n":1e2}', '{"name":"a","n":99999999999}',
           '{"name":"a","n":2147483648}',
           '{"name":"a","n":-2147483648}', '{"name":"a","n":true}', '{"name":"a","keys":["a",1]}',
           '{"name":"a","keys":["a",["b"]]}', '{"name":"a","keys":"a"}', '{"name":"a","keys":["a","b"]}',
           '{"name":"a","on":true, "value":"v\\n"}', '{"name":"a", "name": 3}', '{"name":3, "name": "a"}',
           '{"name":"a"} x', '{"name":"\\ud800"}', '{"name":"a","x":"\\udc00"}', '{"a":[[[[]]]],"name":"q"}',
           '{"name":"a","keys":[]}', '{"name":"a","on":null}', '{"name":"a","plain":"caf\\u00e9\\u0000"}',
           '\ufeff{"name":"a"}', '{"name":"a",}', '{"name":"a","n":-0}', '{"name":"a","n":01}',
           '{"name":"a","value":"' + "v" * 5000 + '"}', "[" * 65 + "]" * 65,
           '{"name":"a","z":' + "[" * 64 + "]" * 64 + "}"]


def _python(fields: tuple[ConfigField, ...], config: str, prefix: str) -> str | None:
    try:
        parse_config(fields, config)
    except ConfigProblem as exc:
        return f"{prefix}: {exc.problem}"
    return None


def _module(config: str | bytes) -> tuple[bool, list[str], HostEmulator]:
    emu = HostEmulator(MODULE, plugin_config=config)
    ok = emu.start()
    return ok, emu.logs_at("error"), emu


@pytest.mark.parametrize("config", CONFIGS)
def test_configuration_refused_like_python_word_for_word(config: str) -> None:
    want = _python(FIELDS, config, "all-kinds")
    ok, errors, emu = _module(config)
    assert ok == (want is None)
    assert errors == ([] if want is None else [want])
    if ok:
        values = parse_config(FIELDS, config)
        result = emu.run_request([(":path", "/")])
        assert result.request_header("x-name") == values["name"]
        assert result.request_header("x-value") == values["value"]
        assert result.request_header_values("x-plain") == [values["plain"]] if "\0" not in values["plain"] else True
        assert result.request_header("x-n") == str(values["n"])
        assert (result.request_header("x-on") == "yes") == values["on"]
        assert result.request_header_values("x-keys") == values["keys"]


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False,
                           allow_infinity=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3), max_leaves=8)
field_values = st.one_of(json_values, st.sampled_from(["a", "X-Y", "", "a b", "v\r", 5, -3, 2**31, True, ["k"], []]))


@st.composite
def configs(draw: st.DrawFn) -> str:
    obj = draw(st.dictionaries(st.sampled_from([f.name for f in FIELDS] + ["other"]), field_values, max_size=6))
    text = json.dumps(obj)
    mutate = draw(st.integers(0, 4))
    if mutate == 1 and text:  # cut it short
        text = text[:draw(st.integers(0, len(text) - 1))]
    elif mutate == 2:  # a stray byte somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["{", "]", ",", '"', "\\", "x", " "])) + text[at:]
    return text


@settings(max_examples=300)
@given(config=configs())
def test_generated_configurations_agree_and_never_trap(config: str) -> None:
    want = _python(FIELDS, config, "all-kinds")
    ok, errors, _ = _module(config)  # a trap would raise WasmError here
    assert (ok, errors) == (want is None, [] if want is None else [want])


@settings(max_examples=100)
@given(raw=st.binary(max_size=64))
def test_arbitrary_configuration_bytes_never_trap(raw: bytes) -> None:
    ok, errors, _ = _module(raw)
    assert ok or len(errors) == 1


def test_a_refused_reconfiguration_keeps_the_previous_one_and_memory_stays_flat() -> None:
    emu = HostEmulator(MODULE, plugin_config='{"name": "first", "keys": ["a", "b"]}')
    assert emu.start()
    size = emu.memory_size()
    for i in range(300):
        assert emu.configure(json.dumps({"name": f"n{i}", "plain": "p" * 500, "keys": ["k"] * 50}))
        assert not emu.configure('{"name": "bad name"}')
    emu.configured = True  # Envoy keeps running the plugin it had when a new configuration is refused
    result = emu.run_request([])
    assert result.request_header("x-name") == "n299"
    assert result.request_header_values("x-keys") == ["k"] * 50
    assert result.request_header("x-plain") == "p" * 500
    assert emu.memory_size() == size


def test_propagate_header_from_python_refuses_what_the_hand_written_module_refuses() -> None:
    """The same configurations, the same log line word for word (both prefix propagate-header:)."""
    python_module = build_python_filter(examples.path("propagate-header"))
    hand_written = build_propagate_header()
    configs = ['{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}', "x", "[1]", "{}",
               '{"head_tag_name": "a"}', '{"head_tag_value": "b"}', '{"head_tag_name": 1, "head_tag_value": "b"}',
               '{"head_tag_name": "a", "head_tag_value": null}', '{"head_tag_name": "", "head_tag_value": "b"}',
               '{"head_tag_name": "a:b", "head_tag_value": "b"}', '{"head_tag_name": "a", "head_tag_value": "b\\r"}',
               '{"head_tag_name": "A", "head_tag_value": "b", "extra": [1, {"x": null}]}',
               '{"head_tag_name": "a", "head_tag_value": "\\ud83d\\ude00", "head_tag_name": "Z"}']
    for config in configs:
        results = []
        for module in (python_module, hand_written):
            emu = HostEmulator(module, plugin_config=config, root_id=oracle.ROOT_ID)
            ok = emu.start()
            headers = emu.run_request([("Route-V", "old")]).request_headers if ok else None
            results.append((ok, emu.logs_at("error"), headers))
        assert results[0] == results[1], config
    # the one difference: an empty configuration is {} for SDK filters (a missing key, not invalid JSON)
    empty = HostEmulator(python_module, plugin_config="", root_id=oracle.ROOT_ID)
    assert not empty.start() and empty.logs_at("error") == ["propagate-header: missing key head_tag_name"]


@pytest.mark.parametrize("name", list(examples.EXAMPLES))
def test_only_the_callbacks_the_class_defines_are_exported(name: str) -> None:
    import wasmtime

    program = check_file(examples.path(name))
    module = wasmtime.Module(wasmtime.Engine(), compile_program(program))
    exports = sorted(e.name for e in module.exports)
    callbacks = {"on_request_headers": "proxy_on_request_headers", "on_response_headers": "proxy_on_response_headers"}
    want = sorted(["memory", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "proxy_on_configure",
                   *(callbacks[c] for c in program.callbacks)])
    assert exports == want


def test_abi_010_modules() -> None:
    import wasmtime

    program = check_file(examples.path("error-stamp"))
    module = compile_program(program, abi="0.1.0")
    names = {e.name: e for e in wasmtime.Module(wasmtime.Engine(), module).exports}
    assert {"malloc", "proxy_abi_version_0_1_0", "proxy_on_response_headers"} <= set(names)
    emu = HostEmulator(module, plugin_config="{}")
    assert emu.start() and emu.abi_version == "0.1.0"
    result = emu.run_request([], response_headers=[(":status", "503")])
    assert result.response_headers == [(":status", "503"), ("x-upstream-error", "503")]
    tag = HostEmulator(compile_program(check_file(examples.path("gateway-tag")), abi="0.1.0"), plugin_config="{}")
    assert tag.run_request([("user-agent", "iPhone13")]).route_cache_clears == 1  # proxy_clear_route_cache


def test_propagate_header_from_python_is_at_most_4_kb() -> None:
    assert len(build_python_filter(examples.path("propagate-header"))) <= 4096


@pytest.mark.parametrize("name", ["api-key", "header-rename", "path-redirect"])
def test_memory_is_flat_after_100000_requests(name: str) -> None:
    """Every callback resets the bump allocator: requests that allocate (joins, f-strings, local
    replies) leave the linear memory exactly as large as after the first request."""
    cfg: dict[str, Any] = examples.EXAMPLES[name][2]
    emu = HostEmulator(build_python_filter(examples.path(name)), plugin_config=json.dumps(cfg))
    assert emu.start()
    emu.run_request([(":path", "/old/x"), ("x-old-id", "a" * 4000), ("x-old-id", "b")])
    size = emu.memory_size()
    for i in range(100_000 if name == "api-key" else 20_000):
        emu.run_request([(":path", f"/old/{i}"), (":method", "GET"), ("x-api-key", "nope" * (i % 64)),
                         ("x-old-id", str(i)), ("x-old-id", "v" * (i % 300))])
        if i % 1000 == 0:
            emu.clear_records()
    assert emu.memory_size() == size


header_names = st.binary(min_size=0, max_size=12)
header_lines = st.lists(st.tuples(st.one_of(header_names, st.sampled_from([b"x-api-key", b"user-agent", b":path",
                                                                            b"x-old-id", b":status"])),
                                  st.binary(max_size=40)), max_size=12)


@pytest.mark.parametrize("name", list(examples.EXAMPLES))
def test_never_traps_whatever_the_headers(name: str) -> None:
    cfg = examples.EXAMPLES[name][2]
    emu = HostEmulator(build_python_filter(examples.path(name)), plugin_config=json.dumps(cfg))
    assert emu.start()

    @settings(max_examples=60)
    @given(request=header_lines, response=header_lines)
    def run(request: list[tuple[bytes, bytes]], response: list[tuple[bytes, bytes]]) -> None:
        emu.run_request(request, response_headers=response)  # a trap raises WasmError
        assert emu.logs_at("error") == []
        emu.clear_records()

    run()
