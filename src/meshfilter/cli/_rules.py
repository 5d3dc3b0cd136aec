"""Header-tagging rule flags shared by `meshfilter lua tag` and `meshfilter wasm build tag-rules`:
either ``--rules FILE`` or one rule in short form (``--header H --contains V --set k=v --else k=v``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from meshfilter.errors import UsageError
from meshfilter.filters.tagging import RuleSet, from_short_form, load_rules

MATCHER_HELP = {
    "exact": "match when the header equals VALUE",
    "prefix": "match when the header starts with VALUE",
    "suffix": "match when the header ends with VALUE",
    "contains": "match when the header contains VALUE (plain text, not a pattern)",
    "lua-pattern": "match when string.find(header, PATTERN) succeeds (Lua backend only)",
}


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


def ruleset_from_args(args: argparse.Namespace) -> RuleSet:
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
                             where="command line", hint="put every rule and the default into the rules file")
        return load_rules(args.rules)
    return from_short_form(header=args.header, kind=kind, value=value, sets=args.set, elses=args.else_)
