"""``meshfilter lua``: Lua filters for Envoy. ``lua tag`` compiles header-tagging rules.

    meshfilter lua tag --header user-agent --contains iPhone13 \\
        --set x-asm-prefer-tag=version-gray --else x-asm-prefer-tag=version-base
    meshfilter lua tag --rules rules.yaml [--lua-only] [-o FILE]
"""

from __future__ import annotations

import argparse

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.errors import UsageError
from meshfilter.filters.tagging import LITERAL_MATCHERS, RuleSet, from_short_form, load_rules
from meshfilter.k8s import lua_envoyfilter as lef
from meshfilter.k8s.validate import PATCH_CONTEXTS, check_labels
from meshfilter.lua.codegen import compile_rules

_VALUE_MATCHERS = (*LITERAL_MATCHERS, "lua-pattern")
_MATCHER_HELP = {
    "exact": "match when the header equals VALUE",
    "prefix": "match when the header starts with VALUE",
    "suffix": "match when the header ends with VALUE",
    "contains": "match when the header contains VALUE (plain text, not a pattern)",
    "lua-pattern": "match when string.find(header, PATTERN) succeeds (Lua backend only)",
}


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("lua", help="Lua filters for Envoy (header tagging)")
    lsub = group.add_subparsers(dest="lua_command", metavar="SUBCOMMAND", parser_class=type(group))
    p = lsub.add_parser(
        "tag", help="compile header-tagging rules to an Envoy Lua filter (EnvoyFilter or bare script)",
        description="Compile ordered, first-match-wins header-tagging rules to a LuaJIT-checked Envoy Lua "
                    "script, wrapped by default in an Istio EnvoyFilter for the ingress gateway.")
    src = p.add_argument_group("rules (either --rules FILE, or one rule in short form)")
    src.add_argument("--rules", metavar="FILE", help="rules.yaml (see docs/lua.md)")
    src.add_argument("--header", metavar="NAME", help="request header the rule looks at")
    matchers = src.add_mutually_exclusive_group()
    for kind in _VALUE_MATCHERS:
        matchers.add_argument(f"--{kind}", dest=f"m_{kind.replace('-', '_')}", metavar="VALUE",
                              help=_MATCHER_HELP[kind])
    matchers.add_argument("--present", action="store_true", help="match when the header is present")
    matchers.add_argument("--absent", action="store_true", help="match when the header is absent")
    src.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when the rule matches (repeatable)")
    src.add_argument("--else", dest="else_", action="append", default=[], metavar="NAME=VALUE",
                     help="header to replace when no rule matches (repeatable)")
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


def _ruleset(args: argparse.Namespace) -> RuleSet:
    kind, value = None, None
    for k in _VALUE_MATCHERS:
        v = getattr(args, f"m_{k.replace('-', '_')}")
        if v is not None:
            kind, value = k, v
    if args.present:
        kind = "present"
    if args.absent:
        kind = "absent"
    short = args.header is not None or kind is not None or args.set
    if args.rules:
        if short or args.else_:
            raise UsageError("--rules cannot be combined with --header/--set/--else or a matcher",
                             where="command line", hint="put every rule and the default into the rules file")
        return load_rules(args.rules)
    return from_short_form(header=args.header, kind=kind, value=value, sets=args.set, elses=args.else_)


def cmd_tag(args: argparse.Namespace) -> int:
    rs = _ruleset(args)
    script = compile_rules(rs)  # LuaJIT-checked before anything is written
    if args.lua_only:
        write_output(script, args.output)
        return 0
    from meshfilter.k8s.output import to_yaml

    selector = check_labels(args.selector, flag="--selector") if args.selector else None
    doc = lef.lua_envoy_filter(script, name=args.name, namespace=args.namespace, selector=selector,
                               context=args.context, istio_version=args.istio_version, priority=args.priority)
    write_output(to_yaml([doc]), args.output)
    return 0
