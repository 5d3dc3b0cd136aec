"""Helpers shared by the CLI group modules: output writing, key=value parsing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshfilter.errors import UsageError
from meshfilter.util.fs import atomic_write_bytes


def parse_kv(values: list[str] | None, *, flag: str, allow_duplicates: bool = False) -> dict[str, str]:
    """Parse repeated ``k=v`` flags; a missing ``=`` or a repeated key is a usage error."""
    out: dict[str, str] = {}
    for raw in values or []:
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {raw!r} is not key=value", where=flag,
                             hint=f"write it as {flag} name=value")
        if key in out and not allow_duplicates:
            raise UsageError(f"{flag} key {key!r} is given twice", where=flag,
                             hint="give each key once")
        out[key] = value
    return out


def write_output(data: bytes | str, output: str | None) -> None:
    """Write to a file atomically, or to stdout when output is None or '-'."""
    raw = data.encode() if isinstance(data, str) else data
    if output in (None, "-"):
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
    else:
        atomic_write_bytes(Path(output), raw)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def add_output_flag(p: argparse.ArgumentParser, help: str = "output file ('-' for stdout)") -> None:
    p.add_argument("-o", "--output", default=None, help=help)
