"""The reference semantics of a tagging :class:`~meshfilter.filters.tagging.model.RuleSet` (pure Python).

The oracle every backend (Lua, Wasm; in-process and in Envoy) is compared with; see the package
docstring for the rules it implements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from meshfilter.filters.tagging.luapattern import lua_pattern_find
from meshfilter.filters.tagging.model import JOIN, Header, Match, Rule, RuleSet


def header_value(headers: Iterable[Header], name: str) -> str | None:
    """What a rule sees for ``name``: None if absent, else every value in order joined with ","."""
    lname = name.lower()
    values = [v for k, v in headers if k.lower() == lname]
    return JOIN.join(values) if values else None


def rule_matches(match: Match, headers: Iterable[Header]) -> bool:
    seen = header_value(headers, match.header)
    kind, lit = match.kind, match.value
    if kind == "present":
        return seen is not None
    if kind == "absent":
        return seen is None
    if seen is None or lit is None:
        return False
    a, b = seen.encode("utf-8", "surrogatepass"), lit.encode("utf-8")
    if kind == "exact":
        return a == b
    if kind == "prefix":
        return a.startswith(b)
    if kind == "suffix":
        return a.endswith(b)
    if kind == "contains":
        return b in a
    if kind == "lua-pattern":
        return lua_pattern_find(seen, lit)  # LuaJIT itself: the only source of truth
    raise ValueError(f"unknown matcher {kind!r}")


def select(rs: RuleSet, headers: Sequence[Header]) -> tuple[Rule | None, tuple[Header, ...]]:
    """The winning rule (None when the default applies) and the actions to apply."""
    for rule in rs.rules:
        if rule_matches(rule.match, headers):
            return rule, rule.set
    return None, rs.default


def apply_sets(headers: Iterable[Header], actions: Iterable[Header]) -> list[Header]:
    out = list(headers)
    for name, value in actions:
        lname = name.lower()
        out = [(k, v) for k, v in out if k.lower() != lname]
        out.append((lname, value))
    return out


def evaluate(rs: RuleSet, headers: Sequence[Header]) -> list[Header]:
    """Reference semantics: the request headers after the tagging filter ran."""
    _, actions = select(rs, headers)
    return apply_sets(headers, actions)


def observe(headers: Iterable[Header], names: Iterable[str]) -> dict[str, list[str]]:
    """The comparable projection used by the differential tests: for each name, its values in order."""
    hs = list(headers)
    return {n.lower(): [v for k, v in hs if k.lower() == n.lower()] for n in names}
