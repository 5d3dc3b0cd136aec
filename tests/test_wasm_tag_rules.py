"""Tag rules compiled to Wasm: the emulator must agree with the reference semantics (tagging.evaluate)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.cli import main
from meshfilter.errors import ConfigError
from meshfilter.filters import tagging as t
from meshfilter.testing.tagging import Vector, load_vectors
from meshfilter.wasm import build_tag_rules
from meshfilter.wasm.emulator import HostEmulator, detect_abi
from meshfilter.wasm.tag_rules import render_tag_rules

VECTORS = Path(__file__).parent / "data" / "tagging_vectors.yaml"
TABLE = load_vectors(VECTORS)
PORTABLE = sorted(name for name, rs in TABLE.rulesets.items() if not rs.uses_lua_only())


@cache
def emulator_for(name: str, abi: str = "0.2.1") -> HostEmulator:
    return HostEmulator(build_tag_rules(TABLE.rulesets[name], abi=abi))


def run(emu: HostEmulator, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    result = emu.run_request(headers)
    assert [r for r in result.logs if r.level in ("error", "critical")] == []
    return result.request_headers


def lower(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k.lower(), v) for k, v in headers]


@pytest.mark.parametrize("vector", [v for v in TABLE.vectors if not v.lua_only], ids=lambda v: v.id)
def test_shared_vectors_match_expectation_and_reference(vector: Vector) -> None:
    rs = TABLE.rulesets[vector.ruleset]
    got = run(emulator_for(vector.ruleset), list(vector.headers))
    assert t.observe(got, rs.set_names()) == vector.expect
    # the whole header list, not only the tagged names, equals the reference (names lower-cased, as Envoy)
    assert got == lower(t.evaluate(rs, list(vector.headers)))


def test_vector_table_covers_enough_portable_vectors() -> None:
    assert len([v for v in TABLE.vectors if not v.lua_only]) >= 40


@pytest.mark.parametrize("name", PORTABLE)
def test_abi_010_build_agrees(name: str) -> None:
    emu = emulator_for(name, "0.1.0")
    assert emu.abi_version == "0.1.0"
    for v in (v for v in TABLE.vectors if v.ruleset == name):
        assert run(emu, list(v.headers)) == lower(t.evaluate(TABLE.rulesets[name], list(v.headers)))


# -- hypothesis: random requests on the table's rule sets, and random rule sets -----------------------------

NAMES = ["user-agent", "x-tag", "X-Canary", "x-debug", "x-client-id", "x-version", "x-other"]
VALUES = st.text(alphabet=st.sampled_from(list("ab,iPhone13-Mozilla/ é")), max_size=12).map(str.strip)
HEADERS = st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(PORTABLE), headers=HEADERS)
def test_random_requests_agree_with_reference(name: str, headers: list[tuple[str, str]]) -> None:
    rs = TABLE.rulesets[name]
    assert run(emulator_for(name), headers) == lower(t.evaluate(rs, headers))


LITERALS = st.text(alphabet=st.sampled_from(list("ab,é1")), max_size=3)


@st.composite
def rulesets(draw: st.DrawFn) -> t.RuleSet:
    rules = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(t.PORTABLE_MATCHERS))
        value = None if kind in t.PRESENCE_MATCHERS else draw(LITERALS)
        header = draw(st.sampled_from(["a", "b", "B"]))
        sets = draw(st.dictionaries(st.sampled_from(["a", "x", "y"]), st.sampled_from(["1", "2", "é"]),
                                    min_size=1, max_size=2))
        rules.append(t.make_rule(i, header=header, kind=kind, value=value, set=sets))
    default = draw(st.dictionaries(st.sampled_from(["a", "x"]), st.sampled_from(["d", ""]), max_size=2))
    if not rules and not default:
        default = {"x": "d"}
    return t.make_ruleset(rules, default)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rs=rulesets(), requests=st.lists(st.lists(st.tuples(st.sampled_from(["a", "A", "b", "c"]), LITERALS),
                                                 max_size=5), min_size=1, max_size=12))
def test_random_rulesets_agree_with_reference(rs: t.RuleSet, requests: list[list[tuple[str, str]]]) -> None:
    emu = HostEmulator(build_tag_rules(rs))
    for headers in requests:
        assert run(emu, headers) == lower(t.evaluate(rs, headers))


# -- the module itself ---------------------------------------------------------------------------------


def test_seed_module_is_small_exports_little_and_clears_route_cache() -> None:
    import wasmtime

    module = build_tag_rules(t.seed_ruleset())
    assert len(module) < 2048
    assert detect_abi(module) == "0.2.1"
    exports = sorted(e.name for e in wasmtime.Module(wasmtime.Engine(), module).exports)
    assert exports == ["memory", "proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "proxy_on_request_headers"]
    res = HostEmulator(module).run_request([("user-agent", "Mozilla iPhone13"), ("x-asm-prefer-tag", "mine")])
    assert res.request_header_values("x-asm-prefer-tag") == ["version-gray"]
    assert [c.name for c in res.foreign_calls] == ["clear_route_cache"]


def test_no_route_cache_clear_when_asked_or_when_nothing_changes() -> None:
    rs = t.make_ruleset([t.make_rule(0, header="a", kind="present", set={"x": "1"})])
    res = HostEmulator(build_tag_rules(rs, clear_route_cache=False)).run_request([("a", "")])
    assert res.request_header("x") == "1" and res.route_cache_clears == 0
    res = HostEmulator(build_tag_rules(rs)).run_request([("b", "")])  # no match, no default
    assert res.request_headers == [("b", "")] and res.route_cache_clears == 0


def test_memory_stays_bounded_with_joined_values() -> None:
    emu = HostEmulator(build_tag_rules(TABLE.rulesets[PORTABLE[0]]))
    headers = [("user-agent", "x" * 3000), ("user-agent", "y" * 3000), ("x-canary", "z" * 3000),
               ("x-canary", "")]
    for _ in range(50):
        emu.run_request(headers)
    size = emu.memory_size()
    for _ in range(500):
        emu.run_request(headers)
    assert emu.memory_size() == size


def test_lua_only_matcher_is_refused_naming_the_rule() -> None:
    lua_only = next(rs for rs in TABLE.rulesets.values() if rs.uses_lua_only())
    rule = next(i for i, r in enumerate(lua_only.rules) if r.match.kind == "lua-pattern")
    with pytest.raises(ConfigError, match=rf"rule {rule + 1}\b.*only supported by the Lua backend"):
        build_tag_rules(lua_only)


def test_rule_names_cannot_break_out_of_wat_comments() -> None:
    rule = t.make_rule(0, name="x\n(unreachable) é", header="a", kind="present", set={"x": "1"})
    wat = render_tag_rules(t.make_ruleset([rule]))
    assert "\n(unreachable)" not in wat
    assert HostEmulator(build_tag_rules(t.make_ruleset([rule]))).run_request([("a", "v")]).request_header("x") == "1"


# -- CLI -------------------------------------------------------------------------------------------------


def test_cli_build_from_rules_file_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: iphone13\n    header: user-agent\n    contains: iPhone13\n"
        "    set: {x-asm-prefer-tag: version-gray}\ndefault: {x-asm-prefer-tag: version-base}\n")
    out = tmp_path / "tag.wasm"
    assert main(["wasm", "build", "tag-rules", "--rules", str(rules), "-o", str(out)]) == 0
    assert out.read_bytes() == build_tag_rules(t.seed_ruleset())
    short = tmp_path / "short.wasm"
    assert main(["wasm", "build", "tag-rules", "--header", "user-agent", "--contains", "iPhone13",
                 "--set", "x-asm-prefer-tag=version-gray", "--else", "x-asm-prefer-tag=version-base",
                 "-o", str(short)]) == 0
    assert short.read_bytes() == out.read_bytes()
    capsys.readouterr()
    assert main(["wasm", "run", str(out), "--header", "user-agent=curl",
                 "--header", "x-asm-prefer-tag=mine"]) == 0
    assert "  x-asm-prefer-tag: version-base\n" in capsys.readouterr().out


def test_cli_refuses_lua_pattern_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: moz\n    header: user-agent\n    lua-pattern: '^Moz'\n"
                     "    set: {x-tag: moz}\n")
    out = tmp_path / "x.wasm"
    assert main(["wasm", "build", "tag-rules", "--rules", str(rules), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rule 1 (moz)" in err and "lua-pattern" in err
    assert not out.exists()


def test_cli_needs_output_and_one_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wasm", "build", "tag-rules", "--header", "a", "--present", "--set", "x=1"]) == 2
    assert "no output file given" in capsys.readouterr().err
    assert main(["wasm", "build", "tag-rules", "--rules", "r.yaml", "--header", "a", "-o", "-"]) == 2
    assert "--rules cannot be combined" in capsys.readouterr().err
