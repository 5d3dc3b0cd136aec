"""The tagging rule model: loading, validation (one line naming the rule), reference semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshfilter.cli._rules import from_short_form
from meshfilter.errors import ConfigError
from meshfilter.filters import tagging as t
from meshfilter.testing.tagging import load_vectors

VECTORS = Path(__file__).parent / "data" / "tagging_vectors.yaml"

SEED_YAML = """
rules:
  - name: iphone13
    header: User-Agent
    contains: iPhone13
    set:
      x-asm-prefer-tag: version-gray
default:
  x-asm-prefer-tag: version-base
"""


def test_seed_yaml_equals_seed_ruleset() -> None:
    assert t.loads_rules(SEED_YAML) == t.seed_ruleset()


def test_short_form_equals_yaml_apart_from_name() -> None:
    rs = from_short_form(header="user-agent", kind="contains", value="iPhone13",
                         sets=["x-asm-prefer-tag=version-gray"], elses=["x-asm-prefer-tag=version-base"])
    assert rs.rules[0].match == t.seed_ruleset().rules[0].match
    assert rs.default == t.seed_ruleset().default
    assert rs.rules[0].name == "rule 1"


def test_to_dict_round_trips() -> None:
    table = load_vectors(VECTORS)
    for rs in table.rulesets.values():
        assert t.from_dict(t.to_dict(rs)) == rs


@pytest.mark.parametrize(("headers", "expected"), [
    ([], None),
    ([("user-agent", "")], ""),
    ([("User-Agent", "a"), ("USER-AGENT", "b")], "a,b"),
    ([("x", "1"), ("user-agent", "a"), ("x", "2")], "a"),
    ([("user-agent", ""), ("user-agent", "")], ","),
])
def test_header_value_joins_like_envoy_get(headers: list[tuple[str, str]], expected: str | None) -> None:
    assert t.header_value(headers, "user-agent") == expected


def test_seed_semantics() -> None:
    rs = t.seed_ruleset()
    assert t.evaluate(rs, [("user-agent", "x iPhone13 y")]) == [("user-agent", "x iPhone13 y"),
                                                                 ("x-asm-prefer-tag", "version-gray")]
    assert t.evaluate(rs, []) == [("x-asm-prefer-tag", "version-base")]
    # client-sent values (any case, several) are replaced by exactly one
    out = t.evaluate(rs, [("X-Asm-Prefer-Tag", "a"), ("x-asm-prefer-tag", "b")])
    assert out == [("x-asm-prefer-tag", "version-base")]


def test_first_match_wins_and_select_names_the_rule() -> None:
    rs = t.loads_rules("""
rules:
  - {name: a, header: x, present: true, set: {t: a}}
  - {name: b, header: x, exact: "1", set: {t: b}}
""")
    rule, actions = t.select(rs, [("x", "1")])
    assert rule is not None and rule.name == "a" and actions == (("t", "a"),)
    rule, actions = t.select(rs, [])
    assert rule is None and actions == ()
    assert t.evaluate(rs, [("t", "client")]) == [("t", "client")]  # no default: untouched


@pytest.mark.parametrize(("kind", "lit", "value", "hit"), [
    ("exact", "", "", True), ("exact", "", "a", False),
    ("prefix", "", "", True), ("prefix", "ab", "abc", True), ("prefix", "bc", "abc", False),
    ("suffix", "", "x", True), ("suffix", "bc", "abc", True), ("suffix", "abcd", "bcd", False),
    ("contains", ".*", "a.*b", True), ("contains", ".*", "ab", False),
    ("contains", "é", "café", True), ("exact", "A", "a", False),
])
def test_literal_matchers(kind: str, lit: str, value: str, hit: bool) -> None:
    m = t.Match("h", kind, lit)
    assert t.rule_matches(m, [("h", value)]) is hit
    assert t.rule_matches(m, []) is False  # absent never matches a literal matcher


def test_presence_matchers() -> None:
    assert t.rule_matches(t.Match("h", "present"), [("H", "")])
    assert not t.rule_matches(t.Match("h", "present"), [])
    assert t.rule_matches(t.Match("h", "absent"), [("other", "1")])
    assert not t.rule_matches(t.Match("h", "absent"), [("h", "")])


def test_lua_pattern_reference_uses_luajit() -> None:
    m = t.Match("ua", "lua-pattern", "^Mozilla/%d+")
    assert t.rule_matches(m, [("ua", "Mozilla/5.0")])
    assert not t.rule_matches(m, [("ua", "xMozilla/5")])
    assert not t.rule_matches(m, [])


BAD = [
    ("rules: [{header: 'user agent', contains: a, set: {x: v}}]",
     "rules.yaml: rule 1: match header name 'user agent' is not a valid HTTP header name"),
    ("rules: [{name: gray, header: ua, contains: a, set: {'x:y': v}}]",
     "rules.yaml: rule 1 (gray): set header name 'x:y' is not a valid HTTP header name"),
    ("rules: [{name: gray, header: ua, contains: a, set: {x: \"a\\rb\"}}]",
     "rules.yaml: rule 1 (gray): value of x 'a\\rb' contains CR, LF or NUL"),
    ("rules: [{header: ua, contains: \"a\\0\", set: {x: v}}]",
     "rules.yaml: rule 1: contains value 'a\\x00' contains CR, LF or NUL"),
    ("rules: [{header: ua, contains: a, set: {x: ' v'}}]", "leading or trailing whitespace"),
    ("rules: [{header: ua, contains: a, set: {x: 1}}]", "value of x must be a string, got int"),
    ("rules: [{header: ua, set: {x: v}}]", "rule 1: a rule needs exactly one matcher"),
    ("rules: [{header: ua, exact: a, prefix: b, set: {x: v}}]", "got exact, prefix"),
    ("rules: [{header: ua, contains: a}]", "'set' must be a non-empty mapping"),
    ("rules: [{header: ua, contains: a, set: {x: v, X: w}}]", "header 'x' is set twice"),
    ("rules: [{header: ua, contains: a, set: {x: v}, colour: red}]", "unknown key 'colour'"),
    ("rules: [{header: ua, present: yes please, set: {x: v}}]", "write 'present: true'"),
    ("rules: [{header: ua, lua-pattern: '[a', set: {x: v}}]", "is not a valid Lua pattern: malformed pattern"),
    ("rules: [{header: ua, lua-pattern: '%', set: {x: v}}]", "ends with '%'"),
    ("rules: [{name: a, header: ua, present: true, set: {x: v}}, {name: a, header: ub, present: true, set: {x: v}}]",
     "rule 2 (a): rule name 'a' is used twice"),
    ("rules: []", "the rule set is empty"),
    ("default: {x: \"a\\nb\"}", "rules.yaml: default: value of x"),
    ("rules: {a: 1}", "'rules' must be a list"),
    ("nope: 1", "unknown key 'nope'"),
    ("rules: [{header: ua, contains: a, set: {x: v, x: w}}]", "duplicate key 'x'"),
    ("[", "not valid YAML"),
    ("rules: [{header: Host, exact: a, set: {x: v}}]", "header 'host' cannot be matched"),
    ("rules: [{header: connection, present: true, set: {x: v}}]", "'connection' cannot be matched"),
    ("rules: [{header: ua, present: true, set: {content-length: '0'}}]", "'content-length' cannot be set"),
    ("default: {Host: evil.example}", "rules.yaml: default: header 'host' cannot be set"),
    ("rules: [{header: ua, present: true, set: {transfer-encoding: chunked}}]", "cannot be set"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_bad_rules_are_one_clear_line(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        t.loads_rules(text)
    line = info.value.line()
    assert "\n" not in line
    assert fragment in line
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"header": None, "kind": "contains", "value": "a", "sets": ["x=1"]}, "--header is missing"),
    ({"header": "ua", "kind": None, "value": None, "sets": ["x=1"]}, "no matcher given"),
    ({"header": "ua", "kind": "contains", "value": "a", "sets": []}, "--set is missing"),
    ({"header": "ua", "kind": "contains", "value": "a", "sets": ["novalue"]}, "is not name=value"),
    ({"header": None, "kind": None, "value": None, "sets": []}, "no rule given"),
])
def test_short_form_errors(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        from_short_form(**kwargs)  # type: ignore[arg-type]


def test_else_only_short_form() -> None:
    rs = from_short_form(header=None, kind=None, value=None, sets=[], elses=["x-tag=all"])
    assert rs.rules == () and t.evaluate(rs, [("x-tag", "c")]) == [("x-tag", "all")]


def test_require_portable_names_the_rule() -> None:
    rs = t.loads_rules("rules: [{header: ua, contains: a, set: {x: v}}, "
                       "{name: pat, header: ua, lua-pattern: '^a', set: {x: w}}]")
    with pytest.raises(ConfigError, match=r"rule 2 \(pat\): matcher 'lua-pattern' is only supported by the Lua"):
        t.require_portable(rs)
    t.require_portable(t.seed_ruleset())


def test_load_rules_file(tmp_path: Path) -> None:
    p = tmp_path / "rules.yaml"
    p.write_text(SEED_YAML)
    assert t.load_rules(p) == t.seed_ruleset()
    with pytest.raises(ConfigError, match="rules file not found"):
        t.load_rules(tmp_path / "missing.yaml")


def test_vector_table_shape_and_reference_agrees_with_hand_written_expectations() -> None:
    table = load_vectors(VECTORS)
    assert len(table.vectors) >= 40
    portable = [v for v in table.vectors if not v.lua_only]
    assert len(portable) >= 40
    ids = {v.id for v in table.vectors}
    for needed in ("seed-no-header", "seed-empty-ua", "multi-joined", "seed-name-upper", "seed-unicode-ua",
                   "seed-long-ua-match-at-end", "seed-client-sent-tag-twice"):
        assert needed in ids
    assert any(len(val) >= 8000 for v in table.vectors for _, val in v.headers)
    for v in table.vectors:
        rs = table.rulesets[v.ruleset]
        assert set(v.expect) == set(rs.set_names()), v.id
        assert t.observe(t.evaluate(rs, list(v.headers)), rs.set_names()) == v.expect, v.id


# -- parsed once ---------------------------------------------------------------------------------


def _count_rule_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every run of the match-header check (one per rule parsed)."""
    from meshfilter.filters.tagging import model

    calls: list[str] = []
    real = model._check_match_name

    def counting(name: object, where: str) -> str:
        calls.append(where)
        return real(name, where)

    monkeypatch.setattr(model, "_check_match_name", counting)
    return calls


def test_a_rules_file_is_checked_once_and_backends_do_not_check_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from meshfilter.lua.codegen import compile_rules
    from meshfilter.wasm.tag_rules import render_tag_rules

    calls = _count_rule_checks(monkeypatch)
    rs = t.loads_rules(SEED_YAML)
    assert calls == ["rules.yaml: rule 1 (iphone13)"]
    assert t.validate_ruleset(rs) is rs
    compile_rules(rs)
    render_tag_rules(rs)
    assert len(calls) == 1


def test_the_short_form_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_rule_checks(monkeypatch)
    from_short_form(header="user-agent", kind="contains", value="iPhone13", sets=["x=1"], elses=["x=0"])
    assert calls == ["command line: rule 1"]


def test_a_rule_set_built_by_hand_is_parsed_before_a_backend_uses_it() -> None:
    import dataclasses

    from meshfilter.lua.codegen import compile_rules

    hand = t.RuleSet(rules=(t.Rule("a", t.Match("User-Agent", "contains", "x"), (("X-Tag", "1"),)),))
    parsed = t.validate_ruleset(hand)
    assert parsed is not hand and parsed.rules[0].match.header == "user-agent"
    assert parsed.rules[0].set == (("x-tag", "1"),)
    assert t.validate_ruleset(parsed) is parsed
    bad = t.RuleSet(rules=(t.Rule("a", t.Match("ua", "contains", "x"), (("x", "a\r\nb"),)),))
    with pytest.raises(ConfigError, match=r"^rule 1 \(a\): value of x 'a\\r\\nb' contains CR, LF or NUL"):
        compile_rules(bad)
    # a copy changed with dataclasses.replace is no longer marked parsed
    changed = dataclasses.replace(t.seed_ruleset(), default=(("host", "evil"),))
    with pytest.raises(ConfigError, match="header 'host' cannot be set"):
        compile_rules(changed)
    # make_ruleset parses rules that did not come from make_rule
    with pytest.raises(ConfigError, match=r"rule 1 \(a\): match header name 'bad name'"):
        t.make_ruleset([t.Rule("a", t.Match("bad name", "present"), (("x", "1"),))])


def test_load_rules_names_the_field_and_the_cli_spells_the_flag(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from meshfilter.cli import main

    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        t.load_rules(missing)
    assert info.value.line() == f"{missing}: rules file not found (hint: check the path given to `rules`)"
    assert main(["lua", "tag", "--rules", str(missing)]) == 2
    assert capsys.readouterr().err == (f"meshfilter: error: {missing}: rules file not found "
                                       "(hint: check the path given to --rules)\n")
