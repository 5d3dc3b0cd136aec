"""`meshfilter lua build FILE.py[:Class] --config JSON`: a filter written in Python, compiled to Envoy Lua."""

from __future__ import annotations

import argparse

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.cli._lua_envoyfilter import add_envoyfilter_flags, envoyfilter_from_args


def register_build(lsub: argparse._SubParsersAction) -> None:
    p = lsub.add_parser(
        "build", help="compile a filter class written in Python (meshfilter.sdk) to an Envoy Lua script",
        description="Check a filter written in Python (a meshfilter.sdk.HttpFilter subclass) and compile it, with "
                    "its configuration compiled in (Lua filters have none), to a LuaJIT-checked Envoy Lua script, "
                    "or with --envoyfilter to an Istio EnvoyFilter. See docs/sdk.md.")
    p.add_argument("source", metavar="FILE.py[:Class]", help="the filter's file, and its class if it has several")
    p.add_argument("--config", default="", help="the filter's configuration, a JSON object (checked now)")
    p.add_argument("--envoyfilter", action="store_true",
                   help="write an Istio EnvoyFilter running the script (default: the bare script)")
    add_envoyfilter_flags(p.add_argument_group("EnvoyFilter (with --envoyfilter)"), default_name=None)
    add_output_flag(p)
    p.set_defaults(handler=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    from meshfilter.lua.python_filter import compile_program
    from meshfilter.sdk.checker import check_file, parse_target

    path, class_name = parse_target(args.source)
    program = check_file(path, class_name)
    script = compile_program(program, args.config)
    if not args.envoyfilter:
        write_output(script, args.output)
        return 0
    from meshfilter.k8s.output import to_yaml

    doc = envoyfilter_from_args(script, args, default_name=program.log_name)
    write_output(to_yaml([doc]), args.output)
    return 0
