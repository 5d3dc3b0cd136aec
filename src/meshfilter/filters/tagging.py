"""Header tagging: the rule model and its pure-Python reference semantics (no I/O).

A :class:`RuleSet` is an ordered list of :class:`Rule` plus a default action. On every request:

1. Rules are tried in order; the **first** rule whose matcher matches wins, and only its actions apply.
2. If no rule matches, the default actions apply (there may be none: then nothing changes).
3. An action ``(name, value)`` **replaces** the header ``name``: every existing value of it (any name
   case) is removed, then exactly one ``name: value`` is added. Actions apply in their order.

How a rule sees a header (this is exactly what Envoy's Lua ``headers:get(name)`` returns, and what the
Wasm backend rebuilds from ``proxy_get_header_map_pairs``):

* Header names are compared case-insensitively (ASCII); rules store names lower-cased.
* If the request has no header of that name, the header is **absent** (Lua ``nil``).
* Otherwise its value is the **values of every header line of that name, in request order, joined with
  ","** (no space): ``["a", "b"]`` is seen as ``"a,b"``; a single empty value is seen as ``""``
  (present, empty). Envoy itself may coalesce repeated lines of some well-known headers (e.g.
  ``user-agent``) into one line before any filter runs; the joined string is the same either way,
  except that Envoy's coalescing drops empty duplicates of those headers.
* Values are compared as UTF-8 byte strings, case-sensitively.

Matchers (``kind``) on the seen value ``v`` with literal ``lit``:

=============  ================================================================================
exact          ``v == lit``                                     (absent never matches)
prefix         ``v.startswith(lit)``                            (absent never matches)
suffix         ``v.endswith(lit)``                              (absent never matches)
contains       ``lit in v`` -- a plain substring test, never a pattern (absent never matches)
present        the header exists (even with an empty value)
absent         the header does not exist
lua-pattern    ``string.find(v, lit)`` in LuaJIT (Lua backend only; absent never matches)
=============  ================================================================================

``lua-pattern`` is evaluated by LuaJIT itself (via lupa) even in the reference semantics: a second,
Python implementation of Lua patterns would be a second source of truth. Backends other than Lua
(Wasm) must refuse a rule set that uses it (:func:`require_portable`).

Validation (:func:`validate_ruleset`, run by every loader) refuses, with one line naming the rule:
header names that are not RFC 9110 tokens; matching ``host`` (Envoy sees ``:authority``) or a
connection-specific header; setting ``host``, ``content-length`` or a connection-specific header;
values (set values and match literals) containing CR, LF or NUL; set values with leading/trailing
whitespace (HTTP would strip it); a rule without actions; a rule setting the same header twice; an
unknown matcher.

The rules file (``rules.yaml``)::

    rules:                         # ordered, first match wins
      - name: iphone13             # optional; defaults to "rule N" (1-based)
        header: user-agent         # the request header to look at
        contains: iPhone13         # exactly one of: exact, prefix, suffix, contains, lua-pattern
                                   # (string), present: true, absent: true
        set:                       # one or more headers to replace
          x-asm-prefer-tag: version-gray
    default:                       # optional: headers to replace when no rule matches
      x-asm-prefer-tag: version-base

All values must be YAML strings (quote ``"1.0"``, ``"true"``); unknown keys and duplicate keys are errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshfilter.errors import ConfigError
from meshfilter.filters.propagate import TCHARS

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


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    default: tuple[Header, ...] = ()

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


# --------------------------------------------------------------------------- validation


def _err(what: str, where: str, hint: str | None = None) -> ConfigError:
    return ConfigError(what, where=where, hint=hint or SEED_HINT)


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


def make_rule(index: int, *, header: object, kind: str, value: object = None,
              set: Sequence[tuple[object, object]] | Mapping[object, object] = (),
              name: str | None = None, source: str = "") -> Rule:
    """Build one validated rule (``index`` is 0-based and only used for naming)."""
    where = (f"{source}: " if source else "") + rule_where(index, name)
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
            from meshfilter.lua.check import lua_pattern_error

            problem = lua_pattern_error(lit)
            if problem:
                raise _err(f"lua-pattern {_short(lit)} is not a valid Lua pattern: {problem}", where,
                           "escape magic characters ^$()%.[]*+-? with %, or use contains")
    pairs = list(set.items()) if isinstance(set, Mapping) else list(set)
    if not pairs:
        raise _err("rule sets no header", where, "add set: {header: value}")
    sets = _check_sets(pairs, where)
    return Rule(name=name or f"rule {index + 1}", match=Match(hdr, kind, lit), set=sets)


def make_ruleset(rules: Iterable[Rule], default: Sequence[tuple[object, object]] | Mapping[object, object] = (),
                 *, source: str = "") -> RuleSet:
    pairs = list(default.items()) if isinstance(default, Mapping) else list(default)
    where = (f"{source}: " if source else "") + "default"
    rs = RuleSet(rules=tuple(rules), default=_check_sets(pairs, where) if pairs else ())
    validate_ruleset(rs, source=source)
    return rs


def validate_ruleset(rs: RuleSet, *, source: str = "") -> RuleSet:
    """Re-check a rule set built by hand (the loaders already call this)."""
    prefix = f"{source}: " if source else ""
    if not rs.rules and not rs.default:
        raise _err("the rule set is empty", (prefix or "rules ").rstrip(": ") or "rules",
                   "give at least one rule or a default")
    names: set[str] = set()
    for i, rule in enumerate(rs.rules):
        where = prefix + rule_where(i, rule.name)
        if rule.name in names:
            raise _err(f"rule name {rule.name!r} is used twice", where, "give each rule its own name")
        names.add(rule.name)
        _check_match_name(rule.match.header, where)
        if rule.match.kind not in MATCHERS:
            raise _err(f"unknown matcher {rule.match.kind!r}", where)
        if rule.match.kind in PRESENCE_MATCHERS:
            if rule.match.value is not None:
                raise _err(f"{rule.match.kind} takes no value", where)
        else:
            check_value(rule.match.value, where, role=f"{rule.match.kind} value")
        if not rule.set:
            raise _err("rule sets no header", where)
        _check_sets(list(rule.set), where)
    if rs.default:
        _check_sets(list(rs.default), prefix + "default")
    return rs


def require_portable(rs: RuleSet, *, backend: str = "Wasm") -> None:
    """Refuse Lua-only matchers for a non-Lua backend, naming the first offending rule."""
    for i, rule in enumerate(rs.rules):
        if rule.match.kind in LUA_ONLY_MATCHERS:
            raise ConfigError(f"matcher {rule.match.kind!r} is only supported by the Lua backend, not {backend}",
                              where=rule_where(i, rule.name),
                              hint=f"use one of {', '.join(PORTABLE_MATCHERS)}, or build it with 'meshfilter lua tag'")


# --------------------------------------------------------------------------- loading

_RULE_KEYS = frozenset({"name", "header", "set", *MATCHERS})


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML would silently keep the last)."""


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return dict(loader.construct_mapping(node, deep=deep))


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def loads_rules(text: str, *, source: str = "rules.yaml") -> RuleSet:
    """Parse and validate the YAML rules format (see the module docstring)."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{at}: {problem}", where=source, hint=SEED_HINT) from None
    return from_dict(doc, source=source)


def load_rules(path: str | Path) -> RuleSet:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("rules file not found", where=str(p), hint="check the path given to --rules") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read rules file: {exc.__class__.__name__}", where=str(p)) from None
    return loads_rules(text, source=str(p))


def from_dict(doc: object, *, source: str = "rules") -> RuleSet:
    """Build a validated rule set from the parsed YAML/JSON document."""
    if not isinstance(doc, dict):
        raise _err("the rules document must be a mapping with 'rules' (and optional 'default')", source)
    unknown = set(doc) - {"rules", "default"}
    if unknown:
        raise _err(f"unknown key {sorted(map(str, unknown))[0]!r}", source, "top-level keys are rules and default")
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        raise _err("'rules' must be a list", source)
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: " + rule_where(i, name if isinstance(name, str) else None)
        if not isinstance(raw, dict):
            raise _err("a rule must be a mapping", where)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise _err("rule name must be a non-empty string", where)
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise _err(f"unknown key {sorted(map(str, unknown))[0]!r}", where,
                       "rule keys are name, header, set and one matcher: " + ", ".join(MATCHERS))
        kinds = [k for k in MATCHERS if k in raw]
        if len(kinds) != 1:
            raise _err("a rule needs exactly one matcher" if not kinds else
                       f"a rule needs exactly one matcher, got {', '.join(kinds)}", where,
                       "use one of " + ", ".join(MATCHERS))
        if "header" not in raw:
            raise _err("rule has no 'header'", where, "add header: user-agent")
        sets = raw.get("set")
        if not isinstance(sets, dict) or not sets:
            raise _err("'set' must be a non-empty mapping of header: value", where)
        value = raw[kinds[0]]
        if kinds[0] in PRESENCE_MATCHERS and value is not True:
            raise _err(f"write '{kinds[0]}: true'", where)
        rules.append(make_rule(i, header=raw["header"], kind=kinds[0], value=value, set=sets, name=name,
                               source=source))
    default = doc.get("default") or {}
    if not isinstance(default, dict):
        raise _err("'default' must be a mapping of header: value", f"{source}: default")
    return make_ruleset(rules, default, source=source)


def to_dict(rs: RuleSet) -> dict[str, Any]:
    """The YAML-ready document for a rule set (inverse of :func:`from_dict`)."""
    rules = []
    for rule in rs.rules:
        d: dict[str, Any] = {"name": rule.name, "header": rule.match.header}
        d[rule.match.kind] = True if rule.match.value is None else rule.match.value
        d["set"] = dict(rule.set)
        rules.append(d)
    out: dict[str, Any] = {"rules": rules}
    if rs.default:
        out["default"] = dict(rs.default)
    return out


def _split_kv(raw: str, flag: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise ConfigError(f"{flag} {raw!r} is not name=value", where=flag,
                          hint=f"write {flag} x-asm-prefer-tag=version-gray")
    return key, value


def from_short_form(*, header: str | None, kind: str | None, value: str | None,
                    sets: Sequence[str], elses: Sequence[str] = ()) -> RuleSet:
    """The CLI short form: one rule (``--header H --contains V --set k=v ...``) and ``--else k=v ...``."""
    rules: list[Rule] = []
    if header is not None or kind is not None or sets:
        if header is None:
            raise ConfigError("--header is missing", where="command line", hint="add --header user-agent")
        if kind is None:
            raise ConfigError("no matcher given", where="command line",
                              hint="add one of --exact, --prefix, --suffix, --contains, --present, --absent, "
                                   "--lua-pattern")
        if not sets:
            raise ConfigError("--set is missing", where="command line",
                              hint="add --set x-asm-prefer-tag=version-gray")
        pairs = [_split_kv(s, "--set") for s in sets]
        rules.append(make_rule(0, header=header, kind=kind, value=value, set=pairs, source="command line"))
    else_pairs = [_split_kv(s, "--else") for s in elses]
    if not rules and not else_pairs:
        raise ConfigError("no rule given", where="command line",
                          hint="give --header/--contains/--set (and --else), or --rules rules.yaml")
    return make_ruleset(rules, else_pairs, source="command line")


def seed_ruleset() -> RuleSet:
    """Seed section 2.4: user-agent containing iPhone13 -> version-gray, everything else -> version-base."""
    rule = make_rule(0, name="iphone13", header="user-agent", kind="contains", value="iPhone13",
                     set=[("x-asm-prefer-tag", "version-gray")])
    return make_ruleset([rule], [("x-asm-prefer-tag", "version-base")])


# --------------------------------------------------------------------------- reference semantics


def header_value(headers: Iterable[Header], name: str) -> str | None:
    """What a rule sees for ``name``: None if absent, else every value in order joined with ","."""
    lname = name.lower()
    values = [v for k, v in headers if k.lower() == lname]
    return JOIN.join(values) if values else None


def _lua_find(subject: str, pattern: str) -> bool:
    from meshfilter.lua.check import lua_pattern_find  # LuaJIT itself: the only source of truth

    return lua_pattern_find(subject, pattern)


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
        return _lua_find(seen, lit)
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


# --------------------------------------------------------------------------- shared test vectors


@dataclass(frozen=True)
class Vector:
    """One differential test request: run ``headers`` through rule set ``ruleset``.

    ``expect`` (from the table, written by hand) maps every header the rule set may set to the values
    it must carry afterwards; ``lua_only`` vectors use a Lua-only rule set (no Wasm columns).
    """

    id: str
    ruleset: str
    headers: tuple[Header, ...]
    expect: dict[str, list[str]] = field(default_factory=dict)
    lua_only: bool = False


@dataclass(frozen=True)
class VectorTable:
    rulesets: dict[str, RuleSet]
    vectors: tuple[Vector, ...]


def _expand(value: str) -> str:
    """Vector-table shorthand: ``{{A*8000}}`` expands to 8000 'A's (keeps long values readable)."""
    import re

    return re.sub(r"\{\{(.)\*(\d+)\}\}", lambda m: m.group(1) * int(m.group(2)), value)


def load_vectors(path: str | Path) -> VectorTable:
    """Load the shared differential vector table (tests/data/tagging_vectors.yaml)."""
    doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    rulesets = {name: from_dict(body, source=f"{path}: ruleset {name}") for name, body in doc["rulesets"].items()}
    vectors = []
    ids: set[str] = set()
    for raw in doc["vectors"]:
        vid = raw["id"]
        if vid in ids:
            raise ValueError(f"duplicate vector id {vid}")
        ids.add(vid)
        rs_name = raw["ruleset"]
        headers = tuple((str(k), _expand(str(v))) for k, v in (raw.get("headers") or []))
        expect = {str(k).lower(): [_expand(str(x)) for x in v] for k, v in (raw.get("expect") or {}).items()}
        vectors.append(Vector(id=vid, ruleset=rs_name, headers=headers, expect=expect,
                              lua_only=rulesets[rs_name].uses_lua_only()))
    return VectorTable(rulesets=rulesets, vectors=tuple(vectors))
