"""``envoy --mode validate``: load a bootstrap (and its Wasm modules) without serving."""

from __future__ import annotations

import json
import os
import re
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
                                   log_tail="\n".join(out.splitlines()[-300:]))
    return out


def envoy_error_line(output: str) -> str:
    """Envoy's own most telling error line in ``output``."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for marker in ("[critical]", "[error]"):
        for ln in lines:
            if marker in ln and "error initializing configuration" in ln:
                return _strip_prefix(ln)
        for ln in lines:
            # "error `<what>` initializing config '<proto dump, cut by a newline>": <what> is the message
            m = _INIT_ERROR.search(ln) if marker in ln else None
            if m:
                return m.group(1)
        for ln in reversed(lines):
            if marker in ln:
                return _strip_prefix(ln)
    return lines[-1] if lines else "(no output)"


def refusal_line(output: str) -> str:
    """Why Envoy refused a configuration, in the words of whoever refused it: the filter's
    (:func:`filter_refusal`), else Envoy's (:func:`envoy_error_line`)."""
    return filter_refusal(output) or envoy_error_line(output)


def filter_refusal(output: str) -> str | None:
    """The HTTP filter's own refusal in Envoy's log, if a filter refused: a Wasm module's own log line
    (``propagate-header: missing key head_tag_name``), else the Wasm VM's error (``Wasm VM failed Failed
    to parse corrupted Wasm module``), else LuaJIT's (``script load error: ...``)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:  # the module's own words: "[error][wasm] ... wasm log <plugin> <root id>: <message>"
        m = _WASM_LOG.search(ln)
        if m and ("[error]" in ln or "[critical]" in ln):
            return m.group(1).strip()
    for ln in lines:
        if "[error][wasm]" in ln:
            return _strip_prefix(ln)
    raw = output.splitlines()
    for i, ln in enumerate(raw):
        at = ln.find("script load error: ")
        if at >= 0:
            message, closed, _ = ln[at:].partition("` initializing config")
            return message.strip() if closed else _with_continuation(message.strip(), raw[i + 1:])
    return None


def _with_continuation(message: str, following: list[str], keep: int = 3) -> str:
    """LuaJIT's message may go on over the next lines (not Envoy log lines): the cause of a module's
    error, or the places ``require`` searched. Joined into the one line, at most ``keep`` of them."""
    more: list[str] = []
    for ln in following:
        if _LOG_LINE.match(ln) or not ln.strip():
            break
        text, closed, _ = ln.strip().partition("` initializing config")  # the end of Envoy's quote
        if text.strip() and not text.startswith("no field package.preload"):
            more.append(text.strip())
        if closed:
            break
    if not more:
        return message.rstrip(":")
    shown = "; ".join(more[:keep]) + (f"; and {len(more) - keep} more" if len(more) > keep else "")
    return f"{message.rstrip(':')}: {shown}"


_LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ")
_INIT_ERROR = re.compile(r"error `(.+?)` initializing config")
_WASM_LOG = re.compile(r"\] wasm log [^:]*: (.+)$")


def _strip_prefix(line: str) -> str:
    # "[2026-...][123][critical][main] [source/...:NN] message" -> "message"
    if "] " in line and line.startswith("["):
        return line.rsplit("] ", 1)[-1]
    return line
