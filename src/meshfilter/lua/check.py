"""LuaJIT, Envoy's own Lua runtime, in-process via lupa: compile checks and pattern evaluation.

:func:`compile_check` loads a script with LuaJIT's ``loadstring`` (parse + bytecode compile, nothing
runs) and raises :class:`~meshfilter.errors.LuaError` naming the rule whose generated lines hold the
error. :func:`lua_pattern_find` and :func:`check_lua_pattern` evaluate / validate a Lua pattern with
LuaJIT's own ``string.find`` so that no second implementation of Lua patterns exists.

If lupa's LuaJIT flavour is not importable, the ``luajit`` binary (Debian package ``luajit``) is used
for :func:`compile_check` (``luajit -bl``).
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

_LOCK = threading.Lock()
_LINE_RE = re.compile(r":(\d+): (.*)$", re.S)


@lru_cache(maxsize=1)
def _runtime() -> Any | None:
    try:
        import lupa.luajit21 as lj  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return lj.LuaRuntime(unpack_returned_tuples=True, encoding="utf-8")


@lru_cache(maxsize=1)
def _functions() -> dict[str, Any] | None:
    rt = _runtime()
    if rt is None:
        return None
    return {
        "compile": rt.eval("function(src, name) local f, err = loadstring(src, name); return err end"),
        "check": rt.eval("function(p) local ok, err = pcall(string.find, '', p); if ok then return nil end; "
                         "return tostring(err) end"),
        "find": rt.eval("function(s, p) local ok, r = pcall(string.find, s, p); return ok and r ~= nil end"),
    }


def _required_functions() -> dict[str, Any]:
    fns = _functions()
    if fns is None:
        runtime()  # raises the LuaError explaining what to install
        raise AssertionError("unreachable")
    return fns


def runtime() -> Any:
    """A fresh lupa LuaJIT runtime (raises LuaError when lupa's LuaJIT flavour is missing)."""
    try:
        import lupa.luajit21 as lj  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise LuaError("lupa with LuaJIT 2.1 is not installed", where="meshfilter.lua",
                       hint="pip install 'lupa>=2.0'") from None
    return lj.LuaRuntime(unpack_returned_tuples=True, encoding="utf-8")


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


def _static_pattern_error(p: str) -> str | None:
    """Structural checks LuaJIT only reports when a match reaches the bad spot."""
    depth = 0
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        if c == "%":
            if i + 1 >= n:
                return "malformed pattern (ends with '%')"
            nxt = p[i + 1]
            if nxt == "b":
                if i + 3 >= n:
                    return "missing arguments to '%b'"
                i += 4
                continue
            if nxt == "f":
                if i + 2 >= n or p[i + 2] != "[":
                    return "missing '[' after '%f' in pattern"
                i += 2
                continue
            if nxt.isdigit() and (nxt == "0" or int(nxt) > depth_total(p, i)):
                return f"invalid capture index %{nxt}"
            i += 2
            continue
        if c == "[":
            j = i + 1
            if j < n and p[j] == "^":
                j += 1
            if j < n and p[j] == "]":
                j += 1
            while j < n and p[j] != "]":
                j += 2 if p[j] == "%" else 1
            if j >= n:
                return "malformed pattern (missing ']')"
            i = j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return "invalid pattern capture"
            depth -= 1
        i += 1
    if depth:
        return "unfinished capture"
    return None


def depth_total(p: str, upto: int) -> int:
    """Captures opened before position ``upto`` (an upper bound for back-reference indexes)."""
    return p[:upto].count("(")


def lua_pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable Lua pattern (LuaJIT's own wording where possible), else None."""
    static = _static_pattern_error(pattern)
    if static:
        return static
    with _LOCK:
        err = _required_functions()["check"](pattern)
    if err is None:
        return None
    return re.sub(r"^.*?:\d+: ", "", str(err))


def lua_pattern_find(subject: str, pattern: str) -> bool:
    """``string.find(subject, pattern) ~= nil`` in LuaJIT (a malformed pattern never matches)."""
    with _LOCK:
        return bool(_required_functions()["find"](subject, pattern))
