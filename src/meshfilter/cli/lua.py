"""``meshfilter lua``: Lua filters for Envoy. ``lua tag`` compiles header-tagging rules.

    meshfilter lua tag --header user-agent --contains iPhone13 \\
        --set x-asm-prefer-tag=version-gray --else x-asm-prefer-tag=version-base
    meshfilter lua tag --rules rules.yaml [--lua-only] [-o FILE]
"""

from __future__ import annotations

import argparse

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.cli._rules import add_rule_flags, ruleset_from_args
from meshfilter.cli.deploy_checks import check_labels
from meshfilter.filters.tagging import LITERAL_MATCHERS
from meshfilter.k8s import lua_envoyfilter as lef
from meshfilter.k8s.checks import PATCH_CONTEXTS
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
    out.add_argument("--name", default=lef.DEFAULT_NAME, help=f"EnvoyFilter name (default {lef.DEFAULT_NAME})")
    out.add_argument("--namespace", default=lef.DEFAULT_NAMESPACE,
                     help=f"EnvoyFilter namespace (default {lef.DEFAULT_NAMESPACE})")
    out.add_argument("--selector", action="append", metavar="KEY=VALUE",
                     help="workloadSelector label (repeatable; default istio=ingressgateway)")
    out.add_argument("--context", default=lef.DEFAULT_CONTEXT,
                     help=f"patch context: {', '.join(PATCH_CONTEXTS)} (default {lef.DEFAULT_CONTEXT})")
    out.add_argument("--istio-version", metavar="X.Y[.Z]", help="only proxies of this Istio version (proxyVersion)")
    out.add_argument("--priority", type=int, help="EnvoyFilter priority (int32)")
    add_output_flag(out)
    p.set_defaults(handler=cmd_tag)


def cmd_tag(args: argparse.Namespace) -> int:
    rs = ruleset_from_args(args)
    script = compile_rules(rs)  # LuaJIT-checked before anything is written
    if args.lua_only:
        write_output(script, args.output)
        return 0
    from meshfilter.k8s.output import to_yaml

    selector = check_labels(args.selector, field="selector") if args.selector else None
    doc = lef.lua_envoy_filter(script, name=args.name, namespace=args.namespace, selector=selector,
                               context=args.context, istio_version=args.istio_version, priority=args.priority)
    write_output(to_yaml([doc]), args.output)
    return 0
