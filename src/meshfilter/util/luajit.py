"""LuaJIT, Envoy's own Lua runtime, in-process through lupa's ``luajit21`` flavour: loaded on first use.

The one place that imports lupa. The Lua backend (:mod:`meshfilter.lua`: compile checks, the in-process
request runner) and the tagging model's ``lua-pattern`` matcher
(:mod:`meshfilter.filters.tagging.luapattern`) take their runtimes from here, so importing either
does not load LuaJIT.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from meshfilter.errors import LuaError


@lru_cache(maxsize=1)
def _module() -> Any | None:
    try:
        import lupa.luajit21 as lj  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return lj


def available() -> bool:
    """Whether lupa's LuaJIT 2.1 flavour can be loaded."""
    return _module() is not None


def new_runtime(*, encoding: str | None = "utf-8") -> Any:
    """A fresh LuaJIT runtime (strings in and out as UTF-8; ``encoding=None``: bytes); LuaError when
    lupa's LuaJIT is missing."""
    lj = _module()
    if lj is None:
        raise LuaError("lupa with LuaJIT 2.1 is not installed", where="meshfilter.lua",
                       hint="pip install 'lupa>=2.0'")
    return lj.LuaRuntime(unpack_returned_tuples=True, encoding=encoding)
