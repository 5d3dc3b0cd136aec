"""Header tagging: the rule model and its pure-Python reference semantics.

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

``lua-pattern`` is evaluated by LuaJIT itself (via lupa, loaded on first use) even in the reference
semantics: a second, Python implementation of Lua patterns would be a second source of truth.
Backends other than Lua (Wasm) must refuse a rule set that uses it (:func:`require_portable`).

One concept per module; every public name is re-exported here:

======================  =====================================================================
``model``               ``Match``, ``Rule``, ``RuleSet`` and the one parser of them
                        (``make_rule``, ``make_ruleset``; ``validate_ruleset`` for hand-built ones)
``loader``              the rules file (``rules.yaml``): ``loads_rules``, ``load_rules``,
                        ``from_dict``, ``to_dict``
``semantics``           the reference semantics: ``evaluate``, ``select``, ``rule_matches``, ...
``luapattern``          Lua patterns as LuaJIT runs them
======================  =====================================================================

The command line's short form (``--header H --contains V --set k=v``) is parsed by
``meshfilter.cli._rules``; the differential test vectors are ``meshfilter.testing.tagging``.
"""

from __future__ import annotations

from meshfilter.filters.tagging.loader import from_dict, load_rules, loads_rules, parse_yaml, to_dict
from meshfilter.filters.tagging.model import (
    FORBIDDEN_VALUE_BYTES,
    HOP_BY_HOP,
    JOIN,
    LITERAL_MATCHERS,
    LUA_ONLY_MATCHERS,
    MATCHERS,
    PORTABLE_MATCHERS,
    PRESENCE_MATCHERS,
    SEED_HINT,
    UNMATCHABLE,
    UNSETTABLE,
    Header,
    Match,
    Rule,
    RuleSet,
    check_name,
    check_value,
    make_rule,
    make_ruleset,
    require_portable,
    rule_where,
    seed_ruleset,
    tagging_error,
    validate_ruleset,
)
from meshfilter.filters.tagging.semantics import apply_sets, evaluate, header_value, observe, rule_matches, select

__all__ = [
    "FORBIDDEN_VALUE_BYTES", "HOP_BY_HOP", "JOIN", "LITERAL_MATCHERS", "LUA_ONLY_MATCHERS", "MATCHERS",
    "PORTABLE_MATCHERS", "PRESENCE_MATCHERS", "SEED_HINT", "UNMATCHABLE", "UNSETTABLE",
    "Header", "Match", "Rule", "RuleSet",
    "check_name", "check_value", "make_rule", "make_ruleset", "require_portable", "rule_where", "seed_ruleset",
    "tagging_error", "validate_ruleset",
    "from_dict", "load_rules", "loads_rules", "parse_yaml", "to_dict",
    "apply_sets", "evaluate", "header_value", "observe", "rule_matches", "select",
]
