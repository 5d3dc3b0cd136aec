"""`meshfilter new NAME`: a new filter project written in Python (filter, config, tests, README)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from meshfilter.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="start a filter project written in Python (like wasme init)",
                       description="Write a directory NAME with filter.py (a meshfilter.sdk filter), config.json, "
                                   "test_filter.py (reference, emulator, real Envoy, every backend side by side) and "
                                   "a README. Then: cd NAME && pytest.")
    p.add_argument("name", metavar="NAME", help="the filter's name (letters, digits, - and _)")
    p.add_argument("--dir", default=".", help="create NAME inside this directory (default: the current one)")
    p.set_defaults(handler=cmd_new)


def cmd_new(args: argparse.Namespace) -> int:
    from meshfilter.sdk.scaffold import scaffold

    files = scaffold(args.name)
    parent = Path(args.dir)
    target = parent / args.name
    if target.exists():
        raise UsageError(f"{target} already exists", where="name", hint="choose another NAME, or remove it first")
    parent.mkdir(parents=True, exist_ok=True)
    # nothing half-written: build the project beside its place, then rename it there in one step
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.name}.", dir=parent))
    try:
        for rel, text in files.items():
            (tmp / rel).write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"created {target}/ ({', '.join(files)}); next: cd {target} && pytest", file=sys.stderr)
    return 0
