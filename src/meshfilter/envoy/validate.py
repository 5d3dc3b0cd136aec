"""``envoy --mode validate``: load a bootstrap (and its Wasm modules) without serving."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshfilter.envoy.binary import find_envoy
from meshfilter.errors import EnvoyValidationError


def validate_bootstrap(bootstrap: Mapping[str, Any] | Path, *, binary: str | os.PathLike[str] | None = None,
                       timeout: float = 60.0) -> str:
    """Run ``envoy --mode validate``. Return Envoy's output; raise with Envoy's own error line."""
    envoy = find_envoy(binary)
    with tempfile.TemporaryDirectory(prefix="meshfilter-validate-") as tmp:
        if isinstance(bootstrap, Path):
            path = bootstrap
        else:
            path = Path(tmp) / "envoy.json"
            path.write_text(json.dumps(bootstrap))
        proc = subprocess.run(
            [str(envoy), "--mode", "validate", "-c", str(path), "-l", "info", "--use-dynamic-base-id",
             "--disable-hot-restart"],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise EnvoyValidationError(f"Envoy refused the configuration: {envoy_error_line(out)}",
                                   where=str(bootstrap) if isinstance(bootstrap, Path) else "bootstrap",
                                   log_tail="\n".join(out.splitlines()[-30:]))
    return out


def envoy_error_line(output: str) -> str:
    """Envoy's own most telling error line in ``output``."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for marker in ("[critical]", "[error]"):
        for ln in lines:
            if marker in ln and "error initializing configuration" in ln:
                return _strip_prefix(ln)
        for ln in reversed(lines):
            if marker in ln:
                return _strip_prefix(ln)
    return lines[-1] if lines else "(no output)"


def _strip_prefix(line: str) -> str:
    # "[2026-...][123][critical][main] [source/...:NN] message" -> "message"
    if "] " in line and line.startswith("["):
        return line.rsplit("] ", 1)[-1]
    return line
