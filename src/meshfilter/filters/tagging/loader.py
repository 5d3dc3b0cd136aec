"""The rules file (``rules.yaml``): YAML in, a parsed :class:`~meshfilter.filters.tagging.model.RuleSet` out.

The format::

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
This module checks the document's shape; :func:`~meshfilter.filters.tagging.model.make_rule` and
:func:`~meshfilter.filters.tagging.model.make_ruleset` check the rules themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meshfilter.errors import ConfigError
from meshfilter.filters.tagging.model import (
    MATCHERS,
    PRESENCE_MATCHERS,
    SEED_HINT,
    Rule,
    RuleSet,
    make_rule,
    make_ruleset,
    rule_where,
)
from meshfilter.filters.tagging.model import tagging_error as _err

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


def parse_yaml(text: str, *, source: str) -> Any:
    """Safe-load YAML, refusing duplicate keys; bad YAML is one ConfigError line naming ``source``."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML{at}: {problem}", where=source, hint=SEED_HINT) from None


def loads_rules(text: str, *, source: str = "rules.yaml") -> RuleSet:
    """Parse the YAML rules format (see the module docstring)."""
    return from_dict(parse_yaml(text, source=source), source=source)


def load_rules(path: str | Path) -> RuleSet:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("rules file not found", where=str(p), hint="check the path given to `rules`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read rules file: {exc.__class__.__name__}", where=str(p)) from None
    return loads_rules(text, source=str(p))


def from_dict(doc: object, *, source: str = "rules") -> RuleSet:
    """Parse a rule set from the YAML/JSON document."""
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
