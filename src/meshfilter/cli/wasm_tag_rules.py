"""`meshfilter wasm build tag-rules`: header-tagging rules compiled to a proxy-wasm module."""

from __future__ import annotations

import argparse
import sys

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.errors import UsageError
from meshfilter.filters.tagging import LITERAL_MATCHERS, RuleSet, from_short_form, load_rules


def register_build_kind(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "tag-rules", help="header-tagging rules (the same rules.yaml as 'meshfilter lua tag')",
        description="Compile ordered, first-match-wins header-tagging rules to a proxy-wasm module (no "
                    "configuration needed: the rules are compiled in). Lua-only matchers (lua-pattern) "
                    "are refused.")
    src = p.add_argument_group("rules (either --rules FILE, or one rule in short form)")
    src.add_argument("--rules", metavar="FILE", help="rules.yaml (see docs/lua.md)")
    src.add_argument("--header", metavar="NAME", help="request header the rule looks at")
    matchers = src.add_mutually_exclusive_group()
    for kind in LITERAL_MATCHERS:
        matchers.add_argument(f"--{kind}", dest=f"m_{kind}", metavar="VALUE",
                              help=f"match when the header's value is {kind} VALUE" if kind != "exact"
                              else "match when the header's value equals VALUE")
    matchers.add_argument("--present", action="store_true", help="match when the header is present")
    matchers.add_argument("--absent", action="store_true", help="match when the header is absent")
    src.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when the rule matches (repeatable)")
    src.add_argument("--else", dest="else_", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when no rule matches (repeatable)")
    add_output_flag(p, help="output .wasm file ('-' for stdout; required)")
    p.add_argument("--abi", choices=["0.2.1", "0.1.0"], default="0.2.1", help="proxy-wasm ABI (default 0.2.1)")
    p.add_argument("--no-clear-route-cache", action="store_true",
                   help="do not ask the host to re-select the route after tagging")
    p.add_argument("--wat", action="store_true", help="write the WebAssembly text instead of the binary")
    p.set_defaults(handler=cmd_build_tag_rules)


def ruleset_from_args(args: argparse.Namespace) -> RuleSet:
    kind, value = None, None
    for k in LITERAL_MATCHERS:
        v = getattr(args, f"m_{k}")
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


def cmd_build_tag_rules(args: argparse.Namespace) -> int:
    from meshfilter.wasm.tag_rules import build_tag_rules, render_tag_rules

    if not args.output:
        raise UsageError("no output file given", where="meshfilter wasm build tag-rules",
                         hint="add -o FILE.wasm (or -o - for stdout)")
    rs = ruleset_from_args(args)
    clear = not args.no_clear_route_cache
    if args.wat:
        write_output(render_tag_rules(rs, abi=args.abi, clear_route_cache=clear), args.output)
        return 0
    module = build_tag_rules(rs, abi=args.abi, clear_route_cache=clear)
    write_output(module, args.output)
    if args.output != "-":
        print(f"wrote {args.output} ({len(module)} bytes, proxy-wasm ABI {args.abi}, {len(rs.rules)} rule(s)"
              f"{', default' if rs.default else ''})", file=sys.stderr)
    return 0
