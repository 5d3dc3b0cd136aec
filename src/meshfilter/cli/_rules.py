"""Header-tagging rule flags shared by `meshfilter lua tag` and `meshfilter wasm build tag-rules`:
either ``--rules FILE`` or one rule in short form (``--header H --contains V --set k=v --else k=v``).

The short form is command-line syntax, so it is parsed here (:func:`from_short_form`), into the
library's :class:`~meshfilter.filters.tagging.RuleSet` through the same parser as the rules file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from meshfilter.cli._common import parse_pairs
from meshfilter.errors import ConfigError, UsageError
from meshfilter.filters.tagging import Rule, RuleSet, load_rules, make_rule, make_ruleset

MATCHER_HELP = {
    "exact": "match when the header equals VALUE",
    "prefix": "match when the header starts with VALUE",
    "suffix": "match when the header ends with VALUE",
    "contains": "match when the header contains VALUE (plain text, not a pattern)",
    "lua-pattern": "match when string.find(header, PATTERN) succeeds (Lua backend only)",
}
SOURCE = "command line"


def _dest(kind: str) -> str:
    return f"m_{kind.replace('-', '_')}"


def add_rule_flags(p: argparse.ArgumentParser, value_matchers: Sequence[str]) -> None:
    """Add the rule flags; ``value_matchers`` are the matchers taking a VALUE this backend supports."""
    src = p.add_argument_group("rules (either --rules FILE, or one rule in short form)")
    src.add_argument("--rules", metavar="FILE", help="rules.yaml (see docs/lua.md)")
    src.add_argument("--header", metavar="NAME", help="request header the rule looks at")
    matchers = src.add_mutually_exclusive_group()
    for kind in value_matchers:
        matchers.add_argument(f"--{kind}", dest=_dest(kind), metavar="VALUE", help=MATCHER_HELP[kind])
    matchers.add_argument("--present", action="store_true", help="match when the header is present")
    matchers.add_argument("--absent", action="store_true", help="match when the header is absent")
    src.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when the rule matches (repeatable)")
    src.add_argument("--else", dest="else_", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when no rule matches (repeatable)")
    p.set_defaults(_value_matchers=tuple(value_matchers))


def _pairs(values: Sequence[str], flag: str) -> list[tuple[str, str]]:
    return parse_pairs(values, flag=flag, hint=f"write {flag} x-asm-prefer-tag=version-gray", error=ConfigError)


def from_short_form(*, header: str | None, kind: str | None, value: str | None,
                    sets: Sequence[str], elses: Sequence[str] = ()) -> RuleSet:
    """The short form: one rule (``--header H --contains V --set k=v ...``) and ``--else k=v ...``."""
    rules: list[Rule] = []
    if header is not None or kind is not None or sets:
        if header is None:
            raise ConfigError("--header is missing", where=SOURCE, hint="add --header user-agent")
        if kind is None:
            raise ConfigError("no matcher given", where=SOURCE,
                              hint="add one of --exact, --prefix, --suffix, --contains, --present, --absent, "
                                   "--lua-pattern")
        if not sets:
            raise ConfigError("--set is missing", where=SOURCE, hint="add --set x-asm-prefer-tag=version-gray")
        rules.append(make_rule(0, header=header, kind=kind, value=value, set=_pairs(sets, "--set"), source=SOURCE))
    else_pairs = _pairs(elses, "--else")
    if not rules and not else_pairs:
        raise ConfigError("no rule given", where=SOURCE,
                          hint="give --header/--contains/--set (and --else), or --rules rules.yaml")
    return make_ruleset(rules, else_pairs, source=SOURCE)


def ruleset_from_args(args: argparse.Namespace) -> RuleSet:
    """The rule set the flags give: parsed once here, then passed to the backend as it is."""
    kind, value = None, None
    for k in args._value_matchers:
        v = getattr(args, _dest(k))
        if v is not None:
            kind, value = k, v
    if args.present:
        kind = "present"
    if args.absent:
        kind = "absent"
    if args.rules:
        if args.header is not None or kind is not None or args.set or args.else_:
            raise UsageError("--rules cannot be combined with --header/--set/--else or a matcher",
                             where=SOURCE, hint="put every rule and the default into the rules file")
        return load_rules(args.rules)
    return from_short_form(header=args.header, kind=kind, value=value, sets=args.set, elses=args.else_)
