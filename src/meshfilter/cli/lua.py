"""``meshfilter lua``: Lua filters for Envoy. ``lua tag`` compiles header-tagging rules; ``lua build``
compiles a filter written in Python (``meshfilter.cli.lua_build``).

    meshfilter lua tag --header user-agent --contains iPhone13 \\
        --set x-asm-prefer-tag=version-gray --else x-asm-prefer-tag=version-base
    meshfilter lua tag --rules rules.yaml [--lua-only] [-o FILE]
    meshfilter lua build filter.py --config "$(cat config.json)" [--envoyfilter] [-o FILE]
"""

from __future__ import annotations

import argparse
from typing import Any

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
    add_envoyfilter_flags(out, default_name=lef.DEFAULT_NAME)
    add_output_flag(out)
    p.set_defaults(handler=cmd_tag)
    from meshfilter.cli.lua_build import register_build

    register_build(lsub)


def add_envoyfilter_flags(group: Any, *, default_name: str | None) -> None:
    """The EnvoyFilter flags of `lua tag` and `lua build` (``default_name`` None: the filter's own name)."""
    group.add_argument("--name", default=default_name,
                       help=f"EnvoyFilter name (default {default_name or 'the filter class in kebab-case'})")
    group.add_argument("--namespace", default=lef.DEFAULT_NAMESPACE,
                       help=f"EnvoyFilter namespace (default {lef.DEFAULT_NAMESPACE})")
    group.add_argument("--selector", action="append", metavar="KEY=VALUE",
                       help="workloadSelector label (repeatable; default istio=ingressgateway)")
    group.add_argument("--context", default=lef.DEFAULT_CONTEXT,
                       help=f"patch context: {', '.join(PATCH_CONTEXTS)} (default {lef.DEFAULT_CONTEXT})")
    group.add_argument("--istio-version", metavar="X.Y[.Z]", help="only proxies of this Istio version (proxyVersion)")
    group.add_argument("--priority", type=int, help="EnvoyFilter priority (int32)")


def envoyfilter_from_args(script: str, args: argparse.Namespace, *, default_name: str = lef.DEFAULT_NAME) -> Any:
    selector = check_labels(args.selector, field="selector") if args.selector else None
    return lef.lua_envoy_filter(script, name=args.name or default_name, namespace=args.namespace, selector=selector,
                                context=args.context, istio_version=args.istio_version, priority=args.priority)


def cmd_tag(args: argparse.Namespace) -> int:
    rs = ruleset_from_args(args)
    script = compile_rules(rs)  # LuaJIT-checked before anything is written
    if args.lua_only:
        write_output(script, args.output)
        return 0
    from meshfilter.k8s.output import to_yaml

    write_output(to_yaml([envoyfilter_from_args(script, args)]), args.output)
    return 0
