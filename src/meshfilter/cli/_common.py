"""Helpers shared by the CLI group modules: output writing, key=value parsing, shielded clean-up."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from meshfilter.errors import UsageError
from meshfilter.util.fs import atomic_write_bytes, check_writable


def parse_pairs(values: Sequence[str] | None, *, flag: str, form: str = "name=value",
                example: str | None = None, hint: str | None = None,
                error: type[UsageError] = UsageError) -> list[tuple[str, str]]:
    """Parse repeated ``NAME=VALUE`` flags, in order, repeats kept; the one ``k=v`` parser of the CLI.

    The value is everything after the first ``=`` (it may hold ``=`` itself). A missing ``=`` or an
    empty name raises ``error`` naming ``flag``, with the hint ``hint`` (default: "write it as FLAG
    EXAMPLE", ``example`` defaulting to ``form``)."""
    out: list[tuple[str, str]] = []
    for raw in values or ():
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise error(f"{flag} {raw!r} is not {form}", where=flag,
                        hint=hint or f"write it as {flag} {example or form}")
        out.append((key, value))
    return out


def parse_kv(values: Sequence[str] | None, *, flag: str, form: str = "key=value", example: str = "name=value",
             allow_duplicates: bool = False) -> dict[str, str]:
    """:func:`parse_pairs` into a dict; a repeated key is a usage error unless ``allow_duplicates``."""
    out: dict[str, str] = {}
    for key, value in parse_pairs(values, flag=flag, form=form, example=example):
        if key in out and not allow_duplicates:
            raise UsageError(f"{flag} key {key!r} is given twice", where=flag, hint="give each key once")
        out[key] = value
    return out


def write_output(data: bytes | str, output: str | None, *, field: str = "output") -> None:
    """Write to a file atomically, or to stdout when output is None or '-'.

    The file's folder must exist (it is not created behind the user's back); a path that cannot be
    written (a directory, /proc/..., no permission) is one error line naming ``field`` (``-o``)."""
    raw = data.encode() if isinstance(data, str) else data
    if output in (None, "-"):
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
    else:
        atomic_write_bytes(Path(output), raw, parents=False, field=field)


def check_output(output: str | None, *, field: str = "output") -> None:
    """Refuse an output path :func:`write_output` cannot write, before the work that makes the data."""
    if output not in (None, "-"):
        check_writable(Path(output), parents=False, field=field)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def add_output_flag(p: argparse.ArgumentParser, help: str = "output file ('-' for stdout)") -> None:
    p.add_argument("-o", "--output", default=None, help=help)


def shielded(func: Callable[[], Any]) -> None:
    """Run a clean-up with Ctrl-C and SIGTERM ignored, so a second Ctrl-C cannot cut it short."""
    if threading.current_thread() is not threading.main_thread():
        func()
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        func()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
