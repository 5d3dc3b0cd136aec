"""`meshfilter wasm build tag-rules`: header-tagging rules compiled to a proxy-wasm module."""

from __future__ import annotations

import argparse
import sys

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.cli._rules import add_rule_flags, ruleset_from_args
from meshfilter.errors import UsageError
from meshfilter.filters.tagging import LITERAL_MATCHERS


def register_build_kind(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "tag-rules", help="header-tagging rules (the same rules.yaml as 'meshfilter lua tag')",
        description="Compile ordered, first-match-wins header-tagging rules to a proxy-wasm module (no "
                    "configuration needed: the rules are compiled in). Lua-only matchers (lua-pattern) "
                    "are refused.")
    add_rule_flags(p, LITERAL_MATCHERS)
    add_output_flag(p, help="output .wasm file ('-' for stdout; required)")
    p.add_argument("--abi", choices=["0.2.1", "0.1.0"], default="0.2.1", help="proxy-wasm ABI (default 0.2.1)")
    p.add_argument("--no-clear-route-cache", action="store_true",
                   help="do not ask the host to re-select the route after tagging")
    p.add_argument("--wat", action="store_true", help="write the WebAssembly text instead of the binary")
    p.set_defaults(handler=cmd_build_tag_rules)


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
