"""The `meshfilter` command line: thin. Parses flags, calls the library, prints.

Each command group lives in its own module under ``meshfilter.cli`` and exposes
``register(subparsers)``; handlers receive the parsed ``argparse.Namespace`` and return an exit
code. Errors derived from :class:`meshfilter.errors.MeshfilterError` are printed as one line on
stderr, with exit code 2 for usage errors and 1 for failures; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from meshfilter.cli._fields import speller
from meshfilter.errors import MeshfilterError

# command groups, each a module meshfilter.cli.<group> exposing register(subparsers)
GROUPS: tuple[str, ...] = ("wasm", "envoy", "oras", "registry", "deploy", "lua", "transcoder", "demo")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what is wrong and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="meshfilter", description="Build, package, deploy and prove Envoy filters: "
                            "Wasm, Lua and gRPC-JSON transcoding.")
    parser.add_argument("--version", action="version", version=f"meshfilter {_version()}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for group in GROUPS:
        importlib.import_module(f"meshfilter.cli.{group}").register(sub)
    return parser


def _version() -> str:
    from meshfilter import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.error(f"'{args.group}' needs a subcommand")
    try:
        rc = handler(args)
    except MeshfilterError as exc:
        print(f"meshfilter: error: {exc.line(spell=speller(parser, args))}", file=sys.stderr)
        if os.environ.get("MESHFILTER_DEBUG"):
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
