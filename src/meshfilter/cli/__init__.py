"""The `meshfilter` command line: thin. Parses flags, calls the library, prints.

Each command group lives in its own module under ``meshfilter.cli`` and exposes
``register(subparsers)``; handlers receive the parsed ``argparse.Namespace`` and return an exit
code. Errors derived from :class:`meshfilter.errors.MeshfilterError` are printed as one line on
stderr, with exit code 2 for usage errors and 1 for failures; no traceback.

Signals: Ctrl-C (SIGINT) and SIGTERM end any command the same way, at any moment (while the command
modules are still being imported, too): what the command started is stopped, nothing is printed, and
the exit status is 128 + the signal number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
Serving commands (``envoy run``, ``demo --serve``) run until one of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

from meshfilter.cli._fields import speller
from meshfilter.errors import MeshfilterError

# command groups, each a module meshfilter.cli.<group> exposing register(subparsers)
GROUPS: tuple[str, ...] = ("wasm", "envoy", "oras", "registry", "deploy", "lua", "transcoder", "demo", "new")


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line: what is wrong and where to look; and no abbreviated
    flags (``--env`` must not silently mean ``--env-from-host`` where a command has no ``--env``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.set_defaults(cli_parser=self)  # the deepest chosen command's parser wins: it words the error

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


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C (``finally`` blocks stop what was started)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signum)


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """While the command runs, SIGTERM unwinds like SIGINT (restored afterwards: ``main`` also runs
    inside other programs, e.g. tests). Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 128 + (exc.signum if isinstance(exc, _Interrupted) else int(signal.SIGINT))


def main(argv: Sequence[str] | None = None) -> int:
    with _signals_unwind():
        try:
            return _main(argv)
        except KeyboardInterrupt as exc:  # also while the command modules are imported
            return interrupt_exit_code(exc)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # from the command's own parser, so the hint names that command's --help
        args.cli_parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
    except BrokenPipeError:
        return 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
