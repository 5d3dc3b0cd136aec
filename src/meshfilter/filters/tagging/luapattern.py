"""The ``lua-pattern`` matcher: Lua patterns exactly as LuaJIT runs them (no second implementation).

:func:`lua_pattern_find` evaluates ``string.find(subject, pattern)`` and :func:`lua_pattern_error`
validates a pattern, both with LuaJIT's own ``string.find`` (in-process, :mod:`meshfilter.util.luajit`;
LuaJIT loads on the first call, not on import).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

from meshfilter.util.luajit import new_runtime

_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _functions() -> dict[str, Any]:
    rt = new_runtime()
    return {
        "check": rt.eval("function(p) local ok, err = pcall(string.find, '', p); if ok then return nil end; "
                         "return tostring(err) end"),
        "find": rt.eval("function(s, p) local ok, r = pcall(string.find, s, p); return ok and r ~= nil end"),
    }


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
        err = _functions()["check"](pattern)
    if err is None:
        return None
    return re.sub(r"^.*?:\d+: ", "", str(err))


def lua_pattern_find(subject: str, pattern: str) -> bool:
    """``string.find(subject, pattern) ~= nil`` in LuaJIT (a malformed pattern never matches)."""
    with _LOCK:
        return bool(_functions()["find"](subject, pattern))
