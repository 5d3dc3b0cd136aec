"""``meshfilter lua``: Lua filters for Envoy. ``lua tag`` compiles header-tagging rules; ``lua build``
compiles a filter written in Python (``meshfilter.cli.lua_build``).

    meshfilter lua tag --header user-agent --contains iPhone13 \\
        --set x-asm-prefer-tag=version-gray --else x-asm-prefer-tag=version-base
    meshfilter lua tag --rules rules.yaml [--lua-only] [-o FILE]
    meshfilter lua build filter.py --config "$(cat config.json)" [--envoyfilter] [-o FILE]
"""

from __future__ import annotations

import argparse

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.cli._lua_envoyfilter import add_envoyfilter_flags, envoyfilter_from_args
from meshfilter.cli._rules import add_rule_flags, ruleset_from_args
from meshfilter.filters.tagging import LITERAL_MATCHERS
from meshfilter.k8s import lua_envoyfilter as lef
from meshfilter.lua.codegen import compile_rules


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("lua", help="Lua filters for Envoy (header tagging)")
    lsub = group.add_subparsers(dest="lua_command", metavar="SUBCOMMAND", parser_class=type(group))
    p = lsub.add_parser(
        "tag", help="compile header-tagging rules to an Envoy Lua filter (EnvoyFilter or bare script)",
        description="Compile ordered, first-match-wins header-tagging rules to a LuaJIT-checked Envoy Lua "
                    "script, wrapped by default in an Istio EnvoyFilter for the ingress gateway.")
    add_rule_flags(p, (*LITERAL_MATCHERS, "lua-pattern"))
    out = p.add_argument_group("output")
    out.add_argument("--lua-only", action="store_true", help="print the bare Lua script, not an EnvoyFilter")
    add_envoyfilter_flags(out, default_name=lef.DEFAULT_NAME)
    add_output_flag(out)
    p.set_defaults(handler=cmd_tag)
    from meshfilter.cli.lua_build import register_build

    register_build(lsub)


def cmd_tag(args: argparse.Namespace) -> int:
    rs = ruleset_from_args(args)
    script = compile_rules(rs)  # LuaJIT-checked before anything is written
    if args.lua_only:
        write_output(script, args.output)
        return 0
    from meshfilter.k8s.output import to_yaml

    write_output(to_yaml([envoyfilter_from_args(script, args)]), args.output)
    return 0
