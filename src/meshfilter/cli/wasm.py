"""`meshfilter wasm build KIND ...` and `meshfilter wasm run ...`.

Layout, so that several engineers can add commands without editing the same lines:

* ``wasm build KIND``: every kind of module is one entry of :data:`BUILD_KINDS`, a function
  ``(kind_subparsers) -> None`` that adds the ``KIND`` parser and sets its handler. Kinds living in
  other modules are listed in :data:`BUILD_KIND_MODULES` (``meshfilter.cli.<module>`` exposing
  ``register_build_kind(kind_subparsers)``), e.g. ``tag-rules`` in ``meshfilter.cli.wasm_tag_rules``.
* ``wasm run``: defined by ``meshfilter.cli.wasm_run`` (``register_run(wasm_subparsers)``), imported
  when it exists.

Handlers parse flags, call the library (``meshfilter.wasm``), write outputs atomically.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from meshfilter.cli._common import add_output_flag, write_output
from meshfilter.errors import UsageError

BuildKind = Callable[[argparse._SubParsersAction], None]


def _register_propagate(kinds: argparse._SubParsersAction) -> None:
    from meshfilter.filters.propagate import ROOT_ID

    p = kinds.add_parser("propagate-header",
                         help="the filter that sets one request header and re-selects the route",
                         description="Build the propagate-header proxy-wasm module. Its plugin "
                                     "configuration is JSON: "
                                     '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}')
    add_output_flag(p, help="output .wasm file ('-' for stdout; required)")
    p.add_argument("--abi", choices=["0.2.1", "0.1.0"], default="0.2.1",
                   help="proxy-wasm ABI (0.1.0 for Istio/ASM 1.7-1.8 era proxies; default 0.2.1)")
    p.add_argument("--root-id", default=ROOT_ID,
                   help=f"the root id the plugin must be configured with (default {ROOT_ID}; '' accepts any)")
    p.add_argument("--no-clear-route-cache", dest="clear_route_cache", action="store_false",
                   help="do not ask the proxy to re-select the route after the replace (Envoy 1.40 does it "
                        "on any request-header change anyway; saves one host call per request)")
    p.add_argument("--wat", action="store_true", help="write the WebAssembly text instead of the binary")
    p.set_defaults(handler=cmd_build_propagate)


# kind name -> registration function (in this module)
BUILD_KINDS: dict[str, BuildKind] = {"propagate-header": _register_propagate}
# kinds registered by other modules: kind name -> module under meshfilter.cli with register_build_kind()
BUILD_KIND_MODULES: dict[str, str] = {"tag-rules": "wasm_tag_rules", "python": "wasm_python"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("wasm", help="build and run proxy-wasm modules")
    wsub = p.add_subparsers(dest="wasm_cmd", metavar="SUBCOMMAND")
    _register_build(wsub)
    _register_run(wsub)


def _register_build(wsub: argparse._SubParsersAction) -> None:
    b = wsub.add_parser("build", help="generate a proxy-wasm module (no toolchain needed)")
    kinds = b.add_subparsers(dest="kind", metavar="KIND")
    for register_kind in BUILD_KINDS.values():
        register_kind(kinds)
    for module in BUILD_KIND_MODULES.values():
        mod = _optional_module(module)
        if mod is not None:
            mod.register_build_kind(kinds)


def _register_run(wsub: argparse._SubParsersAction) -> None:
    mod = _optional_module("wasm_run")
    if mod is not None:
        mod.register_run(wsub)


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(f"meshfilter.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"meshfilter.cli.{name}":
            return None
        raise


def cmd_build_propagate(args: argparse.Namespace) -> int:
    from meshfilter.wasm.propagate import build_propagate_header, render_propagate_header

    if not args.output:
        raise UsageError("no output file given", where="meshfilter wasm build propagate-header",
                         hint="add -o FILE.wasm (or -o - for stdout)")
    if args.wat:
        write_output(render_propagate_header(abi=args.abi, root_id=args.root_id,
                                             clear_route_cache=args.clear_route_cache), args.output)
        return 0
    module = build_propagate_header(abi=args.abi, root_id=args.root_id, clear_route_cache=args.clear_route_cache)
    write_output(module, args.output)
    if args.output != "-":
        print(f"wrote {args.output} ({len(module)} bytes, proxy-wasm ABI {args.abi}, root id "
              f"{args.root_id or '(any)'})", file=sys.stderr)
    return 0
