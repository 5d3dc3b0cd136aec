"""The tagging rule model: :class:`Match`, :class:`Rule`, :class:`RuleSet`, and the one parser of them.

A rule set is parsed once, at the edge: :func:`make_rule` checks one rule, :func:`make_ruleset`
checks what concerns the whole set (unique rule names, the default actions, not empty). Every loader
(the rules file, the CLI short form) goes through them, and what they return is marked as parsed, so
a backend handed a :class:`RuleSet` does not check it again: :func:`validate_ruleset` returns a
parsed rule set as it is and parses one built by hand from the dataclasses (same checks, same
messages).

Checks, each refused with one line naming the rule: header names that are not RFC 9110 tokens;
matching ``host`` (Envoy sees ``:authority``) or a connection-specific header; setting ``host``,
``content-length`` or a connection-specific header; values (set values and match literals)
containing CR, LF or NUL; set values with leading/trailing whitespace (HTTP would strip it); a rule
without actions; a rule setting the same header twice; an unknown matcher; a malformed Lua pattern.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from meshfilter.errors import ConfigError
from meshfilter.filters.propagate import TCHARS
from meshfilter.filters.tagging.luapattern import lua_pattern_error

LITERAL_MATCHERS = ("exact", "prefix", "suffix", "contains")
PRESENCE_MATCHERS = ("present", "absent")
PORTABLE_MATCHERS = LITERAL_MATCHERS + PRESENCE_MATCHERS
LUA_ONLY_MATCHERS = ("lua-pattern",)
MATCHERS = PORTABLE_MATCHERS + LUA_ONLY_MATCHERS
JOIN = ","  # separator between the values of a repeated header, as Envoy's headers:get() joins them
FORBIDDEN_VALUE_BYTES = frozenset(b"\r\n\x00")
SEED_HINT = "see docs/lua.md for the rules format"
# Connection-specific headers: HTTP/1 codecs consume them, so a filter never sees them as sent.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"})
# Headers a rule may not look at: Envoy turns Host into the :authority pseudo-header.
UNMATCHABLE = HOP_BY_HOP | {"host"}
# Headers a rule may not set: they would break request framing or duplicate :authority.
UNSETTABLE = HOP_BY_HOP | {"host", "content-length"}

Header = tuple[str, str]
Pairs = Sequence[tuple[object, object]] | Mapping[object, object]


@dataclass(frozen=True)
class Match:
    """Which request header a rule looks at, and how. ``value`` is None for present/absent."""

    header: str  # lower-cased
    kind: str
    value: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    match: Match
    set: tuple[Header, ...]  # (lower-cased name, value), applied in order
    # True only on what make_rule returned (not an init field: dataclasses.replace() clears it)
    _parsed: bool = field(default=False, init=False, repr=False, compare=False)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    default: tuple[Header, ...] = ()
    # True only on what make_ruleset returned (not an init field: dataclasses.replace() clears it)
    _parsed: bool = field(default=False, init=False, repr=False, compare=False)

    def set_names(self) -> tuple[str, ...]:
        """Every header name any rule or the default may set (lower-cased, first-seen order)."""
        seen: dict[str, None] = {}
        for rule in self.rules:
            for name, _ in rule.set:
                seen.setdefault(name, None)
        for name, _ in self.default:
            seen.setdefault(name, None)
        return tuple(seen)

    def matched_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for rule in self.rules:
            seen.setdefault(rule.match.header, None)
        return tuple(seen)

    def uses_lua_only(self) -> bool:
        return any(r.match.kind in LUA_ONLY_MATCHERS for r in self.rules)


_T = TypeVar("_T", Rule, RuleSet)


def _parsed(value: _T) -> _T:
    object.__setattr__(value, "_parsed", True)
    return value


# --------------------------------------------------------------------------- checks


def tagging_error(what: str, where: str, hint: str | None = None) -> ConfigError:
    """A tagging input error (exit 2); its hint defaults to the rules format's documentation."""
    return ConfigError(what, where=where, hint=hint or SEED_HINT)


_err = tagging_error


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def check_name(name: object, where: str, *, role: str = "header name") -> str:
    """A header name: a non-empty RFC 9110 token. Returns it lower-cased."""
    if not isinstance(name, str):
        raise _err(f"{role} must be a string, got {type(name).__name__}", where, "quote it in YAML")
    if not name:
        raise _err(f"{role} is empty", where, "give a header name such as x-asm-prefer-tag")
    raw = name.encode("utf-8", "surrogatepass")
    if any(b not in TCHARS for b in raw):
        raise _err(f"{role} {name!r} is not a valid HTTP header name (RFC 9110 token)", where,
                   "use letters, digits and !#$%&'*+-.^_`|~ only")
    return name.lower()


def check_value(value: object, where: str, *, role: str = "value", settable: bool = False) -> str:
    """A header value: no CR, LF or NUL; valid Unicode. Set values also may not start/end with whitespace."""
    if not isinstance(value, str):
        raise _err(f"{role} must be a string, got {type(value).__name__}", where,
                   'quote it in YAML, e.g. "1.0"')
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise _err(f"{role} is not valid Unicode (lone surrogate)", where) from None
    if any(b in FORBIDDEN_VALUE_BYTES for b in raw):
        raise _err(f"{role} {_short(value)} contains CR, LF or NUL, which cannot be in a header", where,
                   "remove the control characters")
    if settable and value != value.strip(" \t"):
        raise _err(f"{role} {_short(value)} has leading or trailing whitespace, which HTTP strips", where,
                   "remove the surrounding spaces")
    return value


def _check_match_name(name: object, where: str) -> str:
    hdr = check_name(name, where, role="match header name")
    if hdr == "host":
        raise _err("header 'host' cannot be matched: Envoy exposes it as the :authority pseudo-header", where,
                   "route on the host with a VirtualService instead")
    if hdr in UNMATCHABLE:
        raise _err(f"header {hdr!r} cannot be matched: it is connection-specific and consumed by the codec",
                   where, "match an application header instead")
    return hdr


def _short(value: str, limit: int = 40) -> str:
    text = value if len(value) <= limit else value[:limit] + "..."
    return repr(text)


def _check_sets(pairs: Sequence[tuple[object, object]], where: str) -> tuple[Header, ...]:
    out: list[Header] = []
    seen: set[str] = set()
    for raw_name, raw_value in pairs:
        name = check_name(raw_name, where, role="set header name")
        if name in UNSETTABLE:
            raise _err(f"header {name!r} cannot be set by a tagging rule", where,
                       "it controls the connection or request framing; set an application header instead")
        value = check_value(raw_value, where, role=f"value of {name}", settable=True)
        if name in seen:
            raise _err(f"header {name!r} is set twice", where, "set each header once per rule")
        seen.add(name)
        out.append((name, value))
    return tuple(out)


def rule_where(index: int, name: str | None) -> str:
    """How errors name a rule: ``rule 2 (iphone13)`` (1-based)."""
    return f"rule {index + 1} ({name})" if name and name != f"rule {index + 1}" else f"rule {index + 1}"


# --------------------------------------------------------------------------- the parser


def make_rule(index: int, *, header: object, kind: str, value: object = None, set: Pairs = (),
              name: str | None = None, source: str = "") -> Rule:
    """Parse one rule (``index`` is 0-based and only used for naming it in errors)."""
    where = _prefix(source) + rule_where(index, name)
    hdr = _check_match_name(header, where)
    if kind not in MATCHERS:
        raise _err(f"unknown matcher {kind!r}", where, f"use one of {', '.join(MATCHERS)}")
    lit: str | None = None
    if kind in PRESENCE_MATCHERS:
        if value not in (None, True):
            raise _err(f"{kind} takes no value (write '{kind}: true')", where)
    else:
        lit = check_value(value, where, role=f"{kind} value")
        if kind == "lua-pattern":
            if lit == "":
                raise _err("lua-pattern is empty", where, "give a Lua pattern such as ^Mozilla")
            problem = lua_pattern_error(lit)
            if problem:
                raise _err(f"lua-pattern {_short(lit)} is not a valid Lua pattern: {problem}", where,
                           "escape magic characters ^$()%.[]*+-? with %, or use contains")
    pairs = list(set.items()) if isinstance(set, Mapping) else list(set)
    if not pairs:
        raise _err("rule sets no header", where, "add set: {header: value}")
    sets = _check_sets(pairs, where)
    return _parsed(Rule(name=name or f"rule {index + 1}", match=Match(hdr, kind, lit), set=sets))


def make_ruleset(rules: Iterable[Rule], default: Pairs = (), *, source: str = "") -> RuleSet:
    """Parse a rule set from rules (each from :func:`make_rule`; others are parsed here) and the
    default actions."""
    prefix = _prefix(source)
    pairs = list(default.items()) if isinstance(default, Mapping) else list(default)
    checked_default = _check_sets(pairs, prefix + "default") if pairs else ()
    parsed = [r if r._parsed else _reparse(i, r, source) for i, r in enumerate(rules)]
    if not parsed and not checked_default:
        raise _err("the rule set is empty", (prefix or "rules ").rstrip(": ") or "rules",
                   "give at least one rule or a default")
    names: set[str] = set()
    for i, rule in enumerate(parsed):
        if rule.name in names:
            raise _err(f"rule name {rule.name!r} is used twice", prefix + rule_where(i, rule.name),
                       "give each rule its own name")
        names.add(rule.name)
    return _parsed(RuleSet(rules=tuple(parsed), default=checked_default))


def _reparse(index: int, rule: Rule, source: str) -> Rule:
    return make_rule(index, header=rule.match.header, kind=rule.match.kind, value=rule.match.value,
                     set=rule.set, name=rule.name, source=source)


def validate_ruleset(rs: RuleSet, *, source: str = "") -> RuleSet:
    """The parsed rule set: ``rs`` itself when a loader or :func:`make_ruleset` built it, else ``rs``
    (built by hand from the dataclasses) parsed now, with the same checks and messages."""
    return rs if rs._parsed else make_ruleset(rs.rules, rs.default, source=source)


def require_portable(rs: RuleSet, *, backend: str = "Wasm") -> None:
    """Refuse Lua-only matchers for a non-Lua backend, naming the first offending rule."""
    for i, rule in enumerate(rs.rules):
        if rule.match.kind in LUA_ONLY_MATCHERS:
            raise ConfigError(f"matcher {rule.match.kind!r} is only supported by the Lua backend, not {backend}",
                              where=rule_where(i, rule.name),
                              hint=f"use one of {', '.join(PORTABLE_MATCHERS)}, or build it with 'meshfilter lua tag'")


def seed_ruleset() -> RuleSet:
    """Seed section 2.4: user-agent containing iPhone13 -> version-gray, everything else -> version-base."""
    rule = make_rule(0, name="iphone13", header="user-agent", kind="contains", value="iPhone13",
                     set=[("x-asm-prefer-tag", "version-gray")])
    return make_ruleset([rule], [("x-asm-prefer-tag", "version-base")])
