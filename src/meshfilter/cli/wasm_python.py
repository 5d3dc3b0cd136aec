"""`meshfilter wasm build python FILE.py[:Class]`: a filter written in Python, compiled to a proxy-wasm module."""

from __future__ import annotations

import argparse
import sys
import time

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.errors import UsageError


def register_build_kind(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "python", help="a filter class written in Python (meshfilter.sdk)",
        description="Check a filter written in Python (a meshfilter.sdk.HttpFilter subclass) and compile it to "
                    "a proxy-wasm module: no toolchain, a few KB. The plugin configuration is checked against the "
                    "class's Config when the plugin starts. See docs/sdk.md.")
    p.add_argument("source", metavar="FILE.py[:Class]", help="the filter's file, and its class if it has several")
    add_output_flag(p, help="output .wasm file ('-' for stdout; required)")
    p.add_argument("--abi", choices=["0.2.1", "0.1.0"], default="0.2.1",
                   help="proxy-wasm ABI (0.1.0 for Istio/ASM 1.7-1.8 era proxies; default 0.2.1)")
    p.add_argument("--wat", action="store_true", help="write the WebAssembly text instead of the binary")
    p.set_defaults(handler=cmd_build_python)


def cmd_build_python(args: argparse.Namespace) -> int:
    from meshfilter.sdk.checker import check_file, parse_target
    from meshfilter.wasm.codegen import assemble
    from meshfilter.wasm.python_filter import render_python_filter

    if not args.output:
        raise UsageError("no output file given", where="meshfilter wasm build python",
                         hint="add -o FILE.wasm (or -o - for stdout)")
    start = time.perf_counter()
    path, class_name = parse_target(args.source)
    program = check_file(path, class_name)
    wat = render_python_filter(program, abi=args.abi)
    if args.wat:
        write_output(wat, args.output)
        return 0
    module = assemble(wat)
    write_output(module, args.output)
    if args.output != "-":
        ms = (time.perf_counter() - start) * 1000
        exports = ", ".join(program.callbacks + (("configure",) if program.config is not None else ()))
        print(f"wrote {args.output} ({len(module)} bytes, proxy-wasm ABI {args.abi}, {program.class_name}: {exports}; "
              f"{ms:.0f} ms)", file=sys.stderr)
    return 0
