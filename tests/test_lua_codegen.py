"""Lua codegen for tagging rules: shape, escaping of hostile values, LuaJIT compile check naming the rule,
and in-process LuaJIT runs (fake request_handle) equal to the Python reference (vectors + hypothesis)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshfilter.errors import LuaError
from meshfilter.filters import tagging as t
from meshfilter.lua import check
from meshfilter.lua.codegen import LuaScript, check_script, compile_rules, generate, lua_string
from meshfilter.lua.inprocess import run_request
from meshfilter.testing.tagging import Vector, load_vectors

VECTORS = Path(__file__).parent / "data" / "tagging_vectors.yaml"
TABLE = load_vectors(VECTORS)
SCRIPTS = {name: compile_rules(rs) for name, rs in TABLE.rulesets.items()}


RT = check.runtime()


def test_luajit_flavour_in_process() -> None:
    assert check.implementation().startswith("LuaJIT 2.1")


def test_seed_script_is_nil_safe_replaces_and_finds_plainly() -> None:
    src = compile_rules(t.seed_ruleset())
    assert 'v = h:get("user-agent")' in src
    assert 'if v ~= nil and find(v, "iPhone13", 1, true) ~= nil then' in src
    assert 'h:replace("x-asm-prefer-tag", "version-gray")' in src
    assert 'h:replace("x-asm-prefer-tag", "version-base")' in src
    assert ":add(" not in src and "string.match" not in src
    # no user agent: no Lua error, default applies
    run = run_request(src, [])
    assert run.headers == [("x-asm-prefer-tag", "version-base")] and run.logs == []


def test_header_names_are_lower_cased() -> None:
    rs = t.loads_rules("rules: [{header: User-Agent, exact: A, set: {X-Tag: B}}]\ndefault: {X-Other: C}")
    src = generate(rs).source
    assert 'h:get("user-agent")' in src and 'h:replace("x-tag", "B")' in src and '"x-other"' in src
    assert "User-Agent" not in src and "X-Tag" not in src


HOSTILE = [
    '"', "\\", '\\"', "]]", "[[", "]=]", "--", "--[[", '"; os.exit(1) --', "\\0", "%", "%s%d", "\t", "\x7f",
    "\x01\x1f", "é", "😀", "中文", "'", "\\ddd", "\\065", "a\\", "\u2028", "\ufeff",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_lua_string_cannot_be_broken_out_of(value: str) -> None:
    lit = lua_string(value)
    # only printable ASCII, one pair of quotes, nothing but decimal escapes after a backslash
    assert re.fullmatch(r'"([\x20-\x21\x23-\x5b\x5d-\x7e]|\\[0-9]{3})*"', lit), lit
    assert RT.execute(f"return {lit}") == value


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_lua_string_round_trips_any_text(value: str) -> None:
    assert RT.execute(f"return {lua_string(value)}") == value


def test_hostile_values_in_rules_compile_and_match_literally() -> None:
    rs = t.make_ruleset([t.make_rule(i, header="x-q", kind="contains", value=v, set=[("x-tag", f"v{i}{v}".strip())])
                         for i, v in enumerate(x for x in HOSTILE if x.strip())], [("x-tag", "none")])
    src = compile_rules(rs)
    for v in (x for x in HOSTILE if x.strip()):
        headers = [("x-q", f"<{v}>")]
        got = run_request(src, headers).headers
        assert t.observe(got, ["x-tag"]) == t.observe(t.evaluate(rs, headers), ["x-tag"]), v


def test_comments_cannot_be_escaped_by_rule_names() -> None:
    rs = t.make_ruleset([t.make_rule(0, name="evil\nos.exit(1)\n-- ]]", header="ua", kind="present",
                                     set=[("x", "1")])])
    src = compile_rules(rs)
    assert "\nos.exit(1)" not in src
    assert all(not line.startswith("os.exit") for line in src.splitlines())


def test_every_vector_ruleset_compiles_with_both_luajit_paths() -> None:
    for src in SCRIPTS.values():
        assert check.compile_errors(src, via="lupa") is None
        assert check.compile_errors(src, via="luajit") is None


@pytest.mark.parametrize("via", ["lupa", "luajit"])
def test_compile_failure_names_the_rule(via: str) -> None:
    rs = t.loads_rules("rules: [{name: first, header: a, present: true, set: {x: '1'}}, "
                       "{name: gray, header: user-agent, contains: iPhone13, set: {x: '2'}}]\ndefault: {x: '3'}")
    script = generate(rs)
    lines = script.source.splitlines()
    idx = next(i for i, line in enumerate(lines) if "iPhone13" in line)
    lines[idx] = lines[idx].replace(" then", "")  # a broken line inside rule 2's block
    broken = LuaScript(source="\n".join(lines) + "\n", owners=script.owners)
    with pytest.raises(LuaError) as info:
        check.compile_check(broken.source, line_owner=broken.owner, via=via)
    line = info.value.line()
    assert "rule 2 (gray)" in line and "LuaJIT cannot compile" in line and "\n" not in line
    with pytest.raises(LuaError, match=r"rule 2 \(gray\)"):
        check_script(broken)


def test_owner_of_default_and_scaffolding() -> None:
    script = generate(t.seed_ruleset())
    lines = script.source.splitlines()
    assert script.owner(lines.index('  h:replace("x-asm-prefer-tag", "version-base")') + 1) == "default action"
    assert script.owner(1) == "generated scaffolding"
    assert script.owner(10_000) == "generated scaffolding"


@pytest.mark.parametrize("vector", TABLE.vectors, ids=lambda v: v.id)
def test_inprocess_lua_equals_reference_on_shared_vectors(vector: Vector) -> None:
    rs = TABLE.rulesets[vector.ruleset]
    run = run_request(SCRIPTS[vector.ruleset], list(vector.headers))
    assert t.observe(run.headers, rs.set_names()) == vector.expect
    assert t.observe(run.headers, rs.set_names()) == t.observe(t.evaluate(rs, list(vector.headers)),
                                                                rs.set_names())
    assert run.logs == []


def test_lua_pattern_runtime_error_is_no_match() -> None:
    # a pattern whose error only shows while matching (back-reference to an open capture)
    rs = t.make_ruleset([t.make_rule(0, header="ua", kind="lua-pattern", value="(a%1)", set=[("x", "hit")])],
                        [("x", "miss")])
    src = compile_rules(rs)
    assert t.observe(run_request(src, [("ua", "aa")]).headers, ["x"]) == {"x": ["miss"]}
    assert t.evaluate(rs, [("ua", "aa")])[-1] == ("x", "miss")


# --------------------------------------------------------------------------- hypothesis: Lua == reference

_NAMES = st.sampled_from(["user-agent", "x-a", "x-b", "X-A", "X-Tag", "x-tag"])
_VAL_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
_VALUES = st.one_of(st.sampled_from(["", "a", "b", "ab", "a,b", ",", "%", ".*", "iPhone13", "é"]),
                    st.text(alphabet=_VAL_CHARS, max_size=12))
_SET_VALUES = _VALUES.map(lambda s: s.strip(" \t"))


@st.composite
def rulesets(draw: st.DrawFn) -> t.RuleSet:
    rules = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(t.PORTABLE_MATCHERS))
        value = None if kind in t.PRESENCE_MATCHERS else draw(_VALUES)
        sets = draw(st.dictionaries(st.sampled_from(["x-tag", "x-a", "x-other"]), _SET_VALUES, min_size=1,
                                    max_size=2))
        rules.append(t.make_rule(i, header=draw(_NAMES), kind=kind, value=value, set=sets))
    default = draw(st.dictionaries(st.sampled_from(["x-tag", "x-b"]), _SET_VALUES, max_size=2))
    if not rules and not default:
        default = {"x-tag": "d"}
    return t.make_ruleset(rules, default)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(st.tuples(_NAMES, _VALUES), max_size=6))
def test_hypothesis_inprocess_lua_equals_reference(rs: t.RuleSet, headers: list[tuple[str, str]]) -> None:
    src = compile_rules(rs)
    got = run_request(src, headers).headers
    names = sorted({*rs.set_names(), *(k.lower() for k, _ in headers)})
    assert t.observe(got, names) == t.observe(t.evaluate(rs, headers), names)
