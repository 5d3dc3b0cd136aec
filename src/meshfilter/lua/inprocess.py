"""Run a generated Envoy Lua filter script in-process, in LuaJIT (lupa), on a list of headers.

The ``request_handle`` is a small fake of Envoy's (only what tagging scripts use), written in Lua and
following Envoy 1.40's header map semantics:

* ``headers():get(name)`` -- names compare case-insensitively; ``nil`` when absent, else every value
  in order joined with ``","``;
* ``headers():replace(name, value)`` -- every value of ``name`` is removed, one ``name: value`` added;
* ``headers():add(name, value)`` / ``remove(name)``; ``logInfo``/``logWarn``/``logErr``/``logDebug``
  record log lines.

This is the "Lua in LuaJIT in-process" column of the differential tests, and a cheap way to dry-run a
script (:func:`run_request`). A Lua run-time error raises :class:`~meshfilter.errors.LuaError`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from meshfilter.errors import LuaError

_HARNESS = r"""
return function(src, input)
  local chunk, err = loadstring(src, "=tagging")
  if not chunk then return nil, "compile: " .. tostring(err), nil end
  local env = setmetatable({}, {__index = _G})
  setfenv(chunk, env)
  local ok, e = pcall(chunk)
  if not ok then return nil, "load: " .. tostring(e), nil end
  if type(env.envoy_on_request) ~= "function" then return nil, "no envoy_on_request", nil end
  local list, logs = {}, {}
  for i = 1, #input do list[i] = {input[i][1], input[i][2]} end
  local lower = string.lower
  local H = {}
  function H:get(name)
    if type(name) ~= "string" then error("get: key must be a string", 2) end
    local key, vals = lower(name), {}
    for i = 1, #list do
      if lower(list[i][1]) == key then vals[#vals + 1] = list[i][2] end
    end
    if #vals == 0 then return nil end
    return table.concat(vals, ",")
  end
  function H:remove(name)
    local key, kept = lower(name), {}
    for i = 1, #list do
      if lower(list[i][1]) ~= key then kept[#kept + 1] = list[i] end
    end
    list = kept
  end
  function H:add(name, value)
    if type(name) ~= "string" or type(value) ~= "string" then error("add: strings expected", 2) end
    list[#list + 1] = {lower(name), value}
  end
  function H:replace(name, value)
    if type(name) ~= "string" or type(value) ~= "string" then error("replace: strings expected", 2) end
    self:remove(name)
    self:add(name, value)
  end
  local handle = {}
  function handle:headers() return H end
  local function logger(level) return function(_, msg) logs[#logs + 1] = level .. ": " .. tostring(msg) end end
  handle.logTrace, handle.logDebug, handle.logInfo = logger("trace"), logger("debug"), logger("info")
  handle.logWarn, handle.logErr, handle.logCritical = logger("warn"), logger("error"), logger("critical")
  local ok2, e2 = pcall(env.envoy_on_request, handle)
  if not ok2 then return nil, "run: " .. tostring(e2), logs end
  return list, nil, logs
end
"""

_LOCK = threading.Lock()


@dataclass(frozen=True)
class LuaRun:
    headers: list[tuple[str, str]]
    logs: list[str]


@lru_cache(maxsize=1)
def _harness() -> tuple[Any, Any]:
    from meshfilter.lua.check import runtime

    rt = runtime()
    return rt, rt.execute(_HARNESS)


def run_request(source: str, headers: Sequence[tuple[str, str]]) -> LuaRun:
    """Run ``envoy_on_request`` of ``source`` on ``headers``; the headers afterwards and log lines."""
    with _LOCK:
        rt, harness = _harness()
        table = rt.table_from([rt.table_from([k, v]) for k, v in headers])
        out, err, logs = harness(source, table)
        log_lines = [str(logs[i]) for i in range(1, len(logs) + 1)] if logs is not None else []
        if err is not None:
            raise LuaError(f"the script failed in LuaJIT: {err}", where="in-process Lua run")
        result = [(str(out[i][1]), str(out[i][2])) for i in range(1, len(out) + 1)]
    return LuaRun(headers=result, logs=log_lines)
