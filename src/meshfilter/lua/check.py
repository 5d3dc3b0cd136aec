"""LuaJIT, Envoy's own Lua runtime: compile checks of generated scripts.

:func:`compile_check` loads a script with LuaJIT's ``loadstring`` (parse + bytecode compile, nothing
runs) and raises :class:`~meshfilter.errors.LuaError` naming the rule whose generated lines hold the
error. LuaJIT runs in-process (lupa, through :mod:`meshfilter.util.luajit`); if lupa's LuaJIT flavour
is not importable, the ``luajit`` binary (Debian package ``luajit``) is used (``luajit -bl``).

Lua patterns (the tagging model's ``lua-pattern`` matcher) are evaluated and validated by
:mod:`meshfilter.filters.tagging.luapattern`, with LuaJIT's own ``string.find``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from meshfilter.errors import LuaError
from meshfilter.util import luajit

_LOCK = threading.Lock()
_LINE_RE = re.compile(r":(\d+): (.*)$", re.S)


@lru_cache(maxsize=1)
def _runtime() -> Any | None:
    return luajit.new_runtime() if luajit.available() else None


@lru_cache(maxsize=1)
def _functions() -> dict[str, Any] | None:
    rt = _runtime()
    if rt is None:
        return None
    return {"compile": rt.eval("function(src, name) local f, err = loadstring(src, name); return err end")}


def runtime() -> Any:
    """A fresh lupa LuaJIT runtime (raises LuaError when lupa's LuaJIT flavour is missing)."""
    return luajit.new_runtime()


def implementation() -> str:
    rt = _runtime()
    if rt is not None:
        return str(rt.lua_implementation)
    exe = shutil.which("luajit")
    return f"luajit binary at {exe}" if exe else "none"


def parse_error(message: str) -> tuple[int | None, str]:
    """Split a Lua compile error ``[string "..."]:12: msg`` into (12, msg)."""
    m = _LINE_RE.search(message.strip())
    if not m:
        return None, message.strip()
    return int(m.group(1)), m.group(2).strip()


def compile_errors(source: str, chunkname: str = "=tagging", *, via: str | None = None) -> str | None:
    """LuaJIT's compile error for ``source`` (None when it compiles). Nothing in the script runs.

    ``via``: ``"lupa"`` (in-process LuaJIT), ``"luajit"`` (``luajit -bl`` subprocess) or None (lupa
    when available, else the binary).
    """
    fns = _functions() if via in (None, "lupa") else None
    if fns is not None:
        with _LOCK:
            err = fns["compile"](source, chunkname)
        return None if err is None else str(err)
    if via == "lupa":
        raise LuaError("lupa with LuaJIT 2.1 is not installed", where="meshfilter.lua", hint="pip install lupa")
    return _binary_compile_errors(source)


def _binary_compile_errors(source: str) -> str | None:
    exe = shutil.which("luajit")
    if not exe:
        raise LuaError("no LuaJIT found to compile the script", where="meshfilter.lua",
                       hint="pip install lupa, or apt-get install luajit")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "tagging.lua"
        src.write_text(source, encoding="utf-8")
        proc = subprocess.run([exe, "-bl", str(src)], capture_output=True, text=True, timeout=60)
    if proc.returncode == 0:
        return None
    text = (proc.stderr or proc.stdout).strip().splitlines()
    return text[-1] if text else "luajit failed"


def compile_check(source: str, *, line_owner: Callable[[int], str] | None = None,
                  where: str = "generated Lua", via: str | None = None) -> None:
    """Compile ``source`` with LuaJIT; raise LuaError naming the owner (rule) of the failing line."""
    err = compile_errors(source, via=via)
    if err is None:
        return
    line, msg = parse_error(err)
    owner = line_owner(line) if (line_owner and line is not None) else None
    at = f"line {line}" if line is not None else "unknown line"
    raise LuaError(f"LuaJIT cannot compile the generated script ({at}: {msg})",
                   where=f"{where}: {owner}" if owner else where,
                   hint="this is a meshfilter bug unless the rule uses lua-pattern; please report it")
