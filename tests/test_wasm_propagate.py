"""The propagate-header Wasm module, run in meshfilter's proxy-wasm host emulator.

The module's verdict on any configuration must equal the Python oracle
``meshfilter.filters.propagate.parse_config``, word for word in the logged line, and the module
must never trap (the emulator raises WasmError on a trap).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.cli import main as cli_main
from meshfilter.errors import UsageError
from meshfilter.filters.propagate import LOG_PREFIX, PROBLEMS, ROOT_ID, PropagateConfigError, parse_config
from meshfilter.wasm import build_propagate_header
from meshfilter.wasm.emulator import HostEmulator
from meshfilter.wasm.propagate import pack_strings

MODULES = {abi: build_propagate_header(abi=abi) for abi in ("0.2.1", "0.1.0")}
GOOD = b'{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}'


class Host:
    """The emulator, plus the few views these tests need."""

    def __init__(self, module: bytes, *, root_id: str | None = ROOT_ID) -> None:
        self.emu = HostEmulator(module, root_id=root_id or "", plugin_config=GOOD)
        if root_id is None:  # a host without the plugin_root_id property
            del self.emu.properties[("plugin_root_id",)]
        assert self.emu.start_vm()
        self.abi01 = self.emu.abi_version == "0.1.0"
        mod = wasmtime.Module(wasmtime.Engine(), module)
        self.imports = {i.name for i in mod.imports}
        self.exports = {e.name for e in mod.exports}
        self.headers: list[tuple[str, str]] = []
        self.foreign_calls: list[str] = []
        self.route_cache_clears = 0

    @property
    def logs(self) -> list[tuple[str, str]]:
        return [(r.level, r.message) for r in self.emu.logs]

    def configure(self, config: bytes) -> bool:
        self.emu.clear_records()
        return self.emu.configure(config)

    def request(self, headers: list[tuple[str, str]]) -> int:
        r = self.emu.run_request(headers)
        self.headers = r.request_headers
        self.foreign_calls = [f.name for f in r.foreign_calls]
        self.route_cache_clears = r.route_cache_clears
        return int(r.request_action)

    def memory_size(self) -> int:
        return self.emu.memory_size()


def oracle(config: bytes) -> str | None:
    """The problem text parse_config gives, or None when valid."""
    try:
        parse_config(config)
    except PropagateConfigError as exc:
        return PROBLEMS[exc.problem]
    return None


def verdict(host: Host, config: bytes) -> str | None:
    ok = host.configure(config)
    if ok:
        assert host.logs == []
        return None
    assert len(host.logs) == 1, host.logs
    level, line = host.logs[0]
    assert level == "error"
    assert line.startswith(LOG_PREFIX)
    return line[len(LOG_PREFIX):]


@pytest.fixture(params=sorted(MODULES))
def host(request: pytest.FixtureRequest) -> Host:
    return Host(MODULES[request.param])


# -- shape --------------------------------------------------------------------------------------


@pytest.mark.parametrize("abi", sorted(MODULES))
def test_exports_only_what_the_filter_needs(abi: str) -> None:
    h = Host(MODULES[abi])
    marker = "proxy_abi_version_" + abi.replace(".", "_")
    alloc = "malloc" if abi == "0.1.0" else "proxy_on_memory_allocate"
    assert h.exports == {marker, "memory", alloc, "proxy_on_configure", "proxy_on_request_headers"}
    if abi == "0.1.0":
        assert "proxy_get_configuration" in h.imports and "proxy_clear_route_cache" in h.imports
    else:
        assert "proxy_get_buffer_bytes" in h.imports and "proxy_call_foreign_function" in h.imports


@pytest.mark.parametrize("abi", sorted(MODULES))
def test_module_is_small(abi: str) -> None:
    assert len(MODULES[abi]) < 4096, len(MODULES[abi])


@pytest.mark.parametrize(("abi", "root_id", "budget"), [("0.2.1", ROOT_ID, 2046), ("0.1.0", ROOT_ID, 1981),
                                                       ("0.2.1", "", 1892)])
def test_module_stays_within_its_size_budget(abi: str, root_id: str, budget: int) -> None:
    """The module's size (docs/architecture/wasm-codegen.md, "Size"); was 3,156 bytes, then 2,440, then 2,115."""
    assert len(build_propagate_header(abi=abi, root_id=root_id)) <= budget


def test_pack_strings_holds_every_string_in_less_room() -> None:
    parts = [b"missing key ", b"head_tag_name", b"head_tag_name is empty", b"name", b"key head", b"x"]
    packed = pack_strings(parts)
    assert all(p in packed for p in parts)
    assert len(packed) < len(b"".join(set(parts))) - 20
    assert pack_strings([]) == b"" and pack_strings([b"a", b"a"]) == b"a"


def test_module_without_route_cache_clear_only_replaces(host: Host) -> None:
    abi = "0.1.0" if host.abi01 else "0.2.1"
    h = Host(build_propagate_header(abi=abi, clear_route_cache=False))
    assert not h.imports & {"proxy_call_foreign_function", "proxy_clear_route_cache"}
    assert h.configure(GOOD)
    h.request([("route-v", "a"), ("route-v", "b")])
    assert h.headers == [("route-v", "hello2v2")] and h.route_cache_clears == 0 and h.foreign_calls == []


def test_build_is_deterministic() -> None:
    assert build_propagate_header() == MODULES["0.2.1"]


# -- requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("before", [
    [],
    [("route-v", "other")],
    [("route-v", "a"), ("x", "y"), ("route-v", "b")],
])
def test_request_header_is_replaced_with_one_value(host: Host, before: list[tuple[str, str]]) -> None:
    assert host.configure(b'{"head_tag_name": "Route-V", "head_tag_value": "hello2v2"}')
    assert host.request(before) == 0  # Continue
    assert [v for k, v in host.headers if k == "route-v"] == ["hello2v2"]
    assert ("x", "y") in host.headers or ("x", "y") not in before
    assert host.route_cache_clears == 1
    # ABI 0.2.x: Envoy's foreign function; ABI 0.1.0: the ABI's own proxy_clear_route_cache
    assert host.foreign_calls == ([] if host.abi01 else ["clear_route_cache"])


def test_refused_reconfiguration_keeps_the_previous_one(host: Host) -> None:
    assert host.configure(b'{"head_tag_name": "a", "head_tag_value": "1"}')
    assert not host.configure(b'{"head_tag_name": "b"}')
    # In Envoy the VM is shared: the listener with the old plugin keeps serving requests after a
    # new plugin configuration is refused. The emulator models one plugin, so say it is still on.
    host.emu.configured = True
    host.request([])
    assert host.headers == [("a", "1")]
    assert host.configure(b'{"head_tag_value": "22", "head_tag_name": "bb"}')
    host.request([])
    assert host.headers == [("bb", "22")]


def test_unicode_value_is_decoded_to_utf8(host: Host) -> None:
    cfg = '{"head_tag_name":"v","head_tag_value":"\\u00e9\\ud83d\\ude00\\u20ac' + "ü😀" + '\\t\\"\\\\\\/"}'
    assert host.configure(cfg.encode())
    host.request([])
    assert host.headers == [("v", "é😀€ü😀\t\"\\/")]
    assert parse_config(cfg).value == "é😀€ü😀\t\"\\/"


# -- memory -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_is_the_same_after_100000_requests_as_after_1000() -> None:
    h = Host(MODULES["0.2.1"])
    assert h.configure(GOOD)
    for _ in range(1000):
        h.request([("route-v", "x")])
    after_1000 = h.memory_size()
    for _ in range(99_000):
        h.request([("route-v", "x")])
    assert h.memory_size() == after_1000
    assert h.headers == [("route-v", "hello2v2")]


def test_memory_is_bounded_over_reconfigurations_and_big_configs(host: Host) -> None:
    big = json.dumps({"pad": "x" * 300_000, "head_tag_name": "a", "head_tag_value": "b"}).encode()
    assert host.configure(big)
    size = host.memory_size()
    for _ in range(50):
        assert host.configure(big)
        assert not host.configure(b"[" * 100_000)
    assert host.memory_size() == size
    host.emu.configured = True  # the last accepted configuration is still in force (see above)
    host.request([])
    assert host.headers == [("a", "b")]


# -- configuration: every problem, and JSON edge cases --------------------------------------------

_NAME = b'{"head_tag_name": "a"'
_MEMBER = _NAME + b', "head_tag_value": "v"'

CASES: list[bytes] = [
    GOOD,
    b"",
    b"   ",
    b"null",
    b'"str"',
    b"[]",
    b"{}",
    b'{"head_tag_name": "a"}',
    b'{"head_tag_value": "a"}',
    b'{"head_tag_name": 1, "head_tag_value": "x"}',
    b'{"head_tag_name": "a", "head_tag_value": null}',
    b'{"head_tag_name": ["a"], "head_tag_value": {}}',
    b'{"head_tag_name": "", "head_tag_value": "x"}',
    b'{"head_tag_name": "a b", "head_tag_value": "x"}',
    b'{"head_tag_name": "a:b", "head_tag_value": "x"}',
    b'{"head_tag_name": "\\u00e9", "head_tag_value": "x"}',
    b'{"head_tag_name": "a", "head_tag_value": "x\\r"}',
    b'{"head_tag_name": "a", "head_tag_value": "x\\n"}',
    b'{"head_tag_name": "a", "head_tag_value": "x\\u0000"}',
    b'{"head_tag_name": "a", "head_tag_value": ""}',
    b'{"head_tag_name": "a", "head_tag_value": "\\u0001\\u007f\x7f"}',
    b'\t\r\n {"head_tag_value" :"v" ,\n"head_tag_name":"N", "extra": [1, -2.5e+10, true, false, null, {"a": []}]} \n',
    b'{"head_tag_name": "a", "head_tag_value": "v", "head_tag_name": "b"}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "head_tag_name": 5}',
    b'{"head_tag_name": 5, "head_tag_value": "v", "head_tag_name": "ok"}',
    b'{"head\\u005ftag_name": "a", "head_tag_value": "v"}',
    b'{"head_tag_name": "a", "head_tag_value": "v"} x',
    b'{"head_tag_name": "a", "head_tag_value": "v"}}',
    b'{"head_tag_name": "a", "head_tag_value": "v",}',
    b'{"head_tag_name": "a" "head_tag_value": "v"}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "x": [1,]}',
    b"{'head_tag_name': 'a', 'head_tag_value': 'v'}",
    b'\xef\xbb\xbf{"head_tag_name": "a", "head_tag_value": "v"}',
    b'{"head_tag_name": "a", "head_tag_value": "\xc3"}',
    b'{"head_tag_name": "a", "head_tag_value": "\xc0\xaf"}',
    b'{"head_tag_name": "a", "head_tag_value": "\xed\xa0\x80"}',
    b'{"head_tag_name": "a", "head_tag_value": "\xf4\x90\x80\x80"}',
    b'{"head_tag_name": "a", "head_tag_value": "\xf0\x9f\x98\x80\xe2\x82\xac"}',
    b'{"head_tag_name": "a", "head_tag_value": "tab\there"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\ud800"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\udc00"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\ud800\\u0041"}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "other": "\\ud800"}',
    b'{"\\udfff": 1, "head_tag_name": "a", "head_tag_value": "v"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\uD83D\\uDE00"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\ud877\\udf37\\ud800\\udc00\\udbff\\udfff"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\ud800\\ud800\\udc00"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\udc00\\ud800"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\u12"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\x41"}',
    b'{"head_tag_name": "a", "head_tag_value": "\\U0041"}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": 01}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": 1.}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": .5}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": -}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": +1}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": 1e}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": 1E-0}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": -0.0e+00}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": ' + b"9" * 5000 + b"}",
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": NaN}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": Infinity}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": tru}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": nulll}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "n": True}',
    b'{"head_tag_name": "a", "head_tag_value": "raw\x01ctl"}',
    b'{"head_tag_name": "a", "head_tag_value": "v"\x00}',
    b'{"head_tag_name": "a", "head_tag_value": "v"\x0b}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": ' + b"[" * 63 + b"]" * 63 + b"}",
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": ' + b"[" * 64 + b"]" * 64 + b"}",
    b"[" * 64 + b"]" * 64,
    b"[" * 65 + b"]" * 65,
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": ' + b'{"a":' * 63 + b"1" + b"}" * 63 + b"}",
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": ' + b'{"a":' * 64 + b"1" + b"}" * 64 + b"}",
    b"[" * 100_000,
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": [}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "d": {]}',
    b'{"head_tag_name": "a", "head_tag_value": "v"',
    b'{"head_tag_name": "a", "head_tag_value": "v',
    b'{"head_tag_name": "a", "head_tag_value": "v\\',
    b'{"head_tag_name": "a", "head_tag_value": "v\\u',
    b'{"head_tag_name": "a", "head_tag_value": "v\\ud83d\\',
    b'{"head_tag_name"',
    b'{"head_tag_name":',
    b"{",
    b'{"head_tag_name": "!#$%&\'*+-.^_`|~09azAZ", "head_tag_value": "v"}',
    b'{"head_tag_name": "a\\"", "head_tag_value": "v"}',
    b'{"head_tag_name": "a", "head_tag_value": "v", "": ""}',
    # the exponent: 'e' or 'E', then '+' or '-' (the module picks which of each it expects by what is next)
    *(_MEMBER + b', "n": ' + n + b"}"
      for n in (b"1E/2", b"1e)5", b"1e*5", b"1e,5", b"1eE5", b"1e+-5", b"1E+5", b"1e-05", b"1e5", b"0e0", b"-0E-0")),
    # literals (found by the first letter's residue mod 5): every residue, near misses
    *(_MEMBER + b', "n": ' + w + b"}"
      for w in (b"true", b"false", b"null", b"nul", b"truefalse", b"e", b"b", b"g", b"l", b"q", b"v", b"y", b"d",
                b"i", b"s", b"x", b"c", b"h", b"m", b"r", b"w", b"fals", b"falsee", b"nulltrue", b"tnull")),
    b"[true, false, null]",
    b"true",
    # every simple escape, and escapes that are not ones
    _NAME + rb', "head_tag_value": "\"\\\/\b\f\n\r\t"}',
    *(_NAME + rb', "head_tag_value": "\%s"}' % e for e in (b"a", b"e", b"v", b"0", b"'", b"B", b"N", b"u0041")),
    _NAME + rb', "head_tag_value": "\uD83D\uDE00\uDBFF\uDFFF\uFFFF\u0800"}',
    _NAME + rb', "head_tag_value": "\uD83D\uD83D"}',
    _NAME + rb', "head_tag_value": "\uD83D\n"}',
    _NAME + rb', "head_tag_value": "\uD83Dx"}',
    _NAME + rb', "head_tag_value": "\uDBFF\uE000"}',
    _NAME + rb', "head_tag_value": "\u:000"}',
    _NAME + rb', "head_tag_value": "\u00G0"}',
    # raw UTF-8 at every boundary
    *(_NAME + b', "head_tag_value": "' + u + b'"}'
      for u in (b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xe0\x9f\xbf", b"\xed\x9f\xbf", b"\xed\xbf\xbf",
                b"\xee\x80\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x8f\xbf\xbf",
                b"\xf5\x80\x80\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\x80", b"\xbf", b"\xe2\x82",
                b"\xe2\x82x", b"\xf8\x88\x80\x80\x80", b"\xff")),
    # header name characters: token characters only, judged on the decoded name
    *(b'{"head_tag_name": "' + n + b'", "head_tag_value": "v"}'
      for n in (rb"\u0041", rb"\u007f", rb"\u0020", rb"a\u00e9", b"\xc3\xa9", b"(", b")", b"@", b"[", b"]", b"{",
                b"}", b"/", b";", b"=", b"?", b",", rb"\\", rb"\"", b"^_`|~", b"\x7f")),
    _NAME + rb', "head_tag_value": "\u000d\u000a"}',
    _NAME + rb', "head_tag_value": "a\u0000b"}',
    # only the top object's members count; the last one given wins
    b'{"x": {"head_tag_name": "a"}, "head_tag_name": "b", "head_tag_value": "c"}',
    _MEMBER + b', "head_tag_name": {"head_tag_name": "z"}}',
    b'{"head_tag_name": ["head_tag_value", "x"], "head_tag_value": "v"}',
    _MEMBER + b', "y": [{"head_tag_value": 1}]}',
    b'[{"head_tag_name": "a", "head_tag_value": "b"}]',
    _MEMBER + b', "head_tag_value": "w", "head_tag_name": "b"}',
    # member names must be strings; empty containers anywhere
    b"{1}", b'{"a": 1, 2}', b"{[]: 1}", b"{{}: 1}", b"{true: 1}", b"{ }", b"[ ]", b"[[]]", b"[{}]",
    _MEMBER + b', "x": [], "y": {}, "z": [[], {}]}',
    _MEMBER + b', "x": [1 2]}',
    _MEMBER + b', "x": {"a" 1}}',
    _MEMBER + b', "x": {"a":}}',
    _MEMBER + b"}\x0c",
    b"\x0c" + _MEMBER + b"}",
]


@pytest.mark.parametrize("config", CASES, ids=[repr(c[:40]) for c in CASES])
@pytest.mark.parametrize("abi", sorted(MODULES))
def test_verdict_matches_the_oracle(abi: str, config: bytes) -> None:
    assert verdict(_HOSTS[abi], config) == oracle(config)


def test_every_problem_is_covered_by_the_cases() -> None:
    assert {oracle(c) for c in CASES} == {None, *PROBLEMS.values()}


def test_unrestricted_root_id_and_mismatched_root_id() -> None:
    h = Host(MODULES["0.2.1"], root_id="another_root")
    assert not h.configure(GOOD)
    mismatch = "plugin root id does not match the module's root id propaganda_filter_root"
    assert h.logs == [("error", LOG_PREFIX + mismatch)]
    assert Host(MODULES["0.2.1"], root_id=None).configure(GOOD)  # host without the property
    assert Host(MODULES["0.2.1"], root_id="").configure(GOOD)  # plugin without a root id
    anyroot = Host(build_propagate_header(root_id=""), root_id="whatever")
    assert "proxy_get_property" not in anyroot.imports
    assert anyroot.configure(GOOD)
    assert Host(build_propagate_header(root_id="my_root"), root_id="my_root").configure(GOOD)
    with pytest.raises(UsageError, match="root id"):
        build_propagate_header(root_id="a\0b")


@pytest.mark.parametrize("root_id", ["r" * 256, "é" * 100, "x"])
def test_any_root_id_is_checked_and_named(root_id: str) -> None:
    """Long root ids move the texts past one-byte span offsets (the module then uses two bytes)."""
    module = build_propagate_header(root_id=root_id)
    mismatch = Host(module, root_id="another_root")
    assert not mismatch.configure(GOOD)
    assert mismatch.logs == [("error", f"{LOG_PREFIX}plugin root id does not match the module's root id {root_id}")]
    ok = Host(module, root_id=root_id)
    assert ok.configure(GOOD)
    assert verdict(ok, b'{"head_tag_name": "a b", "head_tag_value": "v"}') == PROBLEMS["bad_name"]
    assert verdict(ok, b"[1") == PROBLEMS["invalid_json"]


# -- property-based: arbitrary bytes, and mutated JSON ------------------------------------------

_HOSTS = {abi: Host(m) for abi, m in MODULES.items()}

_keys = st.sampled_from(["head_tag_name", "head_tag_value", "x", "", "head_tag_nam", "HEAD_TAG_NAME"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=8), st.sampled_from(["route-v", "Route-V", "a b", "", "x\n", "é", "\0"]))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(_keys, inner, max_size=4)), max_leaves=6)
_objects = st.dictionaries(_keys, _json, max_size=5)


@st.composite
def _json_text(draw: st.DrawFn) -> bytes:
    obj = draw(st.one_of(_objects, _json))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")])))
    raw = text.encode("utf-8", "surrogatepass")
    # a few byte-level mutations
    for _ in range(draw(st.integers(0, 2))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["drop", "insert", "replace"]))
        b = bytes([draw(st.integers(0, 255))])
        raw = raw[:i] + raw[i + 1:] if op == "drop" else raw[:i] + b + raw[i + (op == "replace"):]
    return raw


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64), st.sampled_from(sorted(MODULES)))
def test_arbitrary_bytes_never_trap_and_match_the_oracle(config: bytes, abi: str) -> None:
    assert verdict(_HOSTS[abi], config) == oracle(config)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_text(), st.sampled_from(sorted(MODULES)))
def test_json_like_configs_match_the_oracle(config: bytes, abi: str) -> None:
    h = _HOSTS[abi]
    expected = oracle(config)
    assert verdict(h, config) == expected
    if expected is None:
        cfg = parse_config(config)
        h.request([(cfg.name, "old"), (cfg.name, "older")])
        assert [(k, v) for k, v in h.headers if k == cfg.name] == [(cfg.name, cfg.value)]


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_builds_the_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.wasm"
    assert cli_main(["wasm", "build", "propagate-header", "-o", str(out)]) == 0
    assert out.read_bytes() == MODULES["0.2.1"]
    assert cli_main(["wasm", "build", "propagate-header", "-o", str(out), "--abi", "0.1.0"]) == 0
    assert out.read_bytes() == MODULES["0.1.0"]
    assert "bytes, proxy-wasm ABI 0.1.0" in capsys.readouterr().err
    assert cli_main(["wasm", "build", "propagate-header", "-o", str(out), "--no-clear-route-cache"]) == 0
    assert out.read_bytes() == build_propagate_header(clear_route_cache=False)
    wat = tmp_path / "p.wat"
    assert cli_main(["wasm", "build", "propagate-header", "-o", str(wat), "--wat"]) == 0
    assert wat.read_text().startswith("(module")


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["wasm", "build", "propagate-header"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o FILE.wasm" in err
    assert cli_main(["wasm", "build", "propagate-header", "-o", "/dev/null", "--root-id", "a\0b"]) == 2
    with pytest.raises(SystemExit) as exc:
        cli_main(["wasm", "build", "propagate-header", "-o", "x.wasm", "--abi", "9"])
    assert exc.value.code == 2


# -- the oracle itself (meshfilter.filters.propagate) ------------------------------------------


@pytest.mark.parametrize(("config", "problem"), [
    ('{"x": "\\ud800", "head_tag_name": "a", "head_tag_value": "v"}', "invalid_json"),
    ('{"x": "\\udc00", "x": "ok", "head_tag_name": "a", "head_tag_value": "v"}', "invalid_json"),
    ('{"\\ud800": 1, "head_tag_name": "a", "head_tag_value": "v"}', "invalid_json"),
    ('{"head_tag_name": 1, "head_tag_value": "\\ud800"}', "invalid_json"),
    ('{"x": [[["\\ud800"]]], "head_tag_name": "a", "head_tag_value": "v"}', "invalid_json"),
    ('{"x": ' + "1" * 5000 + ', "head_tag_name": "a", "head_tag_value": "v"}', None),
    ('{"head_tag_name": "A-b", "head_tag_value": "v", "head_tag_value": "w"}', None),
])
def test_oracle_edge_cases(config: str, problem: str | None) -> None:
    assert oracle(config.encode()) == (PROBLEMS[problem] if problem else None)
    if problem is None:
        assert parse_config(config).name == parse_config(config).name.lower()
