"""`meshfilter demo ab|canary`: the seed's end-to-end routing on a local mesh of real Envoys."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from typing import Any

from meshfilter.cli._common import shielded
from meshfilter.errors import DemoError, UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the seed's end-to-end demos on a local mesh of real Envoys")
    dsub = p.add_subparsers(dest="demo", metavar="DEMO")
    dsub.required = True

    ab = dsub.add_parser("ab", help="A/B test: route-v picks v2 at every hop via the propagate-header module "
                         "(seed 2.2)")
    _common_flags(ab)
    ab.add_argument("--only", action="append", choices=["hello1", "hello2"], default=None,
                    help="apply only this seed ASMFilterDeployment (repeatable; default: hello1 and hello2)")
    ab.set_defaults(handler=cmd_ab)

    canary = dsub.add_parser("canary", help="gateway tagging: iPhone13 user agents ride the gray (v2) versions "
                             "via x-asm-prefer-tag (seed 2.4)")
    _common_flags(canary)
    canary.set_defaults(handler=cmd_canary)


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["process", "container"], default="process",
                   help="how to run the Envoys (default: process)")
    p.add_argument("--port", type=int, default=None,
                   help="ingress port (default: 8001 when free, else any free port; 0: any free port)")
    p.add_argument("--serve", action="store_true", help="stay up after the requests, until Ctrl-C")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the requests and answers")


def cmd_ab(args: argparse.Namespace) -> int:
    from meshfilter.demo.run import AB_PROBES, ab_mesh

    _check_port(args)
    return _run(args, ab_mesh(backend=args.backend, port=args.port, only=args.only, log=_logger(args)),
                AB_PROBES, "curl -H 'route-v: v2' {url}")


def cmd_canary(args: argparse.Namespace) -> int:
    from meshfilter.demo.run import CANARY_PROBES, canary_mesh

    _check_port(args)
    return _run(args, canary_mesh(backend=args.backend, port=args.port, log=_logger(args)), CANARY_PROBES,
                "curl -A 'iPhone13' {url}")


def _check_port(args: argparse.Namespace) -> None:
    if args.port is not None and not 0 <= args.port <= 65535:
        raise UsageError(f"port {args.port} is out of range", where="--port",
                         hint="give 1-65535, or 0 for any free port")


def _logger(args: argparse.Namespace) -> Any:
    if args.quiet:
        return lambda _msg: None
    return lambda msg: print(f"# {msg}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace, mesh: Any, probes: Sequence[Any], try_cmd: str) -> int:
    """Start the mesh, send the probes, serve with ``--serve``. Ctrl-C and SIGTERM unwind through here
    (``meshfilter.cli.main`` turns SIGTERM into the same exception), so the mesh is always stopped."""
    from meshfilter.demo.run import DEMO_PATH, run_probes

    try:
        mesh.start()
        try:
            url = mesh.url(DEMO_PATH)
            ok = True
            for p in run_probes(mesh, probes):
                print(f"$ {p.curl(url)}")
                print(p.body)
                if p.status != 200:
                    print(f"# HTTP {p.status}", file=sys.stderr)
                    ok = False
            sys.stdout.flush()
            if args.serve:
                print(f"# serving on {mesh.url()} (Ctrl-C to stop); try: "
                      f"{try_cmd.format(url=url)}",
                      file=sys.stderr, flush=True)
                threading.Event().wait()
        finally:
            shielded(mesh.stop)
    except DemoError as exc:
        _print_tail(exc)
        raise
    return 0 if ok else 1


def _print_tail(exc: DemoError) -> None:
    if exc.log_tail:
        print(f"--- last log lines of {exc.component or exc.where} ---", file=sys.stderr)
        print(exc.log_tail, file=sys.stderr)
        print("---", file=sys.stderr, flush=True)
