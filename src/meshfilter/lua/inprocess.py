"""Run a generated Envoy Lua filter script in-process, in LuaJIT (lupa), on a list of headers.

The ``request_handle``/``response_handle`` is a small fake of Envoy's (what the generated scripts
use), written in Lua and following Envoy 1.40:

* ``headers():get(name)`` -- names compare case-insensitively; ``nil`` when absent, else every value
  in order joined with ``","``;
* ``headers():replace(name, value)`` -- every value of ``name`` is removed, one ``name: value`` added;
* ``headers():add(name, value)`` / ``remove(name)``; ``logInfo``/``logWarn``/``logErr``/``logDebug``
  record log lines; ``clearRouteCache()`` is counted;
* ``respond(headers, body)`` ends the script with a local reply, and ``envoy_on_response`` then runs
  on that reply (its headers, plus ``content-type: text/plain`` and ``content-length`` when it has a
  body), as Envoy runs it; else on the upstream response given.

This is the "Lua in LuaJIT in-process" column of the differential tests, and a cheap way to dry-run a
script: :func:`run_request` (request headers as text), :func:`run_stream` (a whole stream, raw bytes).
A Lua run-time error raises :class:`~meshfilter.errors.LuaError`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from meshfilter.errors import LuaError

_LOCK = threading.Lock()

_STREAM_HARNESS = r"""
local RESPONDED = {}
return function(src, req, resp)
  local chunk, err = loadstring(src, "=filter")
  if not chunk then return nil, "compile: " .. tostring(err) end
  local env = setmetatable({}, {__index = _G})
  setfenv(chunk, env)
  local ok, e = pcall(chunk)
  if not ok then return nil, "load: " .. tostring(e) end
  local lower = string.lower
  local out = {logs = {}, clears = 0, writes = 0}
  local function new_map(input, count_writes)
    local list = {}
    for i = 1, #input do list[i] = {input[i][1], input[i][2]} end
    local H = {list = list}
    function H:get(name)
      local key, vals = lower(name), {}
      for i = 1, #self.list do
        if lower(self.list[i][1]) == key then vals[#vals + 1] = self.list[i][2] end
      end
      if #vals == 0 then return nil end
      return table.concat(vals, ",")
    end
    function H:remove(name)
      local key, kept = lower(name), {}
      for i = 1, #self.list do
        if lower(self.list[i][1]) ~= key then kept[#kept + 1] = self.list[i] end
      end
      self.list = kept
      if count_writes then out.writes = out.writes + 1 end
    end
    function H:add(name, value)
      if type(name) ~= "string" or type(value) ~= "string" then error("add: strings expected", 2) end
      self.list[#self.list + 1] = {lower(name), value}
      if count_writes then out.writes = out.writes + 1 end
    end
    function H:replace(name, value)
      if type(name) ~= "string" or type(value) ~= "string" then error("replace: strings expected", 2) end
      local key, kept = lower(name), {}
      for i = 1, #self.list do
        if lower(self.list[i][1]) ~= key then kept[#kept + 1] = self.list[i] end
      end
      kept[#kept + 1] = {key, value}
      self.list = kept
      if count_writes then out.writes = out.writes + 1 end
    end
    return H
  end
  local function handle(map)
    local h = {}
    function h:headers() return map end
    local function logger(level) return function(_, msg) out.logs[#out.logs + 1] = {level, tostring(msg)} end end
    h.logTrace, h.logDebug, h.logInfo = logger("trace"), logger("debug"), logger("info")
    h.logWarn, h.logErr, h.logCritical = logger("warn"), logger("error"), logger("critical")
    function h:clearRouteCache() out.clears = out.clears + 1 end
    function h:respond(headers, body)
      local list = {}
      for k, v in pairs(headers) do
        if type(k) ~= "string" or type(v) ~= "string" then error("respond: string headers expected", 2) end
        if k ~= ":status" then list[#list + 1] = {lower(k), v} end
      end
      out.reply = {tonumber(headers[":status"]), list, body or ""}
      error(RESPONDED, 0)
    end
    return h
  end
  local function run(fn, h)
    local ok2, e2 = pcall(fn, h)
    if not ok2 and e2 ~= RESPONDED then return "run: " .. tostring(e2) end
    return nil
  end
  local rq = new_map(req, true)
  out.has_request = type(env.envoy_on_request) == "function"
  if out.has_request then
    local problem = run(env.envoy_on_request, handle(rq))
    if problem then return nil, problem end
  end
  out.request = rq.list
  local rs = nil
  if out.reply ~= nil then
    local lines = {{":status", tostring(out.reply[1])}}
    local typed = false
    for i = 1, #out.reply[2] do
      lines[#lines + 1] = out.reply[2][i]
      if out.reply[2][i][1] == "content-type" then typed = true end
    end
    if #out.reply[3] > 0 then
      if not typed then lines[#lines + 1] = {"content-type", "text/plain"} end
      lines[#lines + 1] = {"content-length", tostring(#out.reply[3])}
    end
    rs = new_map(lines, false)
  elseif resp ~= nil then
    rs = new_map(resp, false)
  end
  if rs ~= nil and type(env.envoy_on_response) == "function" then
    local problem = run(env.envoy_on_response, handle(rs))
    if problem then return nil, problem end
  end
  if rs ~= nil then out.response = rs.list end
  return out, nil
end
"""


@dataclass(frozen=True)
class LuaStream:
    """What one request did in the script (raw bytes as in Envoy)."""

    request_headers: list[tuple[bytes, bytes]]
    response_headers: list[tuple[bytes, bytes]] | None
    local_reply: tuple[int, list[tuple[bytes, bytes]], bytes] | None  # status, headers, body
    logs: list[tuple[str, bytes]]
    route_cache_clears: int
    request_header_writes: int
    has_request: bool = True  # the script defines envoy_on_request


@dataclass(frozen=True)
class LuaRun:
    headers: list[tuple[str, str]]
    logs: list[str]  # "level: message"


def run_request(source: str, headers: Sequence[tuple[str, str]]) -> LuaRun:
    """Run ``envoy_on_request`` of ``source`` on ``headers``; the headers afterwards and log lines."""
    run = run_stream(source, [(k.encode(), v.encode()) for k, v in headers])
    if not run.has_request:
        raise LuaError("the script failed in LuaJIT: no envoy_on_request", where="in-process Lua run")
    text = [(k.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for k, v in run.request_headers]
    return LuaRun(headers=text,
                  logs=[f"{level}: {text.decode('utf-8', 'replace')}" for level, text in run.logs])


@lru_cache(maxsize=1)
def _stream_harness() -> tuple[Any, Any]:
    from meshfilter.util import luajit

    rt = luajit.new_runtime(encoding=None)  # header values are bytes, not always UTF-8
    return rt, rt.execute(_STREAM_HARNESS)


def run_stream(source: str, request_headers: Sequence[tuple[bytes, bytes]],
               response_headers: Sequence[tuple[bytes, bytes]] | None = None) -> LuaStream:
    """Run ``envoy_on_request`` (then ``envoy_on_response`` on the upstream response, or on the local
    reply the script sent, as Envoy does) on raw header lines."""
    def table(rt: Any, lines: Sequence[tuple[bytes, bytes]]) -> Any:
        return rt.table_from([rt.table_from([k, v]) for k, v in lines])

    def lines(t: Any) -> list[tuple[bytes, bytes]]:
        return [(bytes(t[i][1]), bytes(t[i][2])) for i in range(1, len(t) + 1)]

    with _LOCK:
        rt, harness = _stream_harness()
        out, err = harness(source.encode(), table(rt, request_headers),
                           table(rt, response_headers) if response_headers is not None else None)
        if err is not None:
            raise LuaError(f"the script failed in LuaJIT: {bytes(err).decode('utf-8', 'replace')}",
                           where="in-process Lua run")
        reply = None
        if out[b"reply"] is not None:
            r = out[b"reply"]
            reply = (int(r[1]), lines(r[2]), bytes(r[3]))
        logs = [(bytes(out[b"logs"][i][1]).decode(), bytes(out[b"logs"][i][2]))
                for i in range(1, len(out[b"logs"]) + 1)]
        response = lines(out[b"response"]) if out[b"response"] is not None else None
        return LuaStream(request_headers=lines(out[b"request"]), response_headers=response, local_reply=reply,
                         logs=logs, route_cache_clears=int(out[b"clears"]),
                         request_header_writes=int(out[b"writes"]), has_request=bool(out[b"has_request"]))
